"""Plain functions behind every edge (CLI, HTTP, LangChain): ingest and search."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import psycopg

from ingest import ChunkingConfig, IngestInputError, SkippedSource, iter_documents
from retriever.collections import Collection, check_embeddings, create_collection, get_collection
from retriever.database import map_errors, open_primary
from retriever.embeddings import EmbeddingModel, get_embedding_model
from retriever.errors import InputError, LimitExceeded
from retriever.ingestion import IngestReport, ingest_documents
from retriever.query import SearchParams, SearchResult, run_search, run_search_async
from retriever.settings import Settings

__all__ = ["ingest_paths", "ingest_source_documents", "search", "search_async", "validate_query"]

_iterative_scan: dict[tuple[str, str, str], bool] = {}


def validate_query(query: str | None, settings: Settings) -> str:
    """A usable query text, or a clear InputError."""
    if query is None or not query.strip():
        raise InputError("the query is empty")
    if len(query) > settings.max_query_chars:
        raise LimitExceeded(f"the query has {len(query)} characters; the limit is {settings.max_query_chars}")
    return query.strip()


def _open_collection(conn: psycopg.Connection, settings: Settings, name: str, model: EmbeddingModel) -> Collection:
    collection = create_collection(conn, name, embedding_model=model.name, dimensions=model.dimensions)
    return collection


def ingest_source_documents(
    settings: Settings,
    collection_name: str,
    documents: Iterable,  # Iterable[SourceDocument]
    chunking: ChunkingConfig,
    *,
    progress: bool = False,
    model: EmbeddingModel | None = None,
) -> IngestReport:
    """Ingest already-loaded documents into a collection (created on first use)."""
    model = model or get_embedding_model(settings)
    with map_errors():
        with open_primary(settings) as conn:
            collection = _open_collection(conn, settings, collection_name, model)
        return ingest_documents(lambda: open_primary(settings), collection, model, documents, chunking, progress=progress)


def ingest_paths(
    settings: Settings,
    collection_name: str,
    paths: Sequence[str | Path],
    chunking: ChunkingConfig,
    *,
    on_skip: Callable[[SkippedSource], None],
    progress: bool = False,
) -> IngestReport:
    """Ingest files and folders; unreadable inputs are reported through `on_skip` and skipped."""
    skipped: list[SkippedSource] = []

    def skip(item: SkippedSource) -> None:
        skipped.append(item)
        on_skip(item)

    try:
        documents = iter_documents(paths, skip)
        report = ingest_source_documents(settings, collection_name, documents, chunking, progress=progress)
    except IngestInputError as exc:
        raise InputError(str(exc)) from None
    report.skipped = skipped
    return report


def _needs_vector(params: SearchParams) -> bool:
    return params.mode in ("hybrid", "vector")


def _iterative_scan_supported(conn: psycopg.Connection | psycopg.AsyncConnection) -> bool | None:
    info = conn.info
    return _iterative_scan.get((info.host, str(info.port), info.dbname))


def _remember_iterative_scan(conn: psycopg.Connection | psycopg.AsyncConnection, supported: bool) -> None:
    info = conn.info
    _iterative_scan[(info.host, str(info.port), info.dbname)] = supported


_VERSION_CHECK = (
    "SELECT coalesce(string_to_array(extversion, '.')::int[] >= '{0,8}', false) FROM pg_extension WHERE extname = 'vector'"
)


def search(
    conn: psycopg.Connection,
    settings: Settings,
    collection_name: str,
    query: str,
    params: SearchParams,
    *,
    model: EmbeddingModel | None = None,
    embedding: np.ndarray | None = None,
) -> SearchResult:
    """Validate, embed the query when the mode needs it, run the one statement.

    `took_ms` of the result is end to end (embedding included); `extra["db_ms"]` is database time.
    """
    start = time.perf_counter()
    query = validate_query(query, settings)
    params.validate(settings)
    with map_errors():
        collection = get_collection(conn, collection_name)
        if _needs_vector(params) and embedding is None:
            model = model or get_embedding_model(settings)
            check_embeddings(collection, model.name)
            embedding = model.embed_query(query)
        supported = _iterative_scan_supported(conn)
        if supported is None:
            supported = bool(conn.execute(_VERSION_CHECK).fetchone()[0])  # type: ignore[index]
            _remember_iterative_scan(conn, supported)
        result = run_search(conn, collection, params, settings, query=query, embedding=embedding, iterative_scan=supported)
    result.extra["db_ms"] = result.took_ms
    return type(result)(result.hits, (time.perf_counter() - start) * 1000, result.extra)


async def search_async(
    conn: psycopg.AsyncConnection,
    settings: Settings,
    collection_name: str,
    query: str,
    params: SearchParams,
    *,
    model: EmbeddingModel | None = None,
) -> SearchResult:
    """Async twin of `search`; the query embedding runs in a worker thread, off the event loop."""
    start = time.perf_counter()
    query = validate_query(query, settings)
    params.validate(settings)
    with map_errors():
        collection = await _get_collection_async(conn, collection_name)
        embedding = None
        if _needs_vector(params):
            model = model or get_embedding_model(settings)
            check_embeddings(collection, model.name)
            embedding = await asyncio.to_thread(model.embed_query, query)
        supported = _iterative_scan_supported(conn)
        if supported is None:
            cur = await conn.execute(_VERSION_CHECK)
            supported = bool((await cur.fetchone())[0])  # type: ignore[index]
            _remember_iterative_scan(conn, supported)
        result = await run_search_async(
            conn, collection, params, settings, query=query, embedding=embedding, iterative_scan=supported
        )
    result.extra["db_ms"] = result.took_ms
    return type(result)(result.hits, (time.perf_counter() - start) * 1000, result.extra)


async def _get_collection_async(conn: psycopg.AsyncConnection, name: str) -> Collection:
    from psycopg.rows import class_row

    from retriever.collections import _SELECT, validate_name
    from retriever.errors import CollectionNotFound

    validate_name(name)
    async with conn.cursor(row_factory=class_row(Collection)) as cur:
        await cur.execute(_SELECT + psycopg.sql.SQL("WHERE name = %(name)s"), {"name": name})
        found = await cur.fetchone()
    if found is None:
        raise CollectionNotFound(f"no collection named {name!r}")
    return found
