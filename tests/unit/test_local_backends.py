"""The local model's backends: plain float32 stays the default; int8 is the benchmarked candidate."""

from __future__ import annotations

import statistics
from typing import Any

import click
import numpy as np
import pytest

from bench.embed import Int8LocalEmbeddings, embed_table, run_embed_bench
from retriever.embeddings import EmbeddingModel, LocalEmbeddings, get_embedding_model
from retriever.settings import Settings

TEXTS = [
    "Vitamin D supplementation lowers the risk of respiratory infections in children.",
    "Hybrid retrieval fuses BM25 ranks with vector similarity ranks.",
    "Mitochondrial DNA mutations accumulate with age in human muscle tissue.",
    "PostgreSQL stores dense vectors with the pgvector extension.",
    "The ribosome translates messenger RNA into a chain of amino acids.",
    "Reciprocal rank fusion needs no score calibration between retrievers.",
]


@pytest.fixture(scope="module")
def plain() -> LocalEmbeddings:
    return LocalEmbeddings()


@pytest.fixture(scope="module")
def int8() -> Int8LocalEmbeddings:
    return Int8LocalEmbeddings()


@pytest.fixture(scope="module")
def bench_results() -> dict[str, Any]:
    return run_embed_bench(TEXTS, rounds=3, sample=4)


def test_int8_gives_unit_vectors_of_384_dimensions(int8: Int8LocalEmbeddings) -> None:
    vectors = int8.embed_array(TEXTS)
    assert vectors.shape == (len(TEXTS), 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_int8_vectors_point_where_the_plain_ones_do(plain: LocalEmbeddings, int8: Int8LocalEmbeddings) -> None:
    cosine = np.einsum("ij,ij->i", plain.embed_array(TEXTS), int8.embed_array(TEXTS))
    assert cosine.min() >= 0.97


def test_int8_ranks_the_matching_text_first(int8: Int8LocalEmbeddings) -> None:
    documents = int8.embed_array(TEXTS)
    query = int8.embed_array(["which database extension holds embeddings?"])[0]
    assert int(np.argmax(documents @ query)) == 3


def test_int8_takes_the_bulk_path_of_embedding_model(int8: Int8LocalEmbeddings) -> None:
    model = EmbeddingModel("local:all-MiniLM-L6-v2", int8)
    assert model.embed_documents(TEXTS[:2]).shape == (2, 384)
    assert model.embed_query(TEXTS[0]).dtype == np.float32


def test_quantising_leaves_other_instances_in_float32(plain: LocalEmbeddings, int8: Int8LocalEmbeddings) -> None:
    fresh = LocalEmbeddings()
    np.testing.assert_allclose(fresh.embed_array(TEXTS), plain.embed_array(TEXTS), atol=1e-6)


def test_the_configured_local_model_is_the_plain_one() -> None:
    model = get_embedding_model(Settings())
    assert model.name == "local:all-MiniLM-L6-v2"
    assert type(model.embeddings) is LocalEmbeddings


def test_bench_alternates_which_model_goes_first(bench_results: dict[str, Any]) -> None:
    assert [run["first"] for run in bench_results["rounds"]] == ["plain", "int8", "plain"]
    assert bench_results["texts"] == 4


def test_bench_reports_the_ratio_of_every_round_and_their_median(bench_results: dict[str, Any]) -> None:
    runs = bench_results["rounds"]
    for run in runs:
        assert run["plain"] > 0 and run["int8"] > 0
        assert run["ratio"] == pytest.approx(run["int8"] / run["plain"])
    assert bench_results["ratio_median"] == pytest.approx(statistics.median(run["ratio"] for run in runs))
    assert bench_results["plain_chunks_per_s"] == pytest.approx(statistics.median(run["plain"] for run in runs))


def test_bench_reports_how_close_the_vectors_are(bench_results: dict[str, Any]) -> None:
    assert 0.97 <= bench_results["cosine_min"] <= bench_results["cosine_mean"] <= 1.0 + 1e-6


def test_bench_refuses_an_empty_corpus() -> None:
    with pytest.raises(click.ClickException, match="no texts"):
        run_embed_bench([])


def test_table_shows_every_round_then_the_medians_and_the_cosine() -> None:
    results = {
        "texts": 256,
        "threads": 2,
        "rounds": [
            {"first": "plain", "plain": 30.0, "int8": 42.0, "ratio": 1.4},
            {"first": "int8", "plain": 28.0, "int8": 36.4, "ratio": 1.3},
        ],
        "plain_chunks_per_s": 29.0,
        "int8_chunks_per_s": 39.2,
        "ratio_median": 1.35,
        "cosine_mean": 0.9921,
        "cosine_min": 0.9870,
    }
    lines = embed_table(results).splitlines()
    assert "256 texts" in lines[0] and "2 threads" in lines[0]
    assert lines[3].split() == ["1", "plain", "30.0", "42.0", "1.40×"]
    assert lines[4].split() == ["2", "int8", "28.0", "36.4", "1.30×"]
    assert lines[5].split() == ["median", "29.0", "39.2", "1.35×"]
    assert lines[6] == "cosine int8 vs plain: mean 0.9921, min 0.9870"
