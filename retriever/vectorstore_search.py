"""The vector store's searches: nearest chunks with their distances, MMR over them, and the fused query.

`VectorSearches` is mixed into `retriever.vectorstore.HybridVectorStore`. Each search is
the same steps (`retriever.nearest.nearest_steps`, or the engine's fused search) run by a
sync and an async wrapper; the async ones embed the query in a worker thread first.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import anyio
import anyio.to_thread
import numpy as np
from langchain_core.documents import Document
from langchain_core.vectorstores.utils import maximal_marginal_relevance

from retriever.embeddings import EmbeddingModel
from retriever.engine import Engine, map_errors
from retriever.errors import CollectionNotFound
from retriever.nearest import Neighbour, nearest_steps
from retriever.results import Hit, SearchParams
from retriever.search import run_steps, run_steps_async, validate_query
from retriever.settings import Settings

__all__ = ["VectorSearches", "hit_document", "mmr_documents", "neighbour_document", "relevance"]

Filter = Mapping[str, Any] | None


def neighbour_document(found: Neighbour) -> Document:
    """A chunk as the store returns it: its document's id, its content and its metadata, as stored."""
    return Document(id=found.document_id, page_content=found.content, metadata=found.metadata)


def hit_document(hit: Hit) -> Document:
    """A fused-search hit as the store returns it: metadata gains `retrieval` (score, vector_rank, text_rank)."""
    retrieval = {"score": hit.score, "vector_rank": hit.vector_rank, "text_rank": hit.text_rank}
    return Document(id=hit.document_id, page_content=hit.content, metadata={**hit.metadata, "retrieval": retrieval})


def relevance(distance: float) -> float:
    """A cosine distance (0 to 2) as a relevance score in [0, 1]: the cosine similarity 1 − distance, at least 0."""
    return max(0.0, 1.0 - distance)


def mmr_documents(query: Any, found: Sequence[Neighbour], k: int, lambda_mult: float) -> list[Document]:
    """The `k` of `found` that langchain-core's maximal marginal relevance picks, in its order."""
    if not found:
        return []
    vectors = [neighbour.embedding.tolist() for neighbour in found]  # type: ignore[union-attr]
    chosen = maximal_marginal_relevance(np.asarray(query, dtype=np.float32), vectors, lambda_mult, min(k, len(found)))
    return [neighbour_document(found[i]) for i in chosen]


