"""Query embeddings on the search paths: concurrent API searches share forward passes, repeats come from the cache.

Searches run against the embedded Postgres. The model is a stand-in for the packaged local model
(hashed-word vectors, a `LocalEmbeddings` whose every forward pass takes a little time and is
recorded); the last test holds the real packaged model to the promise that a batch changes no vector.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import threading
import time
from collections.abc import AsyncIterator, Sequence

import anyio
import httpx
import numpy as np
import pytest

from retriever import Engine, SearchParams
from retriever.embeddings import EmbeddingModel, LocalEmbeddings
from retriever.http import create_app

DOCUMENTS = [
    {"id": "telescope", "text": "a lens telescope for a beginner: aperture matters more than magnification"},
    {"id": "espresso", "text": "grind finer when the espresso shot runs fast and tastes sour"},
    {"id": "derailleur", "text": "adjust the rear derailleur with the barrel adjuster a quarter turn at a time"},
    {"id": "tomatoes", "text": "grow tomatoes in pots with deep soil and water them every morning"},
]
QUERIES = [
    "lens telescope aperture",
    "sour espresso shot",
    "rear derailleur adjuster",
    "tomatoes in pots",
    "beginner magnification",
    "grind finer",
    "barrel adjuster turn",
    "water every morning",
]


class SlowHashModel(LocalEmbeddings):
    """Hashed-word vectors; each forward pass takes `seconds` and is recorded in `passes`."""

    max_seq_length = 256

    def __init__(self, seconds: float = 0.05) -> None:
        self.seconds = seconds
        self.passes: list[list[str]] = []
        self._lock = threading.Lock()

    def embed_array(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            self.passes.append(list(texts))
        time.sleep(self.seconds)
        rows = np.zeros((len(texts), 32), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().split():
                rows[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % 32] += 1.0
        return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-9)

    def token_count(self, text: str) -> int:
        return len(text.split())

    def passes_with(self, texts: Sequence[str]) -> list[list[str]]:
        return [batch for batch in self.passes if set(batch) & set(texts)]


@pytest.fixture
def slow_model() -> tuple[EmbeddingModel, SlowHashModel]:
    inner = SlowHashModel()
    return EmbeddingModel("test:slow-hash-32", inner), inner


@contextlib.asynccontextmanager
async def filled_client(settings, model, collection_name) -> AsyncIterator[httpx.AsyncClient]:
    """The app on this test's event loop (litestar's test clients answer one request at a time), filled."""
    app = create_app(settings, model=model)
    async with app.lifespan(), httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://api") as client:
        response = await client.post(f"/v1/collections/{collection_name}/documents", json={"documents": DOCUMENTS})
        assert response.status_code == 200, response.text
        yield client


def _ranking(response) -> list[tuple[str, float]]:
    assert response.status_code == 200, response.text
    return [(hit["document_id"], round(hit["score"], 6)) for hit in response.json()["results"]]


async def test_concurrent_api_searches_share_forward_passes_and_rank_as_searches_one_at_a_time(
    settings, slow_model, collection_name
):
    model, inner = slow_model
    async with filled_client(dataclasses.replace(settings, query_cache_size=0), model, collection_name) as client:
        url = f"/v1/collections/{collection_name}/search"
        alone = [_ranking(await client.post(url, json={"query": query, "k": 3})) for query in QUERIES]
        assert len(inner.passes_with(QUERIES)) == len(QUERIES)
        inner.passes.clear()

        together = await asyncio.gather(*(client.post(url, json={"query": query, "k": 3}) for query in QUERIES))
        assert [_ranking(response) for response in together] == alone
        passes = inner.passes_with(QUERIES)
        assert sorted(text for batch in passes for text in batch) == sorted(QUERIES)
        assert len(passes) < len(QUERIES), passes  # at least one pass embedded several queries


async def test_a_repeated_api_search_embeds_its_query_once(settings, slow_model, collection_name):
    model, inner = slow_model
    async with filled_client(settings, model, collection_name) as client:
        url = f"/v1/collections/{collection_name}/search"
        first = _ranking(await client.post(url, json={"query": "sour espresso shot"}))
        second = _ranking(await client.post(url, json={"query": "sour espresso shot", "k": 2}))
        assert second == first[:2]
        assert inner.passes_with(["sour espresso shot"]) == [["sour espresso shot"]]


async def test_the_old_path_setting_embeds_every_query_alone_and_caches_nothing(settings, slow_model, collection_name):
    model, inner = slow_model
    old_path = dataclasses.replace(settings, query_batch_max=1, query_cache_size=0)
    async with filled_client(old_path, model, collection_name) as client:
        url = f"/v1/collections/{collection_name}/search"
        queries = [*QUERIES, QUERIES[0]]
        responses = await asyncio.gather(*(client.post(url, json={"query": query}) for query in queries))
        assert all(response.status_code == 200 for response in responses)
        assert sorted(inner.passes_with(queries)) == sorted([query] for query in queries)


def test_a_repeated_search_on_the_synchronous_path_embeds_its_query_once(settings, slow_model, collection_name):
    model, inner = slow_model
    engine = Engine(settings, model=model)
    engine.ingest_records(collection_name, DOCUMENTS, "test")
    first = engine.search(collection_name, "grind finer", SearchParams(k=2))
    second = engine.search(collection_name, "grind finer", SearchParams(k=2))
    assert [hit.document_id for hit in second.hits] == [hit.document_id for hit in first.hits]
    assert inner.passes_with(["grind finer"]) == [["grind finer"]]
    assert engine.query_embedder.cache.hits == 1


async def test_batched_query_vectors_equal_the_packaged_models_one_by_one(local_model):
    from retriever.query_embedder import QueryEmbedder

    local_model.load()
    queries = [*QUERIES, "what should I buy someone who wants to start stargazing", "109P Swift-Tuttle", "ENIAC"]
    embedder = QueryEmbedder(cache_size=0)
    vectors: dict[str, np.ndarray] = {}

    async def one(query: str) -> None:
        vectors[query] = await embedder.aembed(local_model, query)

    async with anyio.create_task_group() as tasks:
        for query in queries:
            tasks.start_soon(one, query)
    assert embedder.forward_passes < len(queries)  # the first alone, the others together
    for query in queries:
        alone = local_model.embed_query(query)
        assert float(np.dot(vectors[query], alone)) > 0.99999, query
        np.testing.assert_allclose(vectors[query], alone, atol=1e-5)
