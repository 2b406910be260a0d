"""Collapsing chunk hits into a document ranking."""

from __future__ import annotations

import pytest

from eval import chunks_to_documents, score_run


def test_best_chunk_gives_the_document_its_place_and_score() -> None:
    hits = [("a", 0.9), ("b", 0.8), ("a", 0.7), ("c", 0.6), ("b", 0.5)]
    assert chunks_to_documents(hits, 10) == {"a": 0.9, "b": 0.8, "c": 0.6}


def test_retriever_order_is_kept() -> None:
    hits = [("z", 3.0), ("m", 2.0), ("a", 1.0)]
    assert list(chunks_to_documents(hits, 10)) == ["z", "m", "a"]


def test_limit_counts_distinct_documents() -> None:
    hits = [("a", 5.0), ("a", 4.0), ("b", 3.0), ("b", 2.0), ("c", 1.0)]
    assert list(chunks_to_documents(hits, 2)) == ["a", "b"]


def test_tied_scores_become_strictly_decreasing_in_rank_order() -> None:
    documents = chunks_to_documents([("a", 1.0), ("z", 1.0), ("m", 1.0)], 10)
    scores = list(documents.values())
    assert list(documents) == ["a", "z", "m"]
    assert scores[0] == 1.0
    assert scores[0] > scores[1] > scores[2]
    assert scores[2] == pytest.approx(1.0)


def test_non_monotone_scores_still_rank_in_retriever_order() -> None:
    documents = chunks_to_documents([("a", 0.1), ("b", 0.5), ("c", 0.9)], 10)
    scores = list(documents.values())
    assert scores[0] > scores[1] > scores[2]


def test_scored_ranking_is_the_retriever_order_despite_ties() -> None:
    # A metric library breaks score ties by document id; "z" would sort ahead of "a".
    run = {"q": chunks_to_documents([("a", 1.0), ("z", 1.0)], 10)}
    assert score_run({"q": {"a": 1}}, run)["mrr@10"] == 1.0


def test_limit_below_one_is_rejected() -> None:
    with pytest.raises(ValueError, match="limit"):
        chunks_to_documents([("a", 1.0)], 0)
