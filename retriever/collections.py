"""Collections: the registry row and the tables behind each collection.

A collection `docs` owns, in schema `hybrid_rag`:
- `docs`             the chunks (PGVectorStore-readable: id, content, embedding, metadata)
- `docs__documents`  one row per source document: its hash, for idempotent re-ingest
- `docs__postings`   per term, blocks of ≤ 100 postings (chunk key, tf, chunk length), each
                     block ordered by BM25 impact and indexed by its best impact: the BM25
                     leg reads a term's best blocks first and can stop early
- `docs__terms`      term → document frequency, kept current by every write

- `docs__tombstones` the deleted chunks whose postings are still in the blocks

Postings are append-only: a deleted chunk's postings stay behind (its document
frequencies are decremented at once, its key is recorded as a tombstone that searches
skip) until the blocks are rebuilt beside the live ones and swapped in, by an ingest
that leaves many tombstones or by `hybrid-rag maintain`.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import sql
from psycopg.rows import class_row

from retriever.errors import CollectionNotFound, DatabaseUnavailable, EmbeddingMismatch, InputError, InvalidName

__all__ = [
    "POSTINGS_BLOCK",
    "Collection",
    "check_embeddings",
    "create_collection",
    "create_postings",
    "drop_collection",
    "ensure_index",
    "ensure_indexes",
    "get_collection",
    "get_collection_async",
    "index_postings",
    "list_collections",
    "list_collections_async",
    "missing_indexes",
    "skip_array_statistics",
    "swap_postings",
    "validate_name",
]

POSTINGS_BLOCK = 100  # postings per block: a block row stays under 2 kB, inline and uncompressed

SCHEMA = "hybrid_rag"
_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")


def validate_name(name: str) -> str:
    """Accept only plain lowercase identifiers, so names are safe everywhere they appear."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or "__" in name:
        raise InvalidName(
            f"invalid collection name {name!r}: use 1-40 lowercase letters, digits and single "
            "underscores, starting with a letter"
        )
    return name


@dataclass(frozen=True, slots=True)
class Collection:
    """A registry row, with the identifiers of the collection's tables."""

    name: str
    embedding_model: str
    dimensions: int
    text_config: str
    chunk_count: int
    total_length: int
    created_at: datetime

    def table(self, suffix: str = "") -> sql.Identifier:
        """`hybrid_rag.<name>` or one of its side tables (`documents`, `postings`, `terms`)."""
        return sql.Identifier(SCHEMA, f"{self.name}__{suffix}" if suffix else self.name)

    def index(self, suffix: str) -> sql.Identifier:
        """Name of one of the collection's indexes (unqualified, as CREATE INDEX wants)."""
        return sql.Identifier(f"{self.name}_{suffix}")


_SELECT = sql.SQL(
    """
    SELECT name, embedding_model, dimensions, text_config::text AS text_config,
           chunk_count, total_length, created_at
    FROM hybrid_rag.collections
    """
)


def get_collection(conn: psycopg.Connection, name: str) -> Collection:
    """The named collection, or CollectionNotFound."""
    validate_name(name)
    with conn.cursor(row_factory=class_row(Collection)) as cur:
        cur.execute(_SELECT + sql.SQL("WHERE name = %(name)s"), {"name": name})
        found = cur.fetchone()
    if found is None:
        raise CollectionNotFound(f"no collection named {name!r}")
    return found


async def get_collection_async(conn: psycopg.AsyncConnection, name: str) -> Collection:
    """Async twin of `get_collection`."""
    validate_name(name)
    async with conn.cursor(row_factory=class_row(Collection)) as cur:
        await cur.execute(_SELECT + sql.SQL("WHERE name = %(name)s"), {"name": name})
        found = await cur.fetchone()
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


_CREATE_POSTINGS = """
CREATE TABLE {terms} (
    term  text COLLATE "C",
    df    integer NOT NULL,
    CONSTRAINT {terms_key} PRIMARY KEY (term)
);
CREATE TABLE {postings} (
    term        text COLLATE "C" NOT NULL,  -- equality only: byte order sorts and builds faster
    max_impact  real NOT NULL,              -- the block's best BM25 term weight (without idf)
    chunk_keys  bigint[] NOT NULL,          -- ≤ POSTINGS_BLOCK postings, best impact first
    tfs         integer[] NOT NULL,
    lengths     integer[] NOT NULL          -- chunk lengths in lexemes
)
"""

