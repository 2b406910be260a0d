"""The registry of collections and each collection's chunk table, with its vector (HNSW or IVFFlat) and GIN indexes."""

from __future__ import annotations

import psycopg
from psycopg import sql
from psycopg.rows import class_row

from retriever.errors import CollectionNotFound, EmbeddingMismatch, InputError
from retriever.store.citus import distribute, on_citus, shard_anchors
from retriever.store.languages import DEFAULT_LANGUAGE, find_language, text_search
from retriever.store.postings import create_postings
from retriever.store.tables import SCHEMA, TABLE_SUFFIXES, Collection, statements, validate_name
from retriever.store.vector_index import VectorIndex, build_memory_mb, column_type, index_statement

__all__ = [
    "INDEXES",
    "REGISTRY_COLUMNS",
    "SEARCH_REGISTRY",
    "VECTOR",
    "check_embeddings",
    "create_collection",
    "document_key",
    "drop_collection",
    "ensure_index",
    "ensure_indexes",
    "get_collection",
    "index_kinds",
    "list_collections",
    "list_collections_async",
    "missing_indexes",
]

# A collection is complete once its posting blocks are indexed: a bulk load drops that index
# first and builds it last, so a load that is running, or was killed, leaves it missing.
REGISTRY_COLUMNS = sql.SQL(
    """name, embedding_model, dimensions, text_config::text AS text_config, chunk_count, total_length,
       created_at, to_regclass('hybrid_rag.' || quote_ident(name || '_postings_order')) IS NOT NULL AS complete,
       language, accent_insensitive, index_kind, storage, hnsw_m, ef_construction, ivfflat_lists, distributed,
       anchors"""
)
_SELECT = sql.SQL("SELECT {} FROM hybrid_rag.collections ").format(REGISTRY_COLUMNS)

