"""The registry of collections and each collection's chunk table, with its HNSW and GIN indexes."""

from __future__ import annotations

import psycopg
from psycopg import sql
from psycopg.rows import class_row

from retriever.errors import CollectionNotFound, EmbeddingMismatch, InputError
from retriever.store.languages import DEFAULT_LANGUAGE, find_language, text_search
from retriever.store.postings import create_postings
from retriever.store.tables import SCHEMA, SIDE_TABLES, Collection, validate_name

__all__ = [
    "INDEXES",
    "REGISTRY_COLUMNS",
    "check_embeddings",
    "create_collection",
    "drop_collection",
    "ensure_index",
    "ensure_indexes",
    "get_collection",
    "list_collections",
    "list_collections_async",
    "missing_indexes",
]

# A collection is complete once its posting blocks are indexed: a bulk load drops that index
# first and builds it last, so a load that is running, or was killed, leaves it missing.
REGISTRY_COLUMNS = sql.SQL(
    """name, embedding_model, dimensions, text_config::text AS text_config, chunk_count, total_length,
       created_at, to_regclass('hybrid_rag.' || quote_ident(name || '_postings_order')) IS NOT NULL AS complete,
       language, accent_insensitive"""
)
_SELECT = sql.SQL("SELECT {} FROM hybrid_rag.collections ").format(REGISTRY_COLUMNS)


def get_collection(conn: psycopg.Connection, name: str) -> Collection:
    """The named collection, or CollectionNotFound."""
    validate_name(name)
    with conn.cursor(row_factory=class_row(Collection)) as cur:
        cur.execute(_SELECT + sql.SQL("WHERE name = %(name)s"), {"name": name})
        found = cur.fetchone()
    if found is None:
        raise CollectionNotFound(f"no collection named {name!r}")
    return found


def list_collections(conn: psycopg.Connection) -> list[Collection]:
    """All collections, by name."""
    with conn.cursor(row_factory=class_row(Collection)) as cur:
        cur.execute(_SELECT + sql.SQL("ORDER BY name"))
        return cur.fetchall()


async def list_collections_async(conn: psycopg.AsyncConnection) -> list[Collection]:
    """Async twin of `list_collections`."""
    async with conn.cursor(row_factory=class_row(Collection)) as cur:
        await cur.execute(_SELECT + sql.SQL("ORDER BY name"))
        return await cur.fetchall()


def check_embeddings(collection: Collection, model: str, dimensions: int | None = None) -> None:
    """Refuse to mix embedding models: vectors from two models are not comparable."""
    if collection.embedding_model != model or (dimensions is not None and dimensions != collection.dimensions):
        raise EmbeddingMismatch(
            f"collection {collection.name!r} was built with embeddings {collection.embedding_model!r} "
            f"({collection.dimensions} dims), but the configured embeddings are {model!r}"
            f"{f' ({dimensions} dims)' if dimensions else ''}: set EMBEDDINGS to match or use another collection"
        )


_CREATE_TABLES = """
CREATE TABLE {chunks} (
    id            text PRIMARY KEY,
    key           bigint GENERATED ALWAYS AS IDENTITY UNIQUE,  -- compact handle for postings
    document_id   text NOT NULL,
    chunk_index   integer NOT NULL,
    content       text NOT NULL,
    metadata      jsonb NOT NULL DEFAULT '{{}}',
    content_hash  text NOT NULL,
    embedding     vector({dimensions}) NOT NULL,
    tsv           tsvector GENERATED ALWAYS AS (to_tsvector({config}, content)) STORED
);
CREATE INDEX {document_index} ON {chunks} (document_id);
CREATE INDEX {metadata_index} ON {chunks} USING gin (metadata jsonb_path_ops);
CREATE TABLE {documents} (
    document_id  text PRIMARY KEY,
    hash         text NOT NULL,
    chunk_count  integer NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE {tombstones} (
    key  bigint PRIMARY KEY  -- a deleted chunk whose postings are still in the blocks
);
"""