_INDEX_POSTINGS = """
CREATE INDEX {order_index} ON {postings} (term, max_impact DESC);
CREATE INDEX {tails_index} ON {postings} (term) WHERE cardinality(chunk_keys) < {block}
"""

# No query's plan depends on the block arrays' contents, and sampling them is most of ANALYZE's time.
_NO_ARRAY_STATISTICS = (
    "ALTER TABLE {postings} ALTER COLUMN chunk_keys SET STATISTICS 0, "
    "ALTER COLUMN tfs SET STATISTICS 0, ALTER COLUMN lengths SET STATISTICS 0"
)

# The swap gives way (then tries again) rather than queue searches behind a long reader.
_SWAP_WAIT = "1s"
_SWAP_ATTEMPTS = 30


def _posting_names(collection: Collection, suffix: str) -> dict[str, str]:
    """Tables (`terms`, `postings`) and indexes of a collection's posting blocks; `suffix` names a set
    built beside the live one (it holds `__`, which collection names cannot, so no other name collides)."""
    name = collection.name
    return {
        "terms": f"{name}__terms{suffix}",
        "postings": f"{name}__postings{suffix}",
        "terms_key": f"{name}__terms{suffix}_pkey",
        "order_index": f"{name}_postings_order{suffix}",
        "tails_index": f"{name}_postings_tails{suffix}",
    }


_TABLES = ("terms", "postings")  # the order searches lock them in (then the tombstones)


def skip_array_statistics(cur: psycopg.Cursor, collection: Collection, *, suffix: str = "") -> None:
    """Keep ANALYZE off the posting blocks' arrays (a quarter of the time; no plan uses them)."""
    postings = _posting_names(collection, suffix)["postings"]
    cur.execute(sql.SQL(_NO_ARRAY_STATISTICS).format(postings=sql.Identifier(SCHEMA, postings)))


def create_postings(cur: psycopg.Cursor, collection: Collection, *, suffix: str = "", indexed: bool = True) -> None:
    """Create empty terms and posting-block tables; a `suffix` names a set built beside the live one."""
    names = _posting_names(collection, suffix)
    cur.execute(
        sql.SQL(_CREATE_POSTINGS).format(
            terms=sql.Identifier(SCHEMA, names["terms"]),
            postings=sql.Identifier(SCHEMA, names["postings"]),
            terms_key=sql.Identifier(names["terms_key"]),
        )
    )
    skip_array_statistics(cur, collection, suffix=suffix)
    if indexed:
        index_postings(cur, collection, suffix=suffix)


def index_postings(cur: psycopg.Cursor, collection: Collection, *, suffix: str = "") -> None:
    """Index posting blocks (after filling them, for a set built beside the live one)."""
    names = _posting_names(collection, suffix)
    cur.execute(
        sql.SQL(_INDEX_POSTINGS).format(
            postings=sql.Identifier(SCHEMA, names["postings"]),
            order_index=sql.Identifier(names["order_index"]),
            tails_index=sql.Identifier(names["tails_index"]),
            block=sql.Literal(POSTINGS_BLOCK),
        )
    )


def swap_postings(cur: psycopg.Cursor, collection: Collection, suffix: str) -> None:
    """Put the terms and blocks built under `suffix` in place of the live ones, and clear the tombstones.

    Searches are locked out from here until the caller's transaction ends. Raises
    `DatabaseUnavailable` when other transactions kept the tables for all the attempts.
    """
    live, built = _posting_names(collection, ""), _posting_names(collection, suffix)
    tables = [collection.table(kind) for kind in _TABLES]
    locked = sql.SQL(", ").join([*tables, collection.table("tombstones")])  # in the searches' order
    lock = sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(locked)
    statements = [sql.SQL("DROP TABLE IF EXISTS {}").format(sql.SQL(", ").join(tables))]
    statements += [
        sql.SQL("ALTER {} {} RENAME TO {}").format(
            sql.SQL("TABLE" if kind in _TABLES else "INDEX"), sql.Identifier(SCHEMA, built[kind]), sql.Identifier(new)
        )
        for kind, new in live.items()
    ]
    statements.append(sql.SQL("TRUNCATE {}").format(collection.table("tombstones")))
    for attempt in range(1, _SWAP_ATTEMPTS + 1):
        try:
            with cur.connection.transaction():
                cur.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(_SWAP_WAIT)))
                cur.execute(lock)
                cur.execute(sql.SQL(";\n").join(statements))
            return
        except psycopg.errors.LockNotAvailable:
            if attempt == _SWAP_ATTEMPTS:
                raise DatabaseUnavailable(
                    f"the rebuilt posting blocks of {collection.name!r} could not be swapped in: other "
                    f"transactions kept reading them for {_SWAP_ATTEMPTS} attempts; run `hybrid-rag maintain` later"
                ) from None
            time.sleep(1.0)  # let the searches queued behind the attempt run


