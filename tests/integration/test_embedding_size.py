"""A model that keeps its name but changes its vector size is refused, clearly, on every path.

Specification: an OpenAI-compatible server may start returning vectors of another size
under the same model name. The collection remembers its dimensions: an ingest or a
search with vectors of another size raises `EmbeddingMismatch` naming both sizes (exit 2
on the CLI, 409 over HTTP), never a database error, and nothing is written.
"""

from __future__ import annotations

import numpy as np
import pytest
from langchain_core.embeddings import Embeddings
from litestar.testing import AsyncTestClient

from ingest import ChunkingConfig, SourceDocument
from retriever import EmbeddingMismatch, EmbeddingModel, Engine, SearchParams
from retriever.http import create_app

NAME = "test:same-name"


class SizedEmbeddings(Embeddings):
    """Unit vectors of a fixed size, derived from the text's length (ranking is not judged here)."""

    def __init__(self, dimensions: int) -> None:
        self.dimensions = dimensions

    def _one(self, text: str) -> list[float]:
        vector = np.ones(self.dimensions, dtype=np.float32)
        vector[len(text) % self.dimensions] += 1.0
        return (vector / np.linalg.norm(vector)).tolist()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._one(text) for text in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._one(text)


def documents(*ids: str) -> list[SourceDocument]:
    return [SourceDocument(i, f"a note called {i} about ferns", None, "t", {}) for i in ids]


@pytest.fixture
def resized(settings, collection_name) -> EmbeddingModel:
    """A collection built with 8-dimensional vectors; the same model name now returns 16."""
    Engine(settings, model=EmbeddingModel(NAME, SizedEmbeddings(8))).ingest(
        collection_name, documents("a", "b"), ChunkingConfig()
    )
    return EmbeddingModel(NAME, SizedEmbeddings(16))


def test_an_ingest_with_vectors_of_another_size_is_refused_and_writes_nothing(settings, collection_name, resized):
    engine = Engine(settings, model=resized)
    with pytest.raises(EmbeddingMismatch, match=r"\(8 dims\).*\(16 dims\)"):
        engine.ingest(collection_name, documents("c"), ChunkingConfig())
    assert engine.collection(collection_name).chunk_count == 2


def test_a_search_with_vectors_of_another_size_is_refused(settings, collection_name, resized):
    with pytest.raises(EmbeddingMismatch, match=r"\(8 dims\).*\(16 dims\)"):
        Engine(settings, model=resized).search(collection_name, "ferns", SearchParams(mode="hybrid"))


async def test_over_http_another_size_is_a_409_not_a_500(settings, collection_name, resized):
    async with AsyncTestClient(create_app(settings, model=resized)) as client:
        searched = await client.post(f"/v1/collections/{collection_name}/search", json={"query": "ferns"})
        posted = await client.post(
            f"/v1/collections/{collection_name}/documents", json={"documents": [{"id": "c", "text": "new fern note"}]}
        )
    for response in (searched, posted):
        assert response.status_code == 409, response.text
        assert response.json()["type"] == "urn:hybrid-rag:problem:embedding-mismatch"
