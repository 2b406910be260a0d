"""The sync and the async search are one search: the same steps, so the same hits and the same errors.

Specification: `Engine.search` and `Engine.asearch` run `retriever.search.search_steps`
through two thin drivers; for every input below both return the same ranked hits, or
both raise the same error with the same message, a vector of the wrong size included.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from ingest import ChunkingConfig, SourceDocument
from retriever import (
    CollectionNotFound,
    DocumentNotFound,
    EmbeddingMismatch,
    Engine,
    InputError,
    LimitExceeded,
    SearchParams,
)

TOPICS = ["coffee grind espresso", "bicycle brake cable", "telescope aperture stars", "tomato seedlings soil"]


@pytest.fixture
def engine(settings, collection_name, fake_model) -> Engine:
    documents = [
        SourceDocument(f"doc-{i}", f"{TOPICS[i % 4]} note {i}", f"Note {i}", "t", {"topic": TOPICS[i % 4].split()[0]})
        for i in range(24)
    ]
    engine = Engine(settings, model=fake_model)
    engine.ingest(collection_name, documents, ChunkingConfig())
    return engine


def _cases(name: str, dimensions: int) -> list[tuple[str, dict[str, Any]]]:
    return [
        ("hybrid", {"collection": name, "query": "espresso grind", "params": SearchParams(k=5)}),
        ("text", {"collection": name, "query": "brake cable", "params": SearchParams(k=5, mode="text")}),
        ("vector", {"collection": name, "query": "stars", "params": SearchParams(k=5, mode="vector")}),
        (
            "filtered",
            {"collection": name, "query": "note", "params": SearchParams(k=8, filter={"topic": "tomato"})},
        ),
        ("like", {"collection": name, "query": None, "params": SearchParams(k=3), "like": "doc-1"}),
        (
            "caller's vector",
            {
                "collection": name,
                "query": "anything",
                "params": SearchParams(k=3, mode="vector"),
                "embedding": np.eye(dimensions, dtype=np.float32)[0],
            },
        ),
    ]


def _failing(name: str, dimensions: int) -> list[tuple[type[Exception], dict[str, Any]]]:
    return [
        (InputError, {"collection": name, "query": "  ", "params": SearchParams()}),
        (LimitExceeded, {"collection": name, "query": "coffee", "params": SearchParams(k=10_000)}),
        (CollectionNotFound, {"collection": "no_such_collection", "query": "coffee", "params": SearchParams()}),
        (DocumentNotFound, {"collection": name, "query": None, "params": SearchParams(), "like": "missing"}),
        (
            EmbeddingMismatch,
            {
                "collection": name,
                "query": "coffee",
                "params": SearchParams(mode="vector"),
                "embedding": np.ones(dimensions + 3, dtype=np.float32),
            },
        ),
    ]


def _ranking(result) -> list[tuple[str, float, int | None, int | None]]:
    return [(hit.id, round(hit.score, 12), hit.vector_rank, hit.text_rank) for hit in result.hits]


async def test_both_paths_return_the_same_hits(engine, collection_name, fake_model):
    for label, case in _cases(collection_name, fake_model.dimensions):
        synchronous = engine.search(**case)
        asynchronous = await engine.asearch(**case)
        assert synchronous.hits, label
        assert _ranking(synchronous) == _ranking(asynchronous), label


async def test_both_paths_raise_the_same_errors(engine, collection_name, fake_model):
    for error, case in _failing(collection_name, fake_model.dimensions):
        with pytest.raises(error) as synchronous:
            engine.search(**case)
        with pytest.raises(error) as asynchronous:
            await engine.asearch(**case)
        assert str(synchronous.value) == str(asynchronous.value)


async def test_a_vector_of_the_wrong_size_names_both_sizes(engine, collection_name, fake_model):
    wrong = np.ones(fake_model.dimensions + 3, dtype=np.float32)
    with pytest.raises(EmbeddingMismatch, match=rf"{fake_model.dimensions} dims.*{fake_model.dimensions + 3} dims"):
        await engine.asearch(collection_name, "coffee", SearchParams(mode="hybrid"), embedding=wrong)
