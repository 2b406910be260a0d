"""Re-embedding a collection with another model: new vectors beside the live ones, then one swap.

The new vectors go into a column of their own, `embedding_next` (any dimensions), a batch
per transaction, so a re-embed that dies is resumed by running it again: only chunks whose
`embedding_next` is still NULL are embedded, each once. The registry records the target
(`reembed_model`, `reembed_dimensions`, `reembed_storage`) so a rerun knows what it resumes.
The new column gets the collection's kind of vector index before the swap; the swap then, in one transaction
under the collection's write lock, embeds the chunks written meanwhile, drops the old
column, renames the new one, and records the new model. A vector search holds the chunk
table (ACCESS SHARE) from the check of its model to its statement
(`retriever.search.expect_embeddings`), so each runs wholly before or wholly after the swap.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import psycopg
from psycopg import sql

from retriever.errors import InputError
from retriever.store.collections import get_collection
from retriever.store.tables import WRITE_LOCK, Collection, statements
from retriever.store.vector_index import VectorIndex, build_memory_mb, column_type, index_statement

__all__ = [
    "NEXT_COLUMN",
    "ReembedTarget",
    "counts",
    "index_next",
    "pending_chunks",
    "prepare_reembed",
    "require_embeddings",
    "swap_embeddings",
    "write_next",
]

NEXT_COLUMN = "embedding_next"
_NEXT_INDEX = "embedding_next"

_TARGET = "SELECT reembed_model, reembed_dimensions, reembed_storage FROM hybrid_rag.collections WHERE name = %(name)s"
_SET_TARGET = """
UPDATE hybrid_rag.collections
SET reembed_model = %(model)s, reembed_dimensions = %(dimensions)s, reembed_storage = %(storage)s
WHERE name = %(name)s
"""
_PENDING = f"""
SELECT key, anchor, document_id, content FROM {{chunks}}
WHERE {NEXT_COLUMN} IS NULL AND key > %(after)s ORDER BY key LIMIT %(limit)s
"""
_COUNTS = f"SELECT count(*) FILTER (WHERE {NEXT_COLUMN} IS NULL), count(*) FROM {{chunks}}"
# by anchor and document too: on Citus, the one shard that holds the chunk, whichever the collection is sharded by
_WRITE = (
    f"UPDATE {{chunks}} SET {NEXT_COLUMN} = %(embedding)s "
    "WHERE anchor = %(anchor)s AND document_id = %(document_id)s AND key = %(key)s"
)

# Where each topic's centroid moves: its chunks' mean new vector (one pass over the chunks),
# computed before the table is locked.
_CENTROIDS = f"""
SELECT c.metadata -> k.key AS topic, avg(c.{NEXT_COLUMN}::vector) AS centroid
FROM {{chunks}} c
CROSS JOIN (SELECT DISTINCT metadata_key AS key FROM hybrid_rag.topics WHERE collection = %(name)s) k
WHERE c.metadata ? k.key
GROUP BY 1
"""

# The swap, once every chunk has its new vector: the old column (and its index) goes, the new
# one takes its name, the registry names the new model, and the topics' centroids move (a topic
# no chunk holds any more is dropped: it has no centroid there). No statement here scans the
# chunks: searches wait for this transaction only for the few catalogue changes. The column's
# NOT NULL comes after, as a CHECK validated without blocking anyone (`_NOT_NULL`).
_SWAP = f"""
LOCK TABLE {{chunks}} IN ACCESS EXCLUSIVE MODE;
ALTER TABLE {{chunks}} DROP COLUMN embedding;
ALTER TABLE {{chunks}} RENAME COLUMN {NEXT_COLUMN} TO embedding;
ALTER INDEX {{next_index}} RENAME TO {{index}};
UPDATE hybrid_rag.collections
SET embedding_model = reembed_model, dimensions = reembed_dimensions, storage = reembed_storage,
    reembed_model = NULL, reembed_dimensions = NULL, reembed_storage = NULL
