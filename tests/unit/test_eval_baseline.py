"""The in-memory BM25 baseline."""

from __future__ import annotations

from pathlib import Path

import pytest

from eval import Bm25Baseline, iter_corpus, load_beir
from eval.baseline import tokenize

FIXTURE = Path(__file__).parents[1] / "fixtures" / "tiny_beir"


@pytest.fixture(scope="module")
def baseline() -> Bm25Baseline:
    return Bm25Baseline(iter_corpus(FIXTURE / "corpus.jsonl"))


def test_tokenizer_lowercases_and_drops_stopwords_without_stemming() -> None:
    assert tokenize("The Bees, and THEIR hive-2!") == ["bees", "hive", "2"]


def test_relevant_document_ranks_first(baseline: Bm25Baseline) -> None:
    dataset = load_beir(FIXTURE)
    for qid in ("q3", "q4"):
        top_id, _ = baseline.search(dataset.queries[qid], 5)[0]
        assert top_id in dataset.qrels[qid]


def test_title_is_indexed(baseline: Bm25Baseline) -> None:
    # "Swarming" appears only in the title of bee-3.
    assert baseline.search("swarming", 3)[0][0] == "bee-3"


def test_results_are_best_first_limited_to_k_and_matching(
    baseline: Bm25Baseline,
) -> None:
    hits = baseline.search("bees worker queen colony wax lava", 3)
    assert len(hits) == 3
    assert [score for _, score in hits] == sorted((score for _, score in hits), reverse=True)
    assert all(score > 0 for _, score in hits)
    assert len(baseline.search("mauna loa", 10)) == 1


def test_k_larger_than_the_corpus_returns_every_match(baseline: Bm25Baseline) -> None:
    # "bees" (not "bee") occurs in bee-2 and 0042 only: no stemming.
    assert {doc_id for doc_id, _ in baseline.search("bees", 1000)} == {"bee-2", "0042"}


def test_stopword_only_query_returns_nothing(baseline: Bm25Baseline) -> None:
    assert baseline.search("the and of", 10) == []


def test_empty_corpus_is_rejected() -> None:
    with pytest.raises(ValueError, match="empty corpus"):
        Bm25Baseline([])
