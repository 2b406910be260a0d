"""Plain functions behind every edge (CLI, HTTP, LangChain): ingest and search."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import psycopg
from psycopg import sql

from ingest import ChunkingConfig, IngestInputError, SkippedSource, SourceDocument, iter_documents
from retriever.collections import Collection, check_embeddings, create_collection, get_collection, get_collection_async
from retriever.database import map_errors, open_primary
from retriever.embeddings import EmbeddingModel, get_embedding_model
from retriever.errors import CollectionNotFound, DocumentNotFound, InputError, LimitExceeded
from retriever.ingestion import IngestReport, ingest_documents
from retriever.query import SearchParams, SearchResult, run_search, run_search_async
from retriever.settings import Settings
from retriever.writer import delete_documents

__all__ = ["delete_document", "ingest_paths", "ingest_source_documents", "search", "search_async", "validate_query"]

_iterative_scan: dict[tuple[str, str, str], bool] = {}


def validate_query(query: str | None, settings: Settings) -> str:
    """A usable query text, or a clear InputError."""
    if query is None or not query.strip():
        raise InputError("the query is empty")
    if "\x00" in query:
        raise InputError("the query contains a NUL character")
    if len(query) > settings.max_query_chars:
        raise LimitExceeded(f"the query has {len(query)} characters; the limit is {settings.max_query_chars}")
    return query.strip()


def ingest_source_documents(
    settings: Settings,
    collection_name: str,
    documents: Iterable[SourceDocument],
    chunking: ChunkingConfig,
    *,
    progress: bool = False,
    model: EmbeddingModel | None = None,
    compact: bool = True,
) -> IngestReport:
    """Ingest already-loaded documents into a collection (created on first use).

    `compact=False` never rebuilds the posting blocks at the end (see `ingest_documents`).
    """
    model = model or get_embedding_model(settings)
    with map_errors():
        with open_primary(settings) as conn:
            try:
                collection = get_collection(conn, collection_name)
                check_embeddings(collection, model.name)
            except CollectionNotFound:  # only a new collection needs the model's dimensions
                collection = create_collection(
                    conn, collection_name, embedding_model=model.name, dimensions=model.dimensions
                )
        return ingest_documents(
            lambda: open_primary(settings), collection, model, documents, chunking, progress=progress, compact=compact
        )


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


def _server_key(conn: psycopg.Connection | psycopg.AsyncConnection) -> tuple[str, str, str]:
    return (conn.info.host, str(conn.info.port), conn.info.dbname)


_VERSION_CHECK = """
SELECT coalesce(string_to_array(extversion, '.')::int[] >= '{0,8}', false) FROM pg_extension WHERE extname = 'vector'
"""

# "More like this": the document's mean chunk embedding, and its most distinctive lexemes
# (tf · idf within the collection) as the text leg's query terms.
_LIKE = """
SELECT (SELECT avg(embedding) FROM {chunks} WHERE document_id = %(document_id)s),
       ARRAY(
           SELECT u.lexeme
           FROM {chunks} c CROSS JOIN unnest(c.tsv) AS u
           JOIN {terms} t ON t.term = u.lexeme
           WHERE c.document_id = %(document_id)s
           GROUP BY u.lexeme, t.df
           ORDER BY sum(cardinality(u.positions)) * ln(1 + (%(n)s - t.df + 0.5) / (t.df + 0.5)) DESC, u.lexeme
           LIMIT %(limit)s)