def create_collection(
    conn: psycopg.Connection,
    name: str,
    *,
    embedding_model: str,
    dimensions: int,
    language: str | None = None,
    accent_insensitive: bool = False,
) -> Collection:
    """Get the collection, creating it (registry row and tables) if it does not exist.

    `language` is any text search configuration of the server (default `english`; see
    `retriever.store.languages`); `accent_insensitive` makes `cafe` match `café` (needs the
    unaccent extension). Both are fixed at creation: for an existing collection they are
    only checked. Raises `InvalidName`, `EmbeddingMismatch`, and `InputError` for an
    unknown language, a server without unaccent, or a language or accent-insensitivity
    the existing collection was not created with.
    """
    validate_name(name)
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(hashtext('hybrid_rag.collection:' || %s))", (name,))
        try:
            existing = get_collection(conn, name)
        except CollectionNotFound:
            existing = None
        if existing is not None:
            check_embeddings(existing, embedding_model, dimensions)
            _check_language(cur, existing, language, accent_insensitive)
            return existing
        chosen = text_search(
            cur, DEFAULT_LANGUAGE if language is None else language, accent_insensitive=accent_insensitive
        )
        cur.execute(
            "INSERT INTO hybrid_rag.collections (name, embedding_model, dimensions, text_config, language, "
            "accent_insensitive) VALUES (%s, %s, %s, %s::regconfig, %s, %s)",
            (name, embedding_model, dimensions, chosen.config, chosen.language, chosen.accent_insensitive),
        )
        created = get_collection(conn, name)
        cur.execute(
            sql.SQL(_CREATE_TABLES).format(
                chunks=created.table(),
                documents=created.table("documents"),
                tombstones=created.table("tombstones"),
                dimensions=sql.Literal(int(dimensions)),
                config=sql.Literal(chosen.config),
                document_index=created.index("document_id"),
                metadata_index=created.index("metadata_gin"),
            )
        )
        create_postings(cur, created)
        return get_collection(conn, name)  # as its tables now are (complete: the posting index exists)


def _check_language(cur: psycopg.Cursor, existing: Collection, language: str | None, accent_insensitive: bool) -> None:
    """Refuse to ask an existing collection for another language, or for accents it does not ignore."""
    asked = find_language(cur, language).name if language is not None else existing.language
    if asked != existing.language or (accent_insensitive and not existing.accent_insensitive):
        raise InputError(
            f"collection {existing.name!r} was created with language {existing.language_label!r}, and a "
            f"collection's language is fixed at creation: use another collection for {asked!r}"
            f"{', accent-insensitive' if accent_insensitive else ''}"
        )


def drop_collection(conn: psycopg.Connection, name: str) -> None:
    """Delete the collection and all its tables."""
    collection = get_collection(conn, name)
    with conn.transaction(), conn.cursor() as cur:
        for suffix in ("", *SIDE_TABLES):
            cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(collection.table(suffix)))
        cur.execute("DELETE FROM hybrid_rag.collections WHERE name = %s", (name,))


INDEXES = {
    "embedding_hnsw": "CREATE INDEX IF NOT EXISTS {index} ON {chunks} "
    "USING hnsw (embedding vector_cosine_ops) WITH (m = {m}, ef_construction = {ef})",
    "tsv_gin": "CREATE INDEX IF NOT EXISTS {index} ON {chunks} USING gin (tsv)",
}


_INDEX_LOCK = "SELECT pg_advisory_xact_lock(hashtext('hybrid_rag.index:' || %(index)s))"


def ensure_index(
    conn: psycopg.Connection,
    collection: Collection,
    kind: str,
    *,
    rows: int | None = None,
    hnsw_m: int = 16,
    ef_construction: int = 64,
) -> None:
    """Build one search index (`embedding_hnsw` or `tsv_gin`) if it is missing.

    Two writers finishing loads at once build it once: the second waits, then finds it.
    """
    rows = collection.chunk_count if rows is None else rows
    # HNSW builds in memory when the graph fits: ~ rows × dims × 4 B × 2, within [64 MB, 4 GB].
    work_mb = max(64, min(4096, rows * collection.dimensions * 8 // 1_000_000 + 64))
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(_INDEX_LOCK, {"index": collection.index_name(kind)})
        cur.execute(sql.SQL("SET LOCAL maintenance_work_mem = {}").format(sql.Literal(f"{work_mb}MB")))
        cur.execute("SET LOCAL max_parallel_maintenance_workers = 2")
        cur.execute(
            sql.SQL(INDEXES[kind]).format(
                index=collection.index(kind),
                chunks=collection.table(),
                m=sql.Literal(hnsw_m),
                ef=sql.Literal(ef_construction),
            )
        )


def missing_indexes(conn: psycopg.Connection, collection: Collection) -> list[str]:
    """The search indexes (`embedding_hnsw`, `tsv_gin`) the collection lacks."""
    names = {f"{collection.name}_{kind}": kind for kind in INDEXES}
    found = conn.execute(
        "SELECT indexname FROM pg_indexes WHERE schemaname = %s AND indexname = ANY(%s)", (SCHEMA, list(names))
    ).fetchall()
    return [kind for name, kind in names.items() if (name,) not in found]


def ensure_indexes(
    conn: psycopg.Connection, collection: Collection, *, hnsw_m: int = 16, ef_construction: int = 64
) -> bool:
    """Build the HNSW and tsv GIN indexes if missing (after a bulk load: faster than incremental).

    Returns True when an index was built, so callers know to ANALYZE.
    """
    missing = missing_indexes(conn, collection)
    for kind in missing:
        ensure_index(conn, collection, kind, hnsw_m=hnsw_m, ef_construction=ef_construction)
    return bool(missing)
