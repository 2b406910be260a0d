"""End to end on a real BEIR collection: SciFact (5,183 abstracts, 300 test queries), the real model.

Ingests the shared corpus once per module (a few minutes on 2 cores), then checks that
hybrid search finds relevant abstracts and that re-ingesting costs almost nothing.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import ir_measures
import numpy as np
import pytest
from ir_measures import Success, nDCG

from eval import BeirDataset, load_beir
from ingest import ChunkingConfig
from retriever import Engine
from retriever.connections import open_primary
from retriever.results import SearchParams
from retriever.store.collections import drop_collection
from retriever.store.pipeline import IngestReport

SCIFACT = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "scifact"
# Abstracts average ~1,500 characters: one chunk (one embedding) for nearly all of them.
CHUNKING = ChunkingConfig(chunk_size=4000, chunk_overlap=200)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (SCIFACT / "corpus.jsonl.gz").is_file(),
        reason=f"the shared SciFact collection is not at {SCIFACT} (corpus.jsonl.gz, queries.jsonl, qrels/test.tsv)",
    ),
]


@dataclass(frozen=True)
class Ingested:
    collection: str
    report: IngestReport
    seconds: float
    dataset: BeirDataset


@pytest.fixture(scope="module")
def scifact(settings) -> Iterator[Ingested]:
    dataset = load_beir(SCIFACT, "test")
    name = f"t_scifact_{uuid.uuid4().hex[:8]}"
    skipped = []
    start = time.perf_counter()
    report = Engine(settings).ingest_paths(name, [dataset.corpus_path], CHUNKING, on_skip=skipped.append)
    seconds = time.perf_counter() - start
    assert skipped == []
    yield Ingested(name, report, seconds, dataset)
    with open_primary(settings) as conn:
        drop_collection(conn, name)


def run(settings, scifact: Ingested, mode: str, vectors: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """A TREC-style run: query id → {document id: score}, best chunk per document, top 10."""
    results: dict[str, dict[str, float]] = {}
    params = SearchParams(k=10, mode=mode, collapse=True)  # type: ignore[arg-type]
    with open_primary(settings) as conn:
        for qid, query in scifact.dataset.queries.items():
            hits = Engine(settings).search(scifact.collection, query, params, embedding=vectors[qid], conn=conn).hits
            results[qid] = {hit.document_id: hit.score for hit in hits}
    return results


def test_the_whole_corpus_is_ingested_at_about_one_chunk_per_abstract(scifact):
    report = scifact.report
    print(f"\nSciFact ingest: {report.summary()}; {report.timing()}")
    assert report.new_documents == 5183 and report.skipped == []
    assert 5183 <= report.new_chunks < 5183 * 1.1


@pytest.fixture(scope="module")
def scores(settings, local_model, scifact) -> dict[str, dict[object, float]]:
    """Success@10 and nDCG@10 of each mode over the 300 test queries (ir_measures)."""
    queries = scifact.dataset.queries
    # one batch for all queries (the same vectors embed_query gives), shared by the three modes
    vectors = dict(zip(queries, local_model.embed_documents(list(queries.values())), strict=True))
    found = {
        mode: ir_measures.calc_aggregate(
            [Success @ 10, nDCG @ 10], scifact.dataset.qrels, run(settings, scifact, mode, vectors)
        )
        for mode in ("hybrid", "vector", "text")
    }
    for mode, measures in found.items():
        print(f"\nSciFact test, {mode}: success@10 {measures[Success @ 10]:.3f}, nDCG@10 {measures[nDCG @ 10]:.3f}")
    return found


def test_hybrid_search_finds_a_relevant_abstract_in_the_top_10_for_most_queries(scifact, scores):
    assert len(scifact.dataset.queries) == 300
    assert scores["hybrid"][Success @ 10] > 0.7


def test_hybrid_ranks_better_than_either_leg_alone(scores):
    hybrid = scores["hybrid"][nDCG @ 10]
    assert hybrid > scores["vector"][nDCG @ 10]
    assert hybrid > scores["text"][nDCG @ 10]


def test_reingesting_the_corpus_adds_nothing_and_takes_a_tenth_of_the_time(settings, scifact):
    start = time.perf_counter()
    again = Engine(settings).ingest_paths(scifact.collection, [scifact.dataset.corpus_path], CHUNKING, on_skip=print)
    seconds = time.perf_counter() - start
    print(f"\nSciFact re-ingest: {again.summary()} in {seconds:.1f}s (first run {scifact.seconds:.1f}s)")
    assert again.new_chunks == 0 and again.unchanged_documents == 5183
    assert again.summary().startswith(f"0 new, {scifact.report.new_chunks} unchanged")
    assert seconds < scifact.seconds / 10