class VectorSearches:
    """Mixed into `HybridVectorStore`: every search, each a sync and an async wrapper over the same steps."""

    collection: str
    settings: Settings
    model: EmbeddingModel
    _engine: Engine

    def _steps(self, vector: Any, k: int, filter: Filter, model: str | None, vectors: bool) -> Any:
        embedding = np.asarray(vector, dtype=np.float32)
        return nearest_steps(
            self.settings, self.collection, embedding, k=k, filter=filter, model_name=model, with_vectors=vectors
        )

    def _nearest(self, vector: Any, k: int, filter: Filter, model: str | None, vectors: bool = False) -> list[Any]:
        with self._engine.reader() as conn:
            return run_steps(conn, self._steps(vector, k, filter, model, vectors))

    async def _anearest(self, vector: Any, k: int, filter: Filter, model: str | None, vectors: bool = False) -> list:
        async with self._engine.areader() as conn:
            return await run_steps_async(conn, self._steps(vector, k, filter, model, vectors))

    def _embed_query(self, query: str) -> np.ndarray:
        with map_errors():
            return self.model.embed_query(validate_query(query, self.settings))

    async def _aembed_query(self, query: str) -> np.ndarray:
        return await anyio.to_thread.run_sync(self._embed_query, query)

    def similarity_search_with_score(
        self, query: str, k: int = 4, filter: Filter = None
    ) -> list[tuple[Document, float]]:
        """The `k` chunks nearest to the query, with their cosine DISTANCE (0 to 2, lower is nearer)."""
        found = self._nearest(self._embed_query(query), k, filter, self.model.name)
        return [(neighbour_document(n), n.distance) for n in found]

    async def asimilarity_search_with_score(
        self, query: str, k: int = 4, filter: Filter = None
    ) -> list[tuple[Document, float]]:
        """Async `similarity_search_with_score`."""
        found = await self._anearest(await self._aembed_query(query), k, filter, self.model.name)
        return [(neighbour_document(n), n.distance) for n in found]

    def similarity_search(self, query: str, k: int = 4, filter: Filter = None) -> list[Document]:
        """The `k` chunks nearest to the query (vector search, HNSW), nearest first; `filter`: search's filters."""
        return [doc for doc, _ in self.similarity_search_with_score(query, k, filter)]

    async def asimilarity_search(self, query: str, k: int = 4, filter: Filter = None) -> list[Document]:
        """Async `similarity_search`."""
        return [doc for doc, _ in await self.asimilarity_search_with_score(query, k, filter)]

    def similarity_search_by_vector(self, embedding: list[float], k: int = 4, filter: Filter = None) -> list[Document]:
        """The `k` chunks nearest to a caller's vector (of the collection's size: else `EmbeddingMismatch`)."""
        return [neighbour_document(n) for n in self._nearest(embedding, k, filter, None)]

    async def asimilarity_search_by_vector(
        self, embedding: list[float], k: int = 4, filter: Filter = None
    ) -> list[Document]:
        """Async `similarity_search_by_vector`."""
        return [neighbour_document(n) for n in await self._anearest(embedding, k, filter, None)]

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        """Relevance in [0, 1] from a cosine distance: `relevance`, the cosine similarity (negatives as 0)."""
        return relevance

    def max_marginal_relevance_search_by_vector(
        self, embedding: list[float], k: int = 4, fetch_k: int = 20, lambda_mult: float = 0.5, filter: Filter = None
    ) -> list[Document]:
        """`k` chunks picked by maximal marginal relevance among the `fetch_k` nearest to a caller's vector."""
        found = self._nearest(embedding, fetch_k, filter, None, vectors=True)
        return mmr_documents(embedding, found, k, lambda_mult)

    async def amax_marginal_relevance_search_by_vector(
        self, embedding: list[float], k: int = 4, fetch_k: int = 20, lambda_mult: float = 0.5, filter: Filter = None
    ) -> list[Document]:
        """Async `max_marginal_relevance_search_by_vector`."""
        found = await self._anearest(embedding, fetch_k, filter, None, vectors=True)
        return mmr_documents(embedding, found, k, lambda_mult)

    def max_marginal_relevance_search(
        self, query: str, k: int = 4, fetch_k: int = 20, lambda_mult: float = 0.5, filter: Filter = None
    ) -> list[Document]:
        """MMR for a query: `lambda_mult` 1 ranks by similarity to the query alone, 0 by diversity alone."""
        vector = self._embed_query(query)
        found = self._nearest(vector, fetch_k, filter, self.model.name, vectors=True)
        return mmr_documents(vector, found, k, lambda_mult)

    async def amax_marginal_relevance_search(
        self, query: str, k: int = 4, fetch_k: int = 20, lambda_mult: float = 0.5, filter: Filter = None
    ) -> list[Document]:
        """Async `max_marginal_relevance_search`."""
        vector = await self._aembed_query(query)
        found = await self._anearest(vector, fetch_k, filter, self.model.name, vectors=True)
        return mmr_documents(vector, found, k, lambda_mult)

    def hybrid_search(self, query: str, k: int = 4, **params: Any) -> list[Document]:
        """The fused search (vector + BM25, one statement); `params`: `SearchParams`' (mode, filter, weights,
        rrf_k, candidates, fusion, collapse, probes). A collection not yet written finds nothing."""
        search = SearchParams(k=k, **params)
        with contextlib.suppress(CollectionNotFound):
            return [hit_document(hit) for hit in self._engine.search(self.collection, query, search).hits]
        return []

    async def ahybrid_search(self, query: str, k: int = 4, **params: Any) -> list[Document]:
        """Async `hybrid_search`."""
        search = SearchParams(k=k, **params)
        with contextlib.suppress(CollectionNotFound):
            return [hit_document(hit) for hit in (await self._engine.asearch(self.collection, query, search)).hits]
        return []