WHERE name = %(name)s;
DELETE FROM hybrid_rag.topics WHERE collection = %(name)s AND NOT topic = ANY(%(topics)s::integer[])
"""
_MOVE_TOPIC = "UPDATE hybrid_rag.topics SET centroid = %(centroid)s WHERE collection = %(name)s AND topic = %(topic)s"
# After the swap: the new column is declared NOT NULL as a CHECK, added without a scan, then
# validated under a lock that lets searches and writes go on.
_NOT_NULL = """
ALTER TABLE {chunks} DROP CONSTRAINT IF EXISTS {check};
ALTER TABLE {chunks} ADD CONSTRAINT {check} CHECK (embedding IS NOT NULL) NOT VALID
"""
_VALIDATE = "ALTER TABLE {chunks} VALIDATE CONSTRAINT {check}"
_LOCK_TIMEOUT = "SET LOCAL lock_timeout = '1s'"  # a table lock waited for would queue every search behind it
_INVALID_INDEX = "SELECT NOT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%(index)s)"


@dataclass(frozen=True, slots=True)
class ReembedTarget:
    """What a re-embed writes: the model's identity, its vector size, the index over them, and whether
    it resumes an earlier run."""

    model: str
    dimensions: int
    index: VectorIndex
    resumed: bool


def _format(statement: str, collection: Collection, **more: sql.Composable) -> sql.Composed:
    return sql.SQL(statement).format(chunks=collection.table(), **more)


def prepare_reembed(
    conn: psycopg.Connection, collection: Collection, model: str, dimensions: int, *, storage: str | None = None
) -> ReembedTarget:
    """Add the column the new vectors go into (or find the one an earlier run left for the same target).

    `storage` (`vector`, `halfvec`) is the new column's: by default that of the run being resumed,
    else the collection's; the index kind and its parameters stay the collection's. An earlier,
    unfinished re-embed to another target is discarded. Raises `InputError` when the collection
    already uses `model`, or when the index cannot hold `dimensions` in that storage;
    `psycopg.errors.LockNotAvailable` when the table stayed locked for a second (retry).
    """
    if model == collection.embedding_model and dimensions == collection.dimensions:
        raise InputError(f"collection {collection.name!r} is already embedded with {model!r} ({dimensions} dims)")
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(WRITE_LOCK, {"collection": collection.name})  # no ingest between the check and the change
        cur.execute(_TARGET, {"name": collection.name})
        recorded = cur.fetchone()
        if storage is None and recorded is not None and recorded[:2] == (model, dimensions) and recorded[2]:
            storage = recorded[2]
        index = dataclasses.replace(collection.vector_index, storage=storage or collection.vector_index.storage)
        index.validate(dimensions)
        resumed = recorded == (model, dimensions, index.storage)
        if not resumed:
            cur.execute(_LOCK_TIMEOUT)
            cur.execute(_format(f"ALTER TABLE {{chunks}} DROP COLUMN IF EXISTS {NEXT_COLUMN}", collection))
            cur.execute(
                _format(
                    f"ALTER TABLE {{chunks}} ADD COLUMN {NEXT_COLUMN} {{type}}",
                    collection,
                    type=column_type(index.storage, dimensions),
                )
            )
            values = {"name": collection.name, "model": model, "dimensions": dimensions, "storage": index.storage}
            cur.execute(_SET_TARGET, values)
    return ReembedTarget(model, dimensions, index, resumed)


def pending_chunks(
    conn: psycopg.Connection, collection: Collection, limit: int, after: int = 0
) -> list[tuple[int, str, str, str]]:
    """Up to `limit` chunks (key, anchor, document id, content) after key `after` still without a new vector,
    in key order (chunks written later have higher keys: a pass from 0 meets them too)."""
    return conn.execute(_format(_PENDING, collection), {"limit": limit, "after": after}).fetchall()


def counts(conn: psycopg.Connection, collection: Collection) -> tuple[int, int]:
    """(chunks still without a new vector, all chunks)."""
    pending, total = conn.execute(_format(_COUNTS, collection)).fetchone()  # type: ignore[misc]
    return int(pending), int(total)


def write_next(
    conn: psycopg.Connection, collection: Collection, chunks: list[tuple[int, str, str, str]], vectors: np.ndarray
) -> None:
    """Store the new vectors of these chunks, as `pending_chunks` gave them (a chunk deleted meanwhile is skipped)."""
    with conn.cursor() as cur:
        cur.executemany(
            _format(_WRITE, collection),
            [
                {"key": key, "anchor": anchor, "document_id": document_id, "embedding": vector}
                for (key, anchor, document_id, _), vector in zip(chunks, vectors, strict=True)
            ],
        )


def index_next(conn: psycopg.Connection, collection: Collection, target: ReembedTarget, rows: int) -> None:
    """Build the target's vector index on the new column, CONCURRENTLY: searches and writes go on.

    Needs an autocommit connection. An index a killed build left invalid is dropped and built again.
    """
    name = collection.qualified_index(_NEXT_INDEX)
    invalid = conn.execute(_INVALID_INDEX, {"index": name.as_string(conn)}).fetchone()
    if invalid and invalid[0]:
        conn.execute(sql.SQL("DROP INDEX CONCURRENTLY {}").format(name))
    memory = f"{build_memory_mb(rows, target.dimensions)}MB"
    conn.execute("SELECT set_config('maintenance_work_mem', %s, false)", (memory,))
    try:
        table, next_index = collection.table(), collection.index(_NEXT_INDEX)
        conn.execute(index_statement(target.index, table=table, column=NEXT_COLUMN, name=next_index, concurrently=True))
    finally:
        conn.execute("RESET maintenance_work_mem")


def swap_embeddings(
    conn: psycopg.Connection,
    collection: Collection,
    target: ReembedTarget,
    embed: Callable[[list[str]], np.ndarray],
    *,
    batch: int,
) -> Collection:
    """Make the new vectors the collection's, in one transaction; returns the collection as it now is.

    Under the write lock, the chunks written since the last batch are embedded first (`embed`
    maps texts to a (n, dimensions) matrix), so no chunk is left without a new vector. Needs an
    autocommit connection; raises `psycopg.errors.LockNotAvailable` when the chunk table stayed
    locked for a second (nothing changed: retry).
    """
    with conn.transaction():
        conn.execute(WRITE_LOCK, {"collection": collection.name})
        after = 0
        while rows := pending_chunks(conn, collection, batch, after):
            write_next(conn, collection, rows, embed([text for *_, text in rows]))
            after = rows[-1][0]
        moved = {
            topic: centroid
            for topic, centroid in conn.execute(_format(_CENTROIDS, collection), {"name": collection.name})
            if isinstance(topic, int)
        }
        conn.execute(_LOCK_TIMEOUT)
        names = {"next_index": collection.qualified_index(_NEXT_INDEX), "index": collection.index(target.index.suffix)}
        values = {"name": collection.name, "topics": list(moved)}
        for statement in statements(_SWAP):  # one by one: a Citus coordinator passes each on to its workers
            conn.execute(statement.format(chunks=collection.table(), **names), values)
        with conn.cursor() as cur:
            cur.executemany(
                _MOVE_TOPIC,
                [{"name": collection.name, "topic": topic, "centroid": centroid} for topic, centroid in moved.items()],
            )
    return get_collection(conn, collection.name)


def require_embeddings(conn: psycopg.Connection, collection: Collection) -> None:
    """Declare the swapped-in column NOT NULL (a validated CHECK), without blocking searches or writes.

    Needs an autocommit connection; raises `psycopg.errors.LockNotAvailable` like `swap_embeddings`.
    """
    check = collection.index("embedding_not_null")
    with conn.transaction():
        conn.execute(_LOCK_TIMEOUT)
        for statement in statements(_NOT_NULL):
            conn.execute(statement.format(chunks=collection.table(), check=check))
    conn.execute(_format(_VALIDATE, collection, check=check))
