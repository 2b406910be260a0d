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
from retriever.store.tables import WRITE_LOCK, Collection
from retriever.store.vector_index import VectorIndex, column_type, index_statement

__all__ = [
    "NEXT_COLUMN",
    "ReembedTarget",
    "counts",
    "index_next",
    "pending_chunks",
    "prepare_reembed",
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
_PENDING = f"SELECT key, content FROM {{chunks}} WHERE {NEXT_COLUMN} IS NULL ORDER BY key LIMIT %(limit)s"
_COUNTS = f"SELECT count(*) FILTER (WHERE {NEXT_COLUMN} IS NULL), count(*) FROM {{chunks}}"
_WRITE = f"UPDATE {{chunks}} SET {NEXT_COLUMN} = %(embedding)s WHERE key = %(key)s"

# The swap, after every chunk has its new vector: the old column (and its index) goes, the
# new one takes its name, and the topics' centroids move to the new space (a topic no chunk
# holds any more is dropped: it has no centroid there).
_SWAP = f"""
LOCK TABLE {{chunks}} IN ACCESS EXCLUSIVE MODE;
ALTER TABLE {{chunks}} DROP COLUMN embedding;
ALTER TABLE {{chunks}} RENAME COLUMN {NEXT_COLUMN} TO embedding;
ALTER TABLE {{chunks}} ALTER COLUMN embedding SET NOT NULL;
ALTER INDEX {{next_index}} RENAME TO {{index}};
UPDATE hybrid_rag.collections
SET embedding_model = reembed_model, dimensions = reembed_dimensions, storage = reembed_storage,
    reembed_model = NULL, reembed_dimensions = NULL, reembed_storage = NULL
WHERE name = {{name}};
DELETE FROM hybrid_rag.topics t
WHERE t.collection = {{name}}
  AND NOT EXISTS (SELECT FROM {{chunks}} c WHERE c.metadata -> t.metadata_key = to_jsonb(t.topic));
UPDATE hybrid_rag.topics t
SET centroid = (SELECT avg(c.embedding::vector) FROM {{chunks}} c
                WHERE c.metadata -> t.metadata_key = to_jsonb(t.topic))
WHERE t.collection = {{name}}
"""


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

    `storage` (`vector`, `halfvec`; default the collection's) is the new column's; the index kind
    and its parameters stay the collection's. An earlier, unfinished re-embed to another target
    is discarded. Raises `InputError` when the collection already uses `model`, or when the index
    cannot hold `dimensions` in that storage.
    """
    if model == collection.embedding_model and dimensions == collection.dimensions:
        raise InputError(f"collection {collection.name!r} is already embedded with {model!r} ({dimensions} dims)")
    index = dataclasses.replace(collection.vector_index, storage=storage or collection.vector_index.storage)
    index.validate(dimensions)
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(WRITE_LOCK, {"collection": collection.name})  # no ingest between the check and the change
        cur.execute(_TARGET, {"name": collection.name})
        recorded = cur.fetchone()
        resumed = recorded == (model, dimensions, index.storage)
        if not resumed:
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


def pending_chunks(conn: psycopg.Connection, collection: Collection, limit: int) -> list[tuple[int, str]]:
    """Up to `limit` chunks (key, content) still without a new vector, in key order."""
    return conn.execute(_format(_PENDING, collection), {"limit": limit}).fetchall()


def counts(conn: psycopg.Connection, collection: Collection) -> tuple[int, int]:
    """(chunks still without a new vector, all chunks)."""
    pending, total = conn.execute(_format(_COUNTS, collection)).fetchone()  # type: ignore[misc]
    return int(pending), int(total)


def write_next(conn: psycopg.Connection, collection: Collection, keys: list[int], vectors: np.ndarray) -> None:
    """Store the new vectors of these chunks (a chunk deleted meanwhile is skipped)."""
    with conn.cursor() as cur:
        cur.executemany(
            _format(_WRITE, collection),
            [{"key": key, "embedding": vector} for key, vector in zip(keys, vectors, strict=True)],
        )


def index_next(conn: psycopg.Connection, collection: Collection, target: ReembedTarget) -> None:
    """Build the target's vector index on the new column (reads go on; writes wait)."""
    conn.execute(
        index_statement(
            target.index,
            table=collection.table(),
            column=NEXT_COLUMN,
            name=collection.index(_NEXT_INDEX),
        )
    )


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
    maps texts to a (n, dimensions) matrix), so no chunk is left without a new vector.
    """
    with conn.transaction():
        conn.execute(WRITE_LOCK, {"collection": collection.name})
        while rows := pending_chunks(conn, collection, batch):
            write_next(conn, collection, [key for key, _ in rows], embed([text for _, text in rows]))
        conn.execute(
            _format(
                _SWAP,
                collection,
                name=sql.Literal(collection.name),
                next_index=collection.qualified_index(_NEXT_INDEX),
                index=collection.index(target.index.suffix),
            )
        )
    return get_collection(conn, collection.name)