def create_collection(
    conn: psycopg.Connection, name: str, *, embedding_model: str, dimensions: int, text_config: str = "english"
) -> Collection:
    """Get the collection, creating it (registry row and tables) if it does not exist."""
    validate_name(name)
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(hashtext('hybrid_rag.collection:' || %s))", (name,))
        try:
            existing = get_collection(conn, name)
        except CollectionNotFound:
            existing = None
        if existing is not None:
            check_embeddings(existing, embedding_model, dimensions)
            return existing
        cur.execute("SELECT count(*) FROM pg_ts_config WHERE cfgname = %s", (text_config,))
        if cur.fetchone()[0] != 1:  # type: ignore[index]
            raise InputError(f"unknown text search configuration {text_config!r}")
        cur.execute(
            "INSERT INTO hybrid_rag.collections (name, embedding_model, dimensions, text_config) "
            "VALUES (%s, %s, %s, %s::regconfig)",
            (name, embedding_model, dimensions, text_config),
        )
        created = get_collection(conn, name)
        cur.execute(
            sql.SQL(_CREATE_TABLES).format(
                chunks=created.table(),
                documents=created.table("documents"),
                tombstones=created.table("tombstones"),
                dimensions=sql.Literal(int(dimensions)),
                config=sql.Literal(text_config),
                document_index=created.index("document_id"),
                metadata_index=created.index("metadata_gin"),
            )
        )
        create_postings(cur, created)
    return created


def drop_collection(conn: psycopg.Connection, name: str) -> None:
    """Delete the collection and all its tables."""
    collection = get_collection(conn, name)
    with conn.transaction(), conn.cursor() as cur:
        for suffix in ("", "documents", "postings", "terms", "tombstones"):
            cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(collection.table(suffix)))
        cur.execute("DELETE FROM hybrid_rag.collections WHERE name = %s", (name,))


_INDEXES = {
    "embedding_hnsw": "CREATE INDEX IF NOT EXISTS {index} ON {chunks} "
    "USING hnsw (embedding vector_cosine_ops) WITH (m = {m}, ef_construction = {ef})",
    "tsv_gin": "CREATE INDEX IF NOT EXISTS {index} ON {chunks} USING gin (tsv)",
}


def ensure_index(
    conn: psycopg.Connection,
    collection: Collection,
    kind: str,
    *,
    rows: int | None = None,
    hnsw_m: int = 16,
    ef_construction: int = 64,
) -> None:
    """Build one search index (`embedding_hnsw` or `tsv_gin`) if it is missing."""
    rows = collection.chunk_count if rows is None else rows
    # HNSW builds in memory when the graph fits: ~ rows × dims × 4 B × 2, within [64 MB, 4 GB].
    work_mb = max(64, min(4096, rows * collection.dimensions * 8 // 1_000_000 + 64))
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(sql.SQL("SET LOCAL maintenance_work_mem = {}").format(sql.Literal(f"{work_mb}MB")))
        cur.execute("SET LOCAL max_parallel_maintenance_workers = 2")
        cur.execute(
            sql.SQL(_INDEXES[kind]).format(
                index=collection.index(kind),
                chunks=collection.table(),
                m=sql.Literal(hnsw_m),
                ef=sql.Literal(ef_construction),
            )
        )


def missing_indexes(conn: psycopg.Connection, collection: Collection) -> list[str]:
    """The search indexes (`embedding_hnsw`, `tsv_gin`) the collection lacks."""
    names = {f"{collection.name}_{kind}": kind for kind in _INDEXES}
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
