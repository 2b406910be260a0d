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


_VECTOR_INDEX = """
SELECT am.amname, opc.opcname, c.reloptions, pg_relation_size(c.oid)
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam
JOIN pg_opclass opc ON opc.oid = i.indclass[0]
WHERE i.indrelid = to_regclass(%s) AND am.amname IN ('hnsw', 'ivfflat')
"""


def test_bench_scale_compares_each_index_variant_built_from_the_same_chunks(settings, fake_embeddings):
    args = ["scale", str(TINY_BEIR), "--sizes", "40", "--ef-search", "100", "--json"]
    result = CliRunner().invoke(bench_group, [*args, "--indexes", "halfvec,hnsw-m32,ivfflat"])
    assert result.exit_code == 0, result.output + result.stderr

    (entry,) = json.loads(result.stdout)["sizes"]
    variants = entry["indexes"]
    assert list(variants) == ["default", "halfvec", "hnsw-m32", "ivfflat"]  # the anchor first, always
    expected = {  # variant → (collection, method, operator class, options)
        "default": ("bench_scale_40", "hnsw", "vector_cosine_ops", ["ef_construction=64", "m=16"]),
        "halfvec": ("bench_scale_40_halfvec", "hnsw", "halfvec_cosine_ops", ["ef_construction=64", "m=16"]),
        "hnsw-m32": ("bench_scale_40_hnsw_m32", "hnsw", "vector_cosine_ops", ["ef_construction=128", "m=32"]),
        "ivfflat": ("bench_scale_40_ivfflat", "ivfflat", "vector_cosine_ops", ["lists=1"]),
    }
    with open_primary(settings) as conn:
        for variant, (collection, method, opclass, options) in expected.items():
            found = conn.execute(_VECTOR_INDEX, (f"hybrid_rag.{collection}",)).fetchall()
            assert [(m, o, sorted(r)) for m, o, r, _size in found] == [(method, opclass, options)], variant
            rows = conn.execute(f"SELECT count(*) FROM hybrid_rag.{collection}").fetchone()[0]
            assert rows == 40, variant
            entry_ = variants[variant]
            assert entry_["collection"] == collection and entry_["index"]["bytes"] == found[0][3]
    for variant, entry_ in variants.items():
        assert set(entry_["modes"]) == {"vector", "hybrid"}
        assert all(mode["p50_ms"] > 0 for mode in entry_["modes"].values())
        assert entry_["recall@10"] == 1, variant  # 40 chunks: every index finds the exact top 10
        assert entry_["build_s"] > 0
        assert set(entry_["ratios"]) == {
            "index_bytes",
            "build_s",
            "vector_p50_ms",
            "vector_p95_ms",
            "hybrid_p50_ms",
            "hybrid_p95_ms",
        }
        sweep = [point["ef_search"] for point in entry_["ef_search_sweep"]]
        assert sweep == ([] if variant == "ivfflat" else [100])
    assert all(ratio == 1 for ratio in variants["default"]["ratios"].values())
    assert variants["ivfflat"]["settings"] == {"kind": "ivfflat", "storage": "vector", "lists": 1, "probes": 1}

    again = CliRunner().invoke(bench_group, [*args, "--indexes", "default,halfvec,hnsw-m32,ivfflat"])
    assert again.exit_code == 0, again.output + again.stderr
    for collection in ("bench_scale_40_halfvec", "bench_scale_40_hnsw_m32", "bench_scale_40_ivfflat"):
        assert f"reusing {collection}" in again.stderr
    table = CliRunner().invoke(bench_group, [*args[:-1], "--indexes", "halfvec,hnsw-m32,ivfflat", "--drop"]).output
    assert "vector index variants" in table
    assert all(f"\n  {variant} " in table for variant in variants)  # a row each


def test_bench_scale_rejects_an_unknown_index_variant():
    result = CliRunner().invoke(bench_group, ["scale", str(TINY_BEIR), "--indexes", "halfvec,diskann"])

    assert result.exit_code == 2 and "unknown index variant 'diskann'" in result.output