# The collection's registry row, and whether pgvector can keep scanning its vector index under
# a filter (`hnsw.iterative_scan`, `ivfflat.iterative_scan`: pgvector ≥ 0.8): one round trip before a search.
SEARCH_REGISTRY = sql.SQL(
    """
SELECT {columns},
       coalesce((SELECT string_to_array(extversion, '.')::int[] >= '{{0,8}}'
                 FROM pg_extension WHERE extname = 'vector'), false) AS iterative_scan
FROM hybrid_rag.collections
WHERE name = %(name)s
"""
).format(columns=REGISTRY_COLUMNS)


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
    anchor        text NOT NULL DEFAULT '',  -- its shard on Citus (`retriever.store.citus`), '' elsewhere
    id            text NOT NULL,
    key           bigint GENERATED ALWAYS AS IDENTITY,  -- compact handle for postings
    document_id   text NOT NULL,
    chunk_index   integer NOT NULL,
    content       text NOT NULL,
    metadata      jsonb NOT NULL DEFAULT '{{}}',
    content_hash  text NOT NULL,
    embedding     {column_type} NOT NULL,
    tsv           tsvector GENERATED ALWAYS AS (to_tsvector({config}, content)) STORED,
    {keys}
);
CREATE INDEX {document_index} ON {chunks} (document_id);
CREATE INDEX {metadata_index} ON {chunks} USING gin (metadata jsonb_path_ops);
CREATE TABLE {documents} (
    anchor       text NOT NULL DEFAULT '',  -- its chunks' anchor
    document_id  text NOT NULL,
    hash         text NOT NULL,
    chunk_count  integer NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY ({document_key})
);
"""
# Unique keys; on Citus they must hold the distribution column, `anchor` (a function of the document id).
# (the key first: a re-embed pages through the chunks in key order)
_KEYS = {False: "PRIMARY KEY (id), UNIQUE (key)", True: "PRIMARY KEY (anchor, id), UNIQUE (key, anchor)"}
_DOCUMENT_KEY = {False: "document_id", True: "anchor, document_id"}


def create_collection(
    conn: psycopg.Connection,
    name: str,
    *,
    embedding_model: str,
    dimensions: int,
    language: str | None = None,
    accent_insensitive: bool = False,
    index: VectorIndex | None = None,
) -> Collection:
    """Get the collection, creating it (registry row and tables) if it does not exist.

    `language` is any text search configuration of the server (default `english`; see
    `retriever.store.languages`); `accent_insensitive` makes `cafe` match `café` (needs the
    unaccent extension); `index` the vector index and the embedding column's storage
    (default: HNSW m 16, ef_construction 64, `vector`). All are fixed at creation: for an
    existing collection they are only checked (None: whatever it has). Raises `InvalidName`,
    `EmbeddingMismatch`, and `InputError` for an unknown language, a server without
    unaccent, an index pgvector cannot build over `dimensions`, or a language,
    accent-insensitivity or index the existing collection was not created with.
    """
    validate_name(name)
    if index is not None:
        index.validate(dimensions)
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(hashtext('hybrid_rag.collection:' || %s))", (name,))
        try:
            existing = get_collection(conn, name)
        except CollectionNotFound:
            existing = None
        if existing is not None:
            check_embeddings(existing, embedding_model, dimensions)
            _check_language(cur, existing, language, accent_insensitive)
            _check_index(existing, index)
            return existing
        chosen = text_search(
            cur, DEFAULT_LANGUAGE if language is None else language, accent_insensitive=accent_insensitive
        )
        index = (index or VectorIndex()).validate(dimensions)
        cur.execute(
            "INSERT INTO hybrid_rag.collections (name, embedding_model, dimensions, text_config, language, "
            "accent_insensitive, index_kind, storage, hnsw_m, ef_construction, ivfflat_lists, distributed) "
            "VALUES (%s, %s, %s, %s::regconfig, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                name,
                embedding_model,
                dimensions,
                chosen.config,
                chosen.language,
                chosen.accent_insensitive,
                index.kind,
                index.storage,
                index.m,
                index.ef_construction,
                index.lists,
                on_citus(cur),
            ),
        )
        created = get_collection(conn, name)
        distributed = created.distributed
        names = {
            "keys": sql.SQL(_KEYS[distributed]),
            "document_key": sql.SQL(_DOCUMENT_KEY[distributed]),
            "chunks": created.table(),
            "documents": created.table("documents"),
            "column_type": column_type(index.storage, dimensions),
            "config": sql.Literal(chosen.config),
            "document_index": created.index("document_id"),
            "metadata_index": created.index("metadata_gin"),
        }
        for statement in statements(_CREATE_TABLES):
            cur.execute(statement.format(**names))
        if distributed:
            distribute(cur, created.table())
            distribute(cur, created.table("documents"), beside=created.table())
            anchors = shard_anchors(cur, created.table())
            cur.execute("UPDATE hybrid_rag.collections SET anchors = %s WHERE name = %s", (anchors, name))
            created = get_collection(conn, name)
        create_postings(cur, created)
        return get_collection(conn, name)  # as its tables now are (complete: the posting index exists)


def document_key(collection: Collection) -> str:
    """The columns of the documents table's primary key (with the anchor when sharded by it)."""
    return _DOCUMENT_KEY[collection.sharded]


def _check_language(cur: psycopg.Cursor, existing: Collection, language: str | None, accent_insensitive: bool) -> None:
    """Refuse to ask an existing collection for another language, or for accents it does not ignore."""
    asked = find_language(cur, language).name if language is not None else existing.language
    if asked != existing.language or (accent_insensitive and not existing.accent_insensitive):
        raise InputError(
            f"collection {existing.name!r} was created with language {existing.language_label!r}, and a "
            f"collection's language is fixed at creation: use another collection for {asked!r}"
            f"{', accent-insensitive' if accent_insensitive else ''}"
        )


