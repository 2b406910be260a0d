"""`HybridRetriever`: the hybrid query as a LangChain `BaseRetriever`, sync and async."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from psycopg_pool import AsyncConnectionPool, ConnectionPool
from pydantic import ConfigDict, Field, PrivateAttr

from retriever.connections import ensure_migrated
from retriever.engine import Engine, map_errors
from retriever.results import DEFAULTS, Fusion, Hit, Mode, SearchParams
from retriever.settings import Settings, get_settings
from retriever.store.database import configure, read_dsns

__all__ = ["HybridRetriever", "hit_to_document"]

_PARAMS = {f.name for f in dataclasses.fields(SearchParams)}


def hit_to_document(hit: Hit) -> Document:
    """A LangChain Document with the chunk's id, metadata and its `retrieval` scores."""
    metadata = {
        **hit.metadata,
        "document_id": hit.document_id,
        "retrieval": {"score": hit.score, "vector_rank": hit.vector_rank, "text_rank": hit.text_rank},
    }
    return Document(id=hit.id, page_content=hit.content, metadata=metadata)


class HybridRetriever(BaseRetriever):
    """Hybrid (HNSW + BM25, RRF-fused) search over one collection, in one SQL statement.

    Per call, `invoke(query, k=..., filter=..., mode=...)` overrides the defaults below;
    `invoke("", like=DOCUMENT_ID)` ranks the collection against a stored document instead.

    Example:
        retriever = HybridRetriever(collection="docs", k=5)
        docs = retriever.invoke("how do I reset a breaker?", filter={"lang": "en"})
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    collection: str
    k: int = 4
    mode: Mode = "hybrid"
    filter: dict[str, Any] | None = None
    candidates: int = DEFAULTS["candidates"]
    fusion: Fusion = DEFAULTS["fusion"]
    rrf_k: int = DEFAULTS["rrf_k"]
    weights: tuple[float, float] = DEFAULTS["weights"]
    collapse: bool = False
    probes: int | None = None  # IVFFlat lists read (None: √lists, more for deep `candidates`)
    settings: Settings | None = Field(default=None, exclude=True)
    pool: ConnectionPool | None = Field(default=None, exclude=True)
    async_pool: AsyncConnectionPool | None = Field(default=None, exclude=True)

    _own_pool: ConnectionPool | None = PrivateAttr(default=None)
    _engines: dict[str, Engine] = PrivateAttr(default_factory=dict)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def _settings(self) -> Settings:
        return self.settings or get_settings()

    def _params(self, overrides: dict[str, Any]) -> SearchParams:
        unknown = set(overrides) - _PARAMS
        if unknown:
            raise TypeError(f"unknown search arguments: {', '.join(sorted(unknown))}")
        defaults = {
            name: getattr(self, name)
            for name in ("k", "mode", "filter", "candidates", "fusion", "rrf_k", "weights", "collapse", "probes")
        }
        return SearchParams(**{**defaults, **overrides})

    def _engine(self, kind: str) -> Engine:
        """The engine of the sync (`pool`, or one of its own) or the async (`async_pool`) path."""
        with self._lock:
            if kind not in self._engines:
                settings = self._settings()
                if kind == "async":
                    self._engines[kind] = Engine(settings, async_pool=self.async_pool)
                else:
                    self._engines[kind] = Engine(settings, pool=self.pool or self._open_pool(settings))
            return self._engines[kind]

    def _open_pool(self, settings: Settings) -> ConnectionPool:
        if not settings.database_read_urls:
            with map_errors():
                ensure_migrated(settings)
        with map_errors():
            self._own_pool = ConnectionPool(
                read_dsns(settings)[0],
                min_size=1,
                max_size=4,
                configure=configure,
                kwargs={"autocommit": True},
                open=True,
                timeout=settings.pool_timeout_s,
            )
        return self._own_pool

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        like = kwargs.pop("like", None)
        result = self._engine("sync").search(self.collection, query, self._params(kwargs), like=like)
        return [hit_to_document(hit) for hit in result.hits]

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        like = kwargs.pop("like", None)
        result = await self._engine("async").asearch(self.collection, query, self._params(kwargs), like=like)
        return [hit_to_document(hit) for hit in result.hits]

    def close(self) -> None:
        """Close the connection pool this retriever opened for itself, if any."""
        if self._own_pool is not None:
            self._own_pool.close()
            self._own_pool = None
            self._engines.pop("sync", None)
