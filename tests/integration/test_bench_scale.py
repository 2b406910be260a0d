"""`hybrid-rag bench scale` builds, measures and plots growing collections (tiny sizes here)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from bench._data import load_corpus
from bench._synthetic import ExactNeighbours, SyntheticCorpus
from bench.cli import bench as bench_group
from retriever.connections import open_primary

TINY_BEIR = Path(__file__).parent.parent / "fixtures" / "tiny_beir"


@pytest.fixture(scope="module")
def synthetic() -> SyntheticCorpus:
    corpus = load_corpus(TINY_BEIR / "corpus.jsonl")
    vectors = np.random.default_rng(1).standard_normal((len(corpus.texts), 32)).astype(np.float32)
    return SyntheticCorpus.of(corpus, vectors / np.linalg.norm(vectors, axis=1, keepdims=True))


def test_synthetic_chunks_are_real_sentences_with_mixed_unit_vectors(synthetic):
    texts, vectors = next(synthetic.batches(200))
    sentences = set(synthetic.sentences)

    assert all(400 <= len(text) <= 1000 + max(map(len, sentences)) for text in texts)
    assert all(any(text.startswith(sentence) for sentence in sentences) for text in texts)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    cosines = vectors @ vectors.T - 2 * np.eye(len(vectors))
    assert cosines.max() < 0.99  # no near-copies
    assert (vectors @ synthetic.vectors.T).max(axis=1).mean() > 0.4  # but close to the real topics they mix


def test_synthetic_chunks_are_reproducible(synthetic):
    first = next(synthetic.batches(50))
    again = next(synthetic.batches(50))
    assert first[0] == again[0] and np.array_equal(first[1], again[1])


def test_bench_scale_reports_every_size_and_draws_the_plot(settings, fake_embeddings, tmp_path):
    plot = tmp_path / "scale.png"
    args = ["scale", str(TINY_BEIR), "--sizes", "40,80", "--ef-search", "100,200", "--json", "--plot", str(plot)]
    args.append("--drop")
    result = CliRunner().invoke(bench_group, args)

    assert result.exit_code == 0, result.output + result.stderr
    report = json.loads(result.stdout)
    assert [entry["chunks"] for entry in report["sizes"]] == [40, 80]
    for entry in report["sizes"]:
        assert set(entry["modes"]) == {"hybrid", "hybrid_exact_text", "vector", "text", "text_exact"}
        assert all(mode["p50_ms"] > 0 for mode in entry["modes"].values())
        assert 0 <= entry["hnsw_recall@10"] <= 1
        assert [point["ef_search"] for point in entry["ef_search_sweep"]] == [100, 200]
        assert all(point["recall@10"] == 1 for point in entry["ef_search_sweep"])  # ef_search above the size: exact
        assert entry["text_top10_overlap_with_exact"] == 1  # nothing is cut in a tiny collection
        assert entry["build"]["total_s"] > 0 and entry["total_bytes"] > 0
    assert plot.read_bytes().startswith(b"\x89PNG")


def test_bench_scale_reuses_a_collection_it_built(settings, fake_embeddings):
    first = CliRunner().invoke(bench_group, ["scale", str(TINY_BEIR), "--sizes", "30"])
    again = CliRunner().invoke(bench_group, ["scale", str(TINY_BEIR), "--sizes", "30", "--drop"])

    assert first.exit_code == 0 and again.exit_code == 0, first.stderr + again.stderr
    assert "reusing bench_scale_30" in again.stderr


def test_bench_scale_refuses_a_size_below_the_real_corpus(settings, fake_embeddings):
    result = CliRunner().invoke(bench_group, ["scale", str(TINY_BEIR), "--sizes", "5"])

    assert result.exit_code != 0
    assert "below the real corpus" in result.stderr


def test_exact_neighbours_folded_in_batches_match_a_search_over_all_vectors():
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((1000, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = [(f"q{i}", "", rng.standard_normal(16).astype(np.float32)) for i in range(5)]
    nearest = ExactNeighbours(queries)
    for start in range(0, 1000, 64):
        nearest.add(vectors[start : start + 64], start)

    found = nearest.ids([f"row-{i}" for i in range(1000)])
    for qid, _text, vector in queries:
        best = np.argsort(-(vectors @ vector))[:10]
        assert set(found[qid]) == {f"row-{i}" for i in best}


def test_bench_scale_rejects_ef_search_below_the_leg_depth():
    result = CliRunner().invoke(bench_group, ["scale", str(TINY_BEIR), "--ef-search", "40"])
    assert result.exit_code == 2 and "between 100" in result.output


def test_bench_scale_rebuilds_a_kept_collection_whose_hnsw_was_built_otherwise(settings, fake_embeddings):
    args = ["scale", str(TINY_BEIR), "--sizes", "40", "--ef-search", "100", "--json"]
    first = CliRunner().invoke(bench_group, args)
    again = CliRunner().invoke(bench_group, args)
    assert first.exit_code == 0 and again.exit_code == 0, first.output + again.output
    assert "reusing bench_scale_40" in again.stderr

    with open_primary(settings) as conn:
        conn.execute("DROP INDEX hybrid_rag.bench_scale_40_embedding_hnsw")
        conn.execute(
            "CREATE INDEX bench_scale_40_embedding_hnsw ON hybrid_rag.bench_scale_40 "
            "USING hnsw (embedding vector_cosine_ops) WITH (m = 8)"
        )
    rebuilt = CliRunner().invoke(bench_group, [*args, "--drop"])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "building bench_scale_40" in rebuilt.stderr