def _check_index(existing: Collection, index: VectorIndex | None) -> None:
    """Refuse to ask an existing collection for another vector index than the one it was created with."""
    if index is not None and not index.same_as(existing.vector_index):
        raise InputError(
            f"collection {existing.name!r} was created with a vector index {existing.vector_index.label}, and a "
            f"collection's index is fixed at creation: use another collection for {index.label}"
        )


def drop_collection(conn: psycopg.Connection, name: str) -> None:
    """Delete the collection and all its tables."""
    collection = get_collection(conn, name)
    with conn.transaction(), conn.cursor() as cur:
        for suffix in TABLE_SUFFIXES:
            cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(collection.table(suffix)))
        cur.execute("DELETE FROM hybrid_rag.collections WHERE name = %s", (name,))


VECTOR = "vector"  # the kind that stands for the collection's own vector index
INDEXES = ("vector", "tsv_gin")  # the search indexes, by kind
_GIN = "CREATE INDEX IF NOT EXISTS {index} ON {chunks} USING gin (tsv)"


def index_kinds(collection: Collection) -> dict[str, str]:
    """Each search index's kind → its name's suffix: {"vector": "embedding_hnsw" | "embedding_ivfflat",
    "tsv_gin": "tsv_gin"}."""
    return {VECTOR: collection.vector_index.suffix, "tsv_gin": "tsv_gin"}


_INDEX_LOCK = "SELECT pg_advisory_xact_lock(hashtext('hybrid_rag.index:' || %(index)s))"


def ensure_index(conn: psycopg.Connection, collection: Collection, kind: str, *, rows: int | None = None) -> None:
    """Build one search index (`vector`: the collection's own, as its registry row says; or `tsv_gin`) if it is missing.

    An IVFFlat index is not built over an empty table: its lists are k-means cells of the
    rows there, so it waits for the end of the first load (or `maintain`). Two writers
    finishing loads at once build it once: the second waits, then finds it.
    """
    rows = collection.chunk_count if rows is None else rows
    index = collection.vector_index
    if kind == VECTOR and index.kind == "ivfflat" and not _has_rows(conn, collection):
        return
    suffix = index_kinds(collection)[kind]
    work_mb = build_memory_mb(rows, collection.dimensions)
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(_INDEX_LOCK, {"index": collection.index_name(suffix)})
        cur.execute(sql.SQL("SET LOCAL maintenance_work_mem = {}").format(sql.Literal(f"{work_mb}MB")))
        cur.execute("SET LOCAL max_parallel_maintenance_workers = 2")
        if kind == VECTOR:
            statement = index_statement(
                index, table=collection.table(), column="embedding", name=collection.index(suffix)
            )
        else:
            statement = sql.SQL(_GIN).format(index=collection.index(suffix), chunks=collection.table())
        cur.execute(statement)


def _has_rows(conn: psycopg.Connection, collection: Collection) -> bool:
    return conn.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(collection.table())).fetchone()[0]  # type: ignore[index]


def missing_indexes(conn: psycopg.Connection, collection: Collection) -> list[str]:
    """The search indexes (`vector`, `tsv_gin`) the collection lacks."""
    names = {collection.index_name(suffix): kind for kind, suffix in index_kinds(collection).items()}
    found = conn.execute(
        "SELECT indexname FROM pg_indexes WHERE schemaname = %s AND indexname = ANY(%s)", (SCHEMA, list(names))
    ).fetchall()
    return [kind for name, kind in names.items() if (name,) not in found]


def ensure_indexes(conn: psycopg.Connection, collection: Collection) -> bool:
    """Build the collection's vector index and its tsv GIN index if missing (after a bulk load: faster than
    incremental), with the collection's own settings.

    Returns True when an index was missing, so callers know to ANALYZE.
    """
    missing = missing_indexes(conn, collection)
    for kind in missing:
        ensure_index(conn, collection, kind)
    return bool(missing)
