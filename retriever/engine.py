"""The engine: settings, the embedding model, connections, and every operation the edges offer.

The CLI, the HTTP API, the LangChain retriever, `eval` and `bench` all go through one
`Engine`. It embeds a query before it takes a connection, migrates the schema the first
time it opens the primary, and runs every operation inside `retriever.boundary.map_errors`,
where lower-level errors (psycopg's, the pool's, the ingest package's) become ours.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import psycopg
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from ingest import ChunkingConfig, SkippedSource, SourceDocument, count_documents, iter_documents, iter_records
from retriever.backups import CollectionBackups
from retriever.boundary import map_errors
from retriever.connections import ApiPools, borrow, ensure_migrated, open_primary
from retriever.embeddings import EmbeddingModel, get_embedding_model
from retriever.errors import CollectionNotFound
from retriever.lifecycle import DocumentLifecycle
from retriever.query_embedder import QueryEmbedder
from retriever.reembed import CollectionReembedding
from retriever.searching import Searching
from retriever.settings import Settings, get_settings
from retriever.store import documents as lifecycle
from retriever.store.collections import check_embeddings, create_collection, get_collection, list_collections
from retriever.store.database import configure_async, connect, read_dsns
from retriever.store.maintenance import CollectionStats, maintain_collection
from retriever.store.pipeline import IngestReport, ingest_documents
from retriever.store.tables import Collection
from retriever.store.vector_index import VectorIndex
from retriever.topics import CollectionTopics

__all__ = ["Engine", "map_errors"]  # map_errors: the boundary every operation runs inside


class Engine(Searching, DocumentLifecycle, CollectionBackups, CollectionTopics, CollectionReembedding):
    """Everything a search or an ingest needs, owned once: settings, model, connections.

    Without pools every operation opens its own connection (the CLI, scripts). `pool` /
    `async_pool` serve searches from a caller's pools (the LangChain retriever); the
    API's `retriever.serving.ServingEngine` opens pools of its own for its lifetime.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        model: EmbeddingModel | None = None,
        pool: ConnectionPool | None = None,
        async_pool: AsyncConnectionPool | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self._model = model
        self._reader_pool = pool
        self._async_pool = async_pool
        self._pools: ApiPools | None = None  # while serving
        self._turn = itertools.count()
        self.query_embedder = QueryEmbedder.from_settings(self.settings)  # cached; batched when async
        self.models: dict[str, EmbeddingModel] = {}  # by name: models this engine re-embedded with
        self._collection_models: dict[str, EmbeddingModel] = {}  # collections whose queries another model embeds

    @property
    def model(self) -> EmbeddingModel:
        """The embedding model (named now, loaded on first use)."""
        if self._model is None:
            self._model = get_embedding_model(self.settings)
        return self._model

    # -- connections ------------------------------------------------------------------

    @contextlib.contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """A connection to the primary, for writes and administration; errors mapped to ours."""
        with map_errors():
            if self._pools is not None:
                with self._pools.writes.connection() as conn:
                    yield conn
            else:
                with open_primary(self.settings) as conn:
                    yield conn

    @contextlib.contextmanager
    def reader(self) -> Iterator[psycopg.Connection]:
        """A connection for searches: the caller's pool, the read replicas in turn, else the primary."""
        replicas = self.settings.database_read_urls
        with map_errors():
            if self._reader_pool is not None:
                with self._reader_pool.connection() as conn:
                    yield conn
            elif replicas:
                with connect(replicas[next(self._turn) % len(replicas)]) as conn:
                    yield conn
            else:
                with self.connection() as conn:
                    yield conn

    @contextlib.asynccontextmanager
    async def areader(self) -> AsyncIterator[psycopg.AsyncConnection]:
        """Async `reader`: the pools when open (replicas in turn), else a fresh connection."""
        with map_errors():
            pools = self._async_pools()
            if pools:
                async with borrow(pools[next(self._turn) % len(pools)]) as conn:
                    yield conn
                return
            if not self.settings.database_read_urls:  # may start the embedded server: not on the event loop
                await anyio.to_thread.run_sync(ensure_migrated, self.settings)
            dsns = await anyio.to_thread.run_sync(read_dsns, self.settings)
            dsn = dsns[next(self._turn) % len(dsns)]
            async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
                await configure_async(conn)
                yield conn

    # -- writes -----------------------------------------------------------------------

    def _collection_for(
        self,
        conn: psycopg.Connection,
        name: str,
        language: str | None = None,
        accent_insensitive: bool = False,
        index: VectorIndex | None = None,
    ) -> tuple[Collection, EmbeddingModel]:
        """The collection, created on first use with the model's identity and dimensions (and `language`,
        `index`), and the model that embeds its chunks."""
        try:
            collection = get_collection(conn, name)
        except CollectionNotFound:  # only a new collection needs the model's dimensions (may load it)
            collection = None
        # a new collection takes the configured model; an existing one the model it records, if this
        # engine can make it (after a re-embed), else the configured one, which the check refuses
        model = self.model if collection is None else self.model_for(collection.embedding_model) or self.model
        if collection is None or language is not None or accent_insensitive or index is not None:  # checks they match
            created = create_collection(
                conn,
                name,
                embedding_model=model.name,
                dimensions=model.dimensions,
                language=language,
                accent_insensitive=accent_insensitive,
                index=index,
            )
            return created, model
        check_embeddings(collection, model.name)
        return collection, model

    def ingest(
        self,
        collection: str,
        documents: Iterable[SourceDocument],
        chunking: ChunkingConfig | None = None,
        *,
        on_skip: Callable[[SkippedSource], None] | None = None,
        progress: bool = False,
        total: int | None = None,
        language: str | None = None,
        accent_insensitive: bool = False,
        index: VectorIndex | None = None,
    ) -> IngestReport:
        """Chunk, embed and write documents into a collection (created on first use).

        Unchanged documents cost neither model nor writes; a changed one is replaced
        atomically; one that cannot be stored is skipped (`report.skipped`, `on_skip`).
        `language` (a text search configuration), `accent_insensitive` and `index` (the vector index) apply
        when the collection is created; given for an existing one, they must match it (`InputError`).
        `progress` shows documents done against `total`.
        """
        with map_errors():
            with self.connection() as conn:
                target, model = self._collection_for(conn, collection, language, accent_insensitive, index)
            chunking = chunking or ChunkingConfig()
            return ingest_documents(
                self.connection,
                target,
                model,
                documents,
                chunking,
                progress=progress,
                total=total,
                on_skip=on_skip,
            )

    def ingest_paths(
        self,
        collection: str,
        paths: Sequence[str | Path],
        chunking: ChunkingConfig | None = None,
        *,
        on_skip: Callable[[SkippedSource], None] = lambda item: None,
        progress: bool = False,
        prune: bool = False,
        language: str | None = None,
        accent_insensitive: bool = False,
        index: VectorIndex | None = None,
    ) -> IngestReport:
        """Ingest files and folders; unreadable inputs are reported through `on_skip` and skipped.

        A file's document id is its real path (see `ingest.iter_documents`). `prune` then
        deletes the documents under `paths` whose files are gone (`report.pruned_documents`).
        """
        read = lifecycle.PathsRead(paths)

        def skip(item: SkippedSource) -> None:
            read.skipped.append(item)
            on_skip(item)

        with map_errors():  # a missing path is the caller's mistake
            documents = read.track(iter_documents(paths, skip))
            total = count_documents(paths) if progress else None
        created = {"language": language, "accent_insensitive": accent_insensitive, "index": index}
        report = self.ingest(collection, documents, chunking, on_skip=skip, progress=progress, total=total, **created)
        report.skipped = read.skipped  # the files' and the documents' alike
        report.pruned_documents = self._on(collection, read.prune) if prune else None
        return report

    def ingest_records(
        self, collection: str, records: Sequence[Mapping[str, Any]], source: str, **options: Any
    ) -> tuple[list[SourceDocument], IngestReport]:
        """Ingest records (`id`, `text`, `title`, `metadata`) with the default chunking; returns them as documents.

        `options`: `ingest`'s keywords (`language`, `accent_insensitive`, `index`)."""
        with map_errors():
            documents = list(iter_records(records, source))
        return documents, self.ingest(collection, documents, **options)

    # -- administration ---------------------------------------------------------------

    def collection(self, name: str) -> Collection:
        """The named collection's registry row; `CollectionNotFound` when there is none."""
        with self.connection() as conn:
            return get_collection(conn, name)

    def collections(self) -> list[Collection]:
        """Every collection, by name."""
        with self.connection() as conn:
            return list_collections(conn)

    def maintain(self, names: Sequence[str] = (), *, reindex: bool = False) -> list[CollectionStats]:
        """Maintain the named collections (all without names); see `maintain_collection`."""
        with self.connection() as conn:
            targets = [get_collection(conn, name) for name in names] or list_collections(conn)
            return [maintain_collection(conn, target, reindex=reindex) for target in targets]

    # -- serving (the HTTP API) -------------------------------------------------------

    def _async_pools(self) -> tuple[AsyncConnectionPool, ...]:
        if self._pools is not None:
            return self._pools.readers or (self._pools.primary,)
        return (self._async_pool,) if self._async_pool is not None else ()