"""
LIKE_TERMS = 24


def _like_statement(collection: Collection) -> tuple[sql.Composed, dict[str, object]]:
    return sql.SQL(_LIKE).format(chunks=collection.table(), terms=collection.table("terms")), {
        "n": collection.chunk_count,
        "limit": LIKE_TERMS,
    }


def _like_result(document_id: str, row: tuple | None) -> tuple[np.ndarray, list[str]]:
    if row is None or row[0] is None:
        raise DocumentNotFound(f"no document {document_id!r} in this collection")
    return np.asarray(row[0], dtype=np.float32), list(row[1])


def search(
    conn: psycopg.Connection,
    settings: Settings,
    collection_name: str,
    query: str | None,
    params: SearchParams,
    *,
    like: str | None = None,
    model: EmbeddingModel | None = None,
    embedding: np.ndarray | None = None,
) -> SearchResult:
    """Validate, embed the query when the mode needs it, run the one statement.

    With `like=DOCUMENT_ID` instead of a query, ranks the collection against that stored
    document and leaves it out. `took_ms` is end to end (embedding included);
    `extra["db_ms"]` is the search statement's database time.
    """
    params.validate(settings)
    if like is None and _needs_vector(params) and embedding is None:
        model = (model or get_embedding_model(settings)).load()  # once per process, outside took_ms
    start = time.perf_counter()
    terms: list[str] | None = None
    with map_errors():
        collection = get_collection(conn, collection_name)
        if like is not None:
            statement, values = _like_statement(collection)
            embedding, terms = _like_result(like, conn.execute(statement, {**values, "document_id": like}).fetchone())
            query = ""
        else:
            query = validate_query(query, settings)
            if model is not None and _needs_vector(params) and embedding is None:
                check_embeddings(collection, model.name)
                embedding = model.embed_query(query)
        key = _server_key(conn)
        if key not in _iterative_scan:
            _iterative_scan[key] = bool(conn.execute(_VERSION_CHECK).fetchone()[0])  # type: ignore[index]
        result = run_search(
            conn,
            collection,
            params,
            settings,
            query=query,
            embedding=embedding,
            terms=terms,
            exclude_document=like,
            iterative_scan=_iterative_scan[key],
        )
    result.extra["db_ms"] = result.took_ms
    return SearchResult(result.hits, (time.perf_counter() - start) * 1000, result.extra)


async def search_async(
    conn: psycopg.AsyncConnection,
    settings: Settings,
    collection_name: str,
    query: str | None,
    params: SearchParams,
    *,
    like: str | None = None,
    model: EmbeddingModel | None = None,
    embedding: np.ndarray | None = None,
) -> SearchResult:
    """Async twin of `search`; the query embedding (unless given) runs in a worker thread."""
    params.validate(settings)
    if like is None and _needs_vector(params):
        model = (model or get_embedding_model(settings)).load()  # once per process, outside took_ms
    start = time.perf_counter()
    terms: list[str] | None = None
    with map_errors():
        collection = await get_collection_async(conn, collection_name)
        if like is not None:
            statement, values = _like_statement(collection)
            cur = await conn.execute(statement, {**values, "document_id": like})
            embedding, terms = _like_result(like, await cur.fetchone())
            query = ""
        else:
            query = validate_query(query, settings)
            if model is not None and _needs_vector(params):
                check_embeddings(collection, model.name)
                if embedding is None:
                    embedding = await asyncio.to_thread(model.embed_query, query)
        key = _server_key(conn)
        if key not in _iterative_scan:
            cur = await conn.execute(_VERSION_CHECK)
            _iterative_scan[key] = bool((await cur.fetchone())[0])  # type: ignore[index]
        result = await run_search_async(
            conn,
            collection,
            params,
            settings,
            query=query,
            embedding=embedding,
            terms=terms,
            exclude_document=like,
            iterative_scan=_iterative_scan[key],
        )
    result.extra["db_ms"] = result.took_ms
    return SearchResult(result.hits, (time.perf_counter() - start) * 1000, result.extra)


def delete_document(settings: Settings, collection_name: str, document_id: str) -> None:
    """Delete one document and its chunks (DocumentNotFound when it is not there)."""
    with map_errors(), open_primary(settings) as conn:
        collection = get_collection(conn, collection_name)
        if not delete_documents(conn, collection, [document_id]):
            raise DocumentNotFound(f"no document {document_id!r} in collection {collection_name!r}")
