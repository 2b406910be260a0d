"""The bulk writer: a batch of documents' chunks in ONE transaction (old versions out, new in).

Each batch: lock the collection's write path, delete the documents' previous chunks
with their postings (document frequencies decremented), COPY the new chunks in binary,
derive their postings from the generated `tsv`, bump document frequencies and the
collection's BM25 statistics, upsert the documents' hashes. A crash anywhere rolls the
whole batch back, so a document is never half-written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from ingest import Chunk
from retriever.collections import SCHEMA, Collection

__all__ = [
    "PreparedDocument",
    "begin_bulk",
    "bulk_pending",
    "delete_documents",
    "existing_hashes",
    "finish_bulk",
    "write_documents",
]


@dataclass(frozen=True, slots=True)
class PreparedDocument:
    """A document split into chunks, with the hash that decides whether it changed."""

    document_id: str
    hash: str
    chunks: list[Chunk]


# Writers of one collection serialise on this lock; bulk-load batches share it (they only add
# new documents and leave term statistics to `finish_bulk`, which takes it exclusively).
_LOCK = "SELECT pg_advisory_xact_lock(hashtext('hybrid_rag.write:' || %(collection)s))"
_SHARED_LOCK = "SELECT pg_advisory_xact_lock_shared(hashtext('hybrid_rag.write:' || %(collection)s))"

_DELETE = """
WITH gone AS (
    DELETE FROM {chunks} WHERE document_id = ANY(%(document_ids)s) RETURNING key, tsv
), gone_postings AS (
    DELETE FROM {postings} p
    USING gone g, unnest(tsvector_to_array(g.tsv)) AS t(term)
    WHERE p.term = t.term AND p.chunk_key = g.key
    RETURNING p.term, p.chunk_key, p.length
), df AS (
    UPDATE {terms} t SET df = t.df - g.n
    FROM (SELECT term, count(*) AS n FROM gone_postings GROUP BY term) g
    WHERE t.term = g.term
)
SELECT (SELECT count(*) FROM gone),
       (SELECT coalesce(sum(length), 0) FROM (SELECT DISTINCT chunk_key, length FROM gone_postings) l)
