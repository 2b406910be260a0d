"""`HybridVectorStore`: a LangChain `VectorStore` over a collection's tables, sync and natively async.

It writes what ingest writes (chunks, BM25 postings, document frequencies, statistics, in
one transaction per batch: `retriever.store.writer`), so the fused search, the CLI and the
HTTP API see its documents, and it reads what they wrote. Every operation is a shared
plan (`retriever.store.records`, `writer`, `drop`; `retriever.nearest`) run by a thin sync
or async wrapper; the async ones use async psycopg connections, and only embedding (CPU)
runs in a worker thread, before the write.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import anyio
import anyio.to_thread
import numpy as np
import psycopg
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from ingest import ChunkingConfig
from retriever.connections import borrow, ensure_migrated
from retriever.engine import Engine, map_errors
from retriever.errors import CollectionNotFound
from retriever.search import run_steps, run_steps_async
from retriever.settings import Settings, get_settings
from retriever.store.collections import INDEXES, check_embeddings, create_collection, ensure_index, ensure_indexes
from retriever.store.database import configure_async, primary_dsn
from retriever.store.drop import adrop_locked, drop_locked
from retriever.store.records import batches, changed, prepare_records
from retriever.store.tables import Collection, validate_name
from retriever.store.vector_index import VectorIndex
from retriever.store.writer import (
    PreparedDocument,
    adelete_documents,
    aexisting_hashes,
    awrite_documents,
    delete_documents,
    existing_hashes,
    write_documents,
)
from retriever.vectorstore_plan import (
    chunking_of,
    delete_ids,
    document_ids,
    get_steps,
    registered,
    store_model,
    unknown,
)
from retriever.vectorstore_retriever import HybridStoreRetriever
from retriever.vectorstore_search import VectorSearches

__all__ = ["HybridVectorStore"]


class HybridVectorStore(VectorSearches, VectorStore):
    """A collection as a LangChain vector store; its ids are document ids.

    `HybridVectorStore("docs")` embeds with the configured model (EMBEDDINGS); a given
    `Embeddings` is used as is, recorded under `embedding_name` (default: see
    `store_model`), and a collection made by another model, or of another vector size,
    raises `EmbeddingMismatch`. The collection is created on the first write (`language`,
    `accent_insensitive` and `index`, a `VectorIndex`, apply then); until then it searches as
    empty. An IVFFlat index is built at the end of the first write that leaves rows (its
    cells are k-means over them): after a small first write, `hybrid-rag maintain --reindex`.

    Each `Document` written is one document: its `id` (else a new UUID) is the document
    id, its text and metadata are stored as they are, in one chunk (`chunking=` a
    `ChunkingConfig`, or True for the default one, splits it as ingest does). Writing an
    unchanged document again embeds nothing. Searches return each chunk as a `Document`
    whose `id` is its document's. Scores: `similarity_search_with_score` gives the cosine
    DISTANCE (0 same direction, 1 orthogonal, 2 opposite; lower is nearer); relevance
    scores (`similarity_score_threshold`) are the cosine SIMILARITY, 1 − distance, with
    negative similarities as 0, so they lie in [0, 1].

    `as_retriever()` runs the hybrid fused query by default; `search_kwargs` takes `k`,
    `mode`, `filter`, `weights`, `rrf_k`, `candidates`, `fusion`, `collapse`. `pool` serves
    sync searches; `async_pool`, a pool of connections to the PRIMARY, serves async searches
    and writes (else each operation opens its own connection). Errors are hybrid-rag's.
    """

    def __init__(
        self,
        collection: str,
        embedding: Embeddings | None = None,
        *,
        settings: Settings | None = None,
        embedding_name: str | None = None,
        chunking: ChunkingConfig | bool | None = None,
        language: str | None = None,
        accent_insensitive: bool = False,
        index: VectorIndex | None = None,
        batch_size: int = 256,
        pool: ConnectionPool | None = None,
        async_pool: AsyncConnectionPool | None = None,
    ) -> None:
        with map_errors():
            self.collection = validate_name(collection)
            self.settings = settings or get_settings()
            self.model = store_model(embedding, self.settings, embedding_name)
            self.chunking = chunking_of(chunking)
        self.language, self.accent_insensitive, self.batch_size = language, accent_insensitive, batch_size
        self.index = index
        self._engine = Engine(self.settings, model=self.model, pool=pool, async_pool=async_pool)
        self._async_pool = async_pool
        self._dsn: str | None = None

    @property
    def embeddings(self) -> Embeddings:
        """The LangChain embeddings the store embeds with."""
        return self.model.embeddings

    # -- shared steps -----------------------------------------------------------------

    def _prepare(self, documents: Sequence[Document], options: dict[str, Any]) -> tuple[list[str], list[Any], int]:
        """The documents' ids, the documents to write, and chunks per transaction (the keywords' or the store's)."""
        with map_errors():
            ids = document_ids(documents, options.pop("ids", None))
            chunking = chunking_of(options.pop("chunking", self.chunking))
            size = int(options.pop("batch_size", None) or self.batch_size)
            unknown(options)
            texts, metadatas = [d.page_content for d in documents], [d.metadata for d in documents]
            return ids, prepare_records(ids, texts, metadatas, chunking), size

    def _embed(self, found: Collection | None, batch: Sequence[PreparedDocument]) -> tuple[Collection, np.ndarray]:
        """The batch's vectors, and the collection they go to: created for them when there is none yet."""
        vectors = self.model.embed_documents([chunk.content for document in batch for chunk in document.chunks])
        collection = found or self._create(vectors.shape[1])
        check_embeddings(collection, self.model.name, vectors.shape[1])
        return collection, vectors

    def _create(self, dimensions: int) -> Collection:
        """Create the collection for this model's vectors, with its search indexes (a first write)."""
        with self._engine.connection() as conn:
            made = create_collection(
                conn,
                self.collection,
                embedding_model=self.model.name,
                dimensions=dimensions,
                language=self.language,
                accent_insensitive=self.accent_insensitive,
                index=self.index,
            )
            for kind in INDEXES:  # an IVFFlat waits for rows: see `_index_rows`
                ensure_index(conn, made, kind)
            return made

    def _index_rows(self, collection: Collection | None) -> None:
        """Build an IVFFlat index missing (an empty collection has none) now that its first rows are there."""
        if collection is not None and collection.vector_index.kind == "ivfflat":
            with self._engine.connection() as conn:
                ensure_indexes(conn, collection)

    # -- writes -----------------------------------------------------------------------

    def add_documents(self, documents: list[Document], **kwargs: Any) -> list[str]:
        """Write the documents (replacing those with the same ids); returns their ids, in order.

        Keywords: `ids` (over the documents' own), `chunking`, `batch_size` (chunks per
        transaction). Raises `InputError` for a document PostgreSQL cannot hold, before any is written.
        """
        ids, prepared, size = self._prepare(documents, kwargs)
        with self._engine.connection() as conn:
            collection = run_steps(conn, registered(self.collection, self.model.name))
            stored = existing_hashes(conn, collection, ids) if collection else {}
        for batch in batches(changed(prepared, stored), size):
            collection, vectors = self._embed(collection, batch)  # holding no connection
            with self._engine.connection() as conn:
                write_documents(conn, collection, batch, vectors)
        self._index_rows(collection)
        return ids

    async def aadd_documents(self, documents: list[Document], **kwargs: Any) -> list[str]:
        """Async `add_documents`: each batch embedded in a worker thread (which creates the collection on a first
        write), then written on an async connection: none is held while the model runs."""
        ids, prepared, size = self._prepare(documents, kwargs)
        async with self._primary() as conn:
            collection = await run_steps_async(conn, registered(self.collection, self.model.name))
            stored = await aexisting_hashes(conn, collection, ids) if collection else {}
        for batch in batches(changed(prepared, stored), size):
            collection, vectors = await anyio.to_thread.run_sync(self._embed, collection, batch)
            async with self._primary() as conn:
                await awrite_documents(conn, collection, batch, vectors)
        await anyio.to_thread.run_sync(self._index_rows, collection)
        return ids

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool:
        """Delete these documents with all their chunks (ids not stored are ignored); returns True."""
        names = delete_ids(ids, kwargs)
        with self._engine.connection() as conn:
            if collection := run_steps(conn, registered(self.collection)):
                delete_documents(conn, collection, names)
        return True

    async def adelete(self, ids: list[str] | None = None, **kwargs: Any) -> bool:
        """Async `delete`."""
        names = delete_ids(ids, kwargs)
        async with self._primary() as conn:
            if collection := await run_steps_async(conn, registered(self.collection)):
                await adelete_documents(conn, collection, names)
        return True

    def delete_collection(self) -> None:
        """Drop the collection with all its documents and tables (nothing when it does not exist)."""
        with self._engine.connection() as conn, contextlib.suppress(CollectionNotFound):
            drop_locked(conn, self.collection)

    async def adelete_collection(self) -> None:
        """Async `delete_collection`."""
        async with self._primary() as conn:
            with contextlib.suppress(CollectionNotFound):
                await adrop_locked(conn, self.collection)

    # -- reads ------------------------------------------------------------------------

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The stored documents with these ids, each chunk in order (missing ids are left out)."""
        with self._engine.connection() as conn:
            return run_steps(conn, get_steps(self.collection, ids))  # type: ignore[arg-type]

    async def aget_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """Async `get_by_ids`."""
        async with self._primary() as conn:
            return await run_steps_async(conn, get_steps(self.collection, ids))  # type: ignore[arg-type]

    def as_retriever(self, **kwargs: Any) -> HybridStoreRetriever:
        """A retriever whose default `search_type` is "hybrid" (see `HybridStoreRetriever`)."""
        tags = kwargs.pop("tags", None) or [*self._get_retriever_tags()]
        return HybridStoreRetriever(vectorstore=self, tags=tags, **kwargs)

    # -- construction -----------------------------------------------------------------

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings | None = None,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        collection: str,
        **kwargs: Any,
    ) -> HybridVectorStore:
        """A store over `collection` with these texts written (keywords: the constructor's)."""
        store = cls(collection, embedding, **kwargs)
        store.add_texts(texts, metadatas, ids=ids)
        return store

    @classmethod
    async def afrom_texts(
        cls,
        texts: list[str],
        embedding: Embeddings | None = None,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        collection: str,
        **kwargs: Any,
    ) -> HybridVectorStore:
        """Async `from_texts`."""
        store = cls(collection, embedding, **kwargs)
        await store.aadd_texts(texts, metadatas, ids=ids)
        return store

    # -- connections ------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _primary(self) -> AsyncIterator[psycopg.AsyncConnection]:
        """An async connection to the primary (`async_pool`, else its own); errors mapped to ours."""
        with map_errors():
            if self._async_pool is not None:
                async with borrow(self._async_pool) as conn:
                    yield conn
                return
            if self._dsn is None:  # may start the embedded server and migrate: once, not on the event loop
                self._dsn = await anyio.to_thread.run_sync(_migrated_primary, self.settings)
            async with await psycopg.AsyncConnection.connect(self._dsn, autocommit=True) as conn:
                await configure_async(conn)
                yield conn


def _migrated_primary(settings: Settings) -> str:
    ensure_migrated(settings)
    return primary_dsn(settings)
