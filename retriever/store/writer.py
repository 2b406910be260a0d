"""The bulk writer: a batch of documents' chunks in ONE transaction (old versions out, new in).

Each batch: lock the collection's write path, delete the documents' previous chunks
(document frequencies decremented; their postings become tombstones), COPY the new
chunks in binary, derive their posting blocks from the generated `tsv`, bump document
frequencies and the collection's BM25 statistics, upsert the documents' hashes. A crash
anywhere rolls the whole batch back, so a document is never half-written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from ingest import Chunk
from retriever.errors import CollectionNotFound
from retriever.store.postings import add_postings, load_finished
from retriever.store.tables import SHARED_WRITE_LOCK, WRITE_LOCK, Collection

__all__ = [
    "LoadFinished",
    "PreparedDocument",
    "delete_documents",
    "existing_hashes",
    "lock_for_writing",
    "write_documents",
]


class LoadFinished(Exception):
    """A bulk batch found that another writer has finished loading the collection: write it normally."""


@dataclass(frozen=True, slots=True)
class PreparedDocument:
    """A document split into chunks, with the hash that decides whether it changed."""

    document_id: str
    hash: str
    chunks: list[Chunk]


_DELETE = """
WITH gone AS (
    DELETE FROM {chunks} WHERE document_id = ANY(%(document_ids)s) RETURNING key, tsv
), gone_terms AS (
    SELECT u.lexeme AS term, cardinality(u.positions) AS tf FROM gone g CROSS JOIN unnest(g.tsv) AS u
), df AS (
    UPDATE {terms} t SET df = t.df - g.n
    FROM (SELECT term, count(*) AS n FROM gone_terms GROUP BY term) g
    WHERE t.term = g.term
), buried AS (
    INSERT INTO {tombstones} (key) SELECT key FROM gone
)
SELECT (SELECT count(*) FROM gone), (SELECT coalesce(sum(tf), 0) FROM gone_terms)
"""

_COPY = (
    "COPY {chunks} (id, document_id, chunk_index, content, metadata, content_hash, embedding) "
    "FROM STDIN (FORMAT BINARY)"
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


_NEW_CHUNKS = sql.SQL("c.document_id = ANY(%(document_ids)s)")

_REGISTERED = "SELECT FROM hybrid_rag.collections WHERE name = %(collection)s"


def lock_for_writing(cur: psycopg.Cursor, collection: Collection, *, shared: bool = False) -> None:
    """Take the collection's write lock; `CollectionNotFound` when it was dropped meanwhile (the drop holds it too)."""
    cur.execute(SHARED_WRITE_LOCK if shared else WRITE_LOCK, {"collection": collection.name})
    if cur.execute(_REGISTERED, {"collection": collection.name}).fetchone() is None:
        raise CollectionNotFound(f"no collection named {collection.name!r} (it was dropped)")


def _format(statement: str, collection: Collection) -> sql.Composed:
    """`statement` over the collection's tables."""
    return sql.SQL(statement).format(
        chunks=collection.table(),
        documents=collection.table("documents"),
        terms=collection.table("terms"),
        tombstones=collection.table("tombstones"),
    )


def _by_document_id(
    documents: Sequence[PreparedDocument], embeddings: np.ndarray
) -> tuple[list[PreparedDocument], np.ndarray]:
    """The documents in id order, with their chunks' embeddings: concurrent writers of overlapping
    documents then touch rows in the same order and cannot deadlock."""
    chunk_count = sum(len(document.chunks) for document in documents)
    if chunk_count != len(embeddings):
        raise ValueError(f"{chunk_count} chunks but {len(embeddings)} embeddings")
    starts = np.cumsum([0] + [len(document.chunks) for document in documents])
    order = sorted(range(len(documents)), key=lambda i: documents[i].document_id)
    rows = [row for i in order for row in range(starts[i], starts[i + 1])]
    return [documents[i] for i in order], embeddings[rows]


def existing_hashes(conn: psycopg.Connection, collection: Collection, document_ids: Sequence[str]) -> dict[str, str]:
    """Stored hash per document id, for the ids that exist; `CollectionNotFound` once the collection is dropped."""
    with conn.cursor() as cur:
        try:
            cur.execute(
                _format("SELECT document_id, hash FROM {documents} WHERE document_id = ANY(%s)", collection),
                (list(document_ids),),
            )
        except psycopg.errors.UndefinedTable:
            raise CollectionNotFound(f"no collection named {collection.name!r} (it was dropped)") from None
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

    `embeddings` has one row per chunk, in document then chunk order. `bulk` appends
    chunks only, for a load between `begin_bulk` and `refresh_postings`; a bulk batch that
    is not `replacing` shares the collection's write lock with the load's other batches
    and deletes nothing, so a document another writer stored meanwhile makes it fail with
    `psycopg.errors.UniqueViolation` (the batch is rolled back whole; retry it replacing).
    A bulk batch raises `LoadFinished` when another writer has finished the load meanwhile.
    """
    documents, embeddings = _by_document_id(documents, embeddings)
    chunks = [chunk for document in documents for chunk in document.chunks]
    document_ids = [document.document_id for document in documents]
    with conn.transaction(), conn.cursor() as cur:
        lock_for_writing(cur, collection, shared=bulk and not replacing)
        if bulk and load_finished(cur, collection):
            raise LoadFinished(collection.name)  # its postings would be missing from the finished blocks
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
        if not bulk:  # a bulk load builds all postings once, in `refresh_postings`
            added_length = add_postings(cur, collection, _NEW_CHUNKS, document_ids=document_ids)
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
    """Delete documents with all their chunks; returns how many documents existed.

    Raises `CollectionNotFound` when the collection was dropped meanwhile.
    """
    ids = list(document_ids)
    with conn.transaction(), conn.cursor() as cur:
        lock_for_writing(cur, collection)
        removed_chunks, removed_length = _remove(cur, collection, ids)
        cur.execute(_format("DELETE FROM {documents} WHERE document_id = ANY(%s)", collection), (ids,))
        deleted = cur.rowcount
        cur.execute(_STATS, {"chunks": -removed_chunks, "length": -removed_length, "collection": collection.name})
    return deleted