"""

_COPY = (
    "COPY {chunks} (id, document_id, chunk_index, content, metadata, content_hash, embedding) "
    "FROM STDIN (FORMAT BINARY)"
)

_POSTINGS = """
WITH fresh AS (
    SELECT c.key, u.lexeme AS term, cardinality(u.positions) AS tf
    FROM {chunks} c, unnest(c.tsv) AS u
    WHERE c.document_id = ANY(%(document_ids)s)
), lengths AS (
    SELECT key, sum(tf)::integer AS length FROM fresh GROUP BY key
), postings AS (
    INSERT INTO {postings} (term, chunk_key, tf, length)
    SELECT f.term, f.key, f.tf, l.length FROM fresh f JOIN lengths l USING (key)
    ORDER BY f.term, f.key
), df AS (
    INSERT INTO {terms} (term, df)
    SELECT term, count(*) FROM fresh GROUP BY term ORDER BY term
    ON CONFLICT (term) DO UPDATE SET df = {terms}.df + excluded.df
)
SELECT coalesce(sum(length), 0) FROM lengths
"""

# Bulk mode: the postings' primary key is dropped while loading and document frequencies
# are counted once at the end, so a batch only appends rows.
_POSTINGS_BULK = """
INSERT INTO {postings} (term, chunk_key, tf, length)
SELECT u.lexeme, c.key, cardinality(u.positions), l.length
FROM {chunks} c
CROSS JOIN LATERAL (SELECT sum(cardinality(positions))::integer AS length FROM unnest(c.tsv)) l
CROSS JOIN unnest(c.tsv) AS u
WHERE c.document_id = ANY(%(document_ids)s)
"""

_FINISH_BULK = (
    "TRUNCATE {terms}",
    "INSERT INTO {terms} (term, df) SELECT term, count(*) FROM {postings} GROUP BY term",
    """
    UPDATE hybrid_rag.collections
    SET chunk_count = (SELECT count(*) FROM {chunks}),
        total_length = (
            SELECT coalesce(sum(length), 0) FROM (SELECT min(length) AS length FROM {postings} GROUP BY chunk_key) l
        )
    WHERE name = %(collection)s
    """,
)

_DOCUMENTS = """
INSERT INTO {documents} (document_id, hash, chunk_count)
SELECT * FROM unnest(%(document_ids)s::text[], %(hashes)s::text[], %(counts)s::integer[])
ON CONFLICT (document_id) DO UPDATE
SET hash = excluded.hash, chunk_count = excluded.chunk_count, updated_at = now()
"""

_STATS = """
UPDATE hybrid_rag.collections
SET chunk_count = chunk_count + %(chunks)s, total_length = total_length + %(length)s
WHERE name = %(collection)s
"""


def _format(statement: str, collection: Collection) -> sql.Composed:
    return sql.SQL(statement).format(
        chunks=collection.table(),
        documents=collection.table("documents"),
        postings=collection.table("postings"),
        terms=collection.table("terms"),
    )


def existing_hashes(conn: psycopg.Connection, collection: Collection, document_ids: Sequence[str]) -> dict[str, str]:
    """Stored hash per document id, for the ids that exist."""
    with conn.cursor() as cur:
        cur.execute(
            _format("SELECT document_id, hash FROM {documents} WHERE document_id = ANY(%s)", collection),
            (list(document_ids),),
        )
        return dict(cur.fetchall())


def _remove(cur: psycopg.Cursor, collection: Collection, document_ids: list[str]) -> tuple[int, int]:
    cur.execute(_format(_DELETE, collection), {"document_ids": document_ids})
    chunks, length = cur.fetchone()  # type: ignore[misc]
    return int(chunks), int(length)


def write_documents(
    conn: psycopg.Connection,
    collection: Collection,
    documents: Sequence[PreparedDocument],
    embeddings: np.ndarray,
    *,
    bulk: bool = False,
    replacing: bool = True,
) -> int:
    """Replace these documents' chunks with the given ones, atomically; returns chunks written.

    `embeddings` has one row per chunk, in document then chunk order. `replacing=False`
    promises that none of the documents is stored yet (no old chunks to delete); `bulk`
    appends postings only, for a load between `begin_bulk` and `finish_bulk`.
    """
    chunks = [chunk for document in documents for chunk in document.chunks]
    if len(chunks) != len(embeddings):
        raise ValueError(f"{len(chunks)} chunks but {len(embeddings)} embeddings")
    document_ids = [document.document_id for document in documents]
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(_SHARED_LOCK if bulk else _LOCK, {"collection": collection.name})
        removed_chunks, removed_length = _remove(cur, collection, document_ids) if replacing else (0, 0)
        with cur.copy(_format(_COPY, collection)) as copy:
            copy.set_types(["text", "text", "int4", "text", "jsonb", "text", "vector"])
            for chunk, vector in zip(chunks, embeddings, strict=True):
                copy.write_row(
                    (
                        chunk.id,
                        chunk.document_id,
                        chunk.index,
                        chunk.content,
                        Jsonb(chunk.metadata),
                        chunk.content_hash,
                        vector,
                    )
                )
        if bulk:
            cur.execute(_format(_POSTINGS_BULK, collection), {"document_ids": document_ids})
        else:
            cur.execute(_format(_POSTINGS, collection), {"document_ids": document_ids})
            added_length = int(cur.fetchone()[0])  # type: ignore[index]
        cur.execute(
            _format(_DOCUMENTS, collection),
            {
                "document_ids": document_ids,
                "hashes": [document.hash for document in documents],
                "counts": [len(document.chunks) for document in documents],
            },
        )
        if bulk:
            return len(chunks)
        cur.execute(
            _STATS,
            {
                "chunks": len(chunks) - removed_chunks,
                "length": added_length - removed_length,
                "collection": collection.name,
            },
        )
    return len(chunks)


def delete_documents(conn: psycopg.Connection, collection: Collection, document_ids: Sequence[str]) -> int:
    """Delete documents with all their chunks; returns how many documents existed."""
    ids = list(document_ids)
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(_LOCK, {"collection": collection.name})
        removed_chunks, removed_length = _remove(cur, collection, ids)
        cur.execute(_format("DELETE FROM {documents} WHERE document_id = ANY(%s)", collection), (ids,))
        deleted = cur.rowcount
        cur.execute(_STATS, {"chunks": -removed_chunks, "length": -removed_length, "collection": collection.name})
    return deleted


def _postings_key(collection: Collection) -> str:
    return f"{collection.name}__postings_pkey"


def begin_bulk(conn: psycopg.Connection, collection: Collection) -> None:
    """Before loading an empty collection: drop the indexes that are cheaper to build afterwards."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(_LOCK, {"collection": collection.name})
        for index in ("embedding_hnsw", "tsv_gin"):
            cur.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(SCHEMA, f"{collection.name}_{index}")))
        cur.execute(
            sql.SQL("ALTER TABLE {} DROP CONSTRAINT IF EXISTS {}").format(
                collection.table("postings"), sql.Identifier(_postings_key(collection))
            )
        )


def finish_bulk(conn: psycopg.Connection, collection: Collection) -> None:
    """After a bulk load: rebuild the postings key, count document frequencies, set BM25 statistics.

    Idempotent, and run by the next ingest too, so a load that crashed is finished by a rerun.
    """
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(_LOCK, {"collection": collection.name})
        cur.execute("SET LOCAL maintenance_work_mem = '256MB'")
        cur.execute("SELECT count(*) FROM pg_constraint WHERE conname = %s", (_postings_key(collection),))
        if cur.fetchone()[0] == 0:  # type: ignore[index]
            cur.execute(
                sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} PRIMARY KEY (term, chunk_key) INCLUDE (tf, length)").format(
                    collection.table("postings"), sql.Identifier(_postings_key(collection))
                )
            )
        for statement in _FINISH_BULK:
            cur.execute(_format(statement, collection), {"collection": collection.name})


def bulk_pending(conn: psycopg.Connection, collection: Collection) -> bool:
    """True when a bulk load began and did not finish (its postings key is missing)."""
    row = conn.execute("SELECT count(*) FROM pg_constraint WHERE conname = %s", (_postings_key(collection),)).fetchone()
    return row[0] == 0  # type: ignore[index]
