"""The bulk writer: a batch of documents' chunks in ONE transaction (old versions out, new in).

Each batch: lock the collection's write path, delete the documents' previous chunks
(document frequencies decremented, their postings taken out of their blocks), COPY the new
chunks in binary, derive their posting blocks from the generated `tsv`, bump document
frequencies and the collection's BM25 statistics, upsert the documents' hashes. A crash
anywhere rolls the whole batch back, so a document is never half-written. Each write is a
plan (`retriever.store.plans`): ingest runs it synchronously, the vector store's async
methods run the same statements on an async connection.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from ingest import Chunk
from retriever.errors import CollectionNotFound
from retriever.store.citus import NAMED, anchor_of, named
from retriever.store.collections import check_embeddings, document_key
from retriever.store.plans import Copy, Execute, Plan, arun_plan, run_ops, run_plan
from retriever.store.postings import append_op, load_finished_op
from retriever.store.tables import REGISTERED_EMBEDDINGS, SHARED_WRITE_LOCK, WRITE_LOCK, Collection
from retriever.store.topics import assign_topics

__all__ = [
    "LoadFinished",
    "PreparedDocument",
    "adelete_documents",
    "aexisting_hashes",
    "awrite_documents",
    "delete_documents",
    "delete_plan",
    "existing_hashes",
    "lock_for_writing",
    "locked",
    "write_documents",
    "write_plan",
]


class LoadFinished(Exception):
    """A bulk batch found that another writer has finished loading the collection: write it normally."""


@dataclass(frozen=True, slots=True)
class PreparedDocument:
    """A document split into chunks, with the hash that decides whether it changed."""

    document_id: str
    hash: str
    chunks: list[Chunk]


# The documents' chunks out, their terms' document frequencies down, and their postings out of
# their blocks: each block of a gone chunk's term on its shard that holds it goes, and comes back
# without the gone postings, in the same order under the same bound, marked trimmed
# (`postings.MERGED_BELOW`); one left empty stays out. Finding them reads every block of those
# terms, each tested against the batch's chunks that hold its term (few: see `_DELETE_BATCH`).
_DELETE = """
WITH gone AS (
    DELETE FROM {chunks} WHERE {named} RETURNING anchor, key, tsv
), gone_terms AS (
    SELECT g.anchor, g.key, u.lexeme AS term, cardinality(u.positions) AS tf FROM gone g CROSS JOIN unnest(g.tsv) AS u
), df AS (
    UPDATE {terms} t SET df = t.df - g.n
    FROM (SELECT term, count(*) AS n FROM gone_terms GROUP BY term) g
    WHERE t.term = g.term
), hit AS (
    DELETE FROM {postings} p
    USING (SELECT anchor, term, array_agg(key) AS keys FROM gone_terms GROUP BY anchor, term) g
    WHERE p.anchor = ANY(%(anchors)s) AND p.anchor = g.anchor AND p.term = g.term AND p.chunk_keys && g.keys
    RETURNING p.anchor, p.term, p.max_impact, p.chunk_keys, p.tfs, p.lengths, g.keys AS gone_keys
), kept AS (
    INSERT INTO {postings} (anchor, term, max_impact, chunk_keys, tfs, lengths, trimmed)
    SELECT h.anchor, h.term, h.max_impact, k.keys, k.tfs, k.lengths, true
    FROM hit h CROSS JOIN LATERAL (
        SELECT array_agg(u.key ORDER BY u.i) AS keys, array_agg(u.tf ORDER BY u.i) AS tfs,
               array_agg(u.length ORDER BY u.i) AS lengths
        FROM unnest(h.chunk_keys, h.tfs, h.lengths) WITH ORDINALITY AS u(key, tf, length, i)
        WHERE u.key <> ALL (h.gone_keys)
    ) k
    WHERE k.keys IS NOT NULL
)
SELECT (SELECT count(*) FROM gone), (SELECT coalesce(sum(tf), 0) FROM gone_terms)
"""
# Documents per delete statement: a block is tested against the batch's gone chunks that hold its term
_DELETE_BATCH = 256

_COPY = (
    "COPY {chunks} (anchor, id, document_id, chunk_index, content, metadata, content_hash, embedding) "
    "FROM STDIN (FORMAT BINARY)"
)
_COPY_TYPES = ("text", "text", "text", "int4", "text", "jsonb", "text")  # then the embedding's: `vector` or `halfvec`

_FORGET = "DELETE FROM {documents} WHERE {named} RETURNING document_id"

_DOCUMENTS = """
INSERT INTO {documents} (anchor, document_id, hash, chunk_count)
SELECT * FROM unnest(%(anchors)s::text[], %(document_ids)s::text[], %(hashes)s::text[], %(counts)s::integer[])
ON CONFLICT ({document_key}) DO UPDATE
SET hash = excluded.hash, chunk_count = excluded.chunk_count, updated_at = excluded.updated_at  -- its default, now()
"""

_STATS = """
UPDATE hybrid_rag.collections
SET chunk_count = chunk_count + %(chunks)s, total_length = total_length + %(length)s
WHERE name = %(collection)s
"""


_NEW_CHUNKS = sql.SQL(NAMED)  # the batch's chunks (`c`), on their shards


def locked(collection: Collection, *, shared: bool = False, embeddings: bool = False) -> Plan[None]:
    """Take the collection's write lock; `CollectionNotFound` when it was dropped meanwhile (the drop holds it too).

    With `embeddings`, `EmbeddingMismatch` when a re-embed swapped in another model meanwhile (the
    swap holds the lock too): vectors of the model `collection` names would no longer fit.
    """
    yield Execute(SHARED_WRITE_LOCK if shared else WRITE_LOCK, {"collection": collection.name})
    registered = yield Execute(REGISTERED_EMBEDDINGS, {"collection": collection.name})
    if not registered:
        raise _dropped(collection)
    if embeddings:
        model, dimensions = registered[0]
        now = dataclasses.replace(collection, embedding_model=model, dimensions=dimensions)
        check_embeddings(now, collection.embedding_model, collection.dimensions)


def lock_for_writing(cur: psycopg.Cursor, collection: Collection, *, shared: bool = False) -> None:
    """`locked` on a cursor, in the caller's transaction."""
    run_ops(cur, locked(collection, shared=shared))


def _format(statement: str, collection: Collection) -> sql.Composed:
    """`statement` over the collection's tables."""
    return sql.SQL(statement).format(
        document_key=sql.SQL(document_key(collection)),
        named=sql.SQL(NAMED),
        chunks=collection.table(),
        documents=collection.table("documents"),
        terms=collection.table("terms"),
        postings=collection.table("postings"),
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


def _stored(collection: Collection, document_ids: Sequence[str]) -> Plan[dict[str, str]]:
    statement = _format("SELECT document_id, hash FROM {documents} WHERE {named}", collection)
    return dict((yield Execute(statement, named(collection.anchors, document_ids))))


def _dropped(collection: Collection) -> CollectionNotFound:
    return CollectionNotFound(f"no collection named {collection.name!r} (it was dropped)")


def existing_hashes(conn: psycopg.Connection, collection: Collection, document_ids: Sequence[str]) -> dict[str, str]:
    """Stored hash per document id, for the ids that exist; `CollectionNotFound` once the collection is dropped."""
    try:
        return run_plan(conn, _stored(collection, document_ids))
    except psycopg.errors.UndefinedTable:
        raise _dropped(collection) from None


async def aexisting_hashes(
    conn: psycopg.AsyncConnection, collection: Collection, document_ids: Sequence[str]
) -> dict[str, str]:
    """Async `existing_hashes`."""
    try:
        return await arun_plan(conn, _stored(collection, document_ids))
    except psycopg.errors.UndefinedTable:
        raise _dropped(collection) from None


def _remove(collection: Collection, document_ids: list[str]) -> Plan[tuple[int, int]]:
    """Delete the documents' chunks with their postings; returns (chunks, Σ lengths) removed."""
    chunks = length = 0
    for start in range(0, len(document_ids), _DELETE_BATCH):
        batch = document_ids[start : start + _DELETE_BATCH]
        ((gone, gone_length),) = yield Execute(_format(_DELETE, collection), named(collection.anchors, batch))
        chunks, length = chunks + int(gone), length + int(gone_length)
    return chunks, length


def write_plan(
    collection: Collection,
    documents: Sequence[PreparedDocument],
    embeddings: np.ndarray,
    *,
    bulk: bool = False,
    replacing: bool = True,
) -> Plan[int]:
    """Replace these documents' chunks with the given ones; returns chunks written (see `write_documents`)."""
    documents, embeddings = _by_document_id(documents, embeddings)
    chunks = [chunk for document in documents for chunk in document.chunks]
    document_ids = [document.document_id for document in documents]
    yield from locked(collection, shared=bulk and not replacing, embeddings=True)
    if bulk and (yield load_finished_op(collection))[0][0]:
        raise LoadFinished(collection.name)  # its postings would be missing from the finished blocks
    removed_chunks, removed_length = (yield from _remove(collection, document_ids)) if replacing else (0, 0)
    anchors = [anchor_of(collection.anchors, document_id) for document_id in document_ids]
    anchor = dict(zip(document_ids, anchors, strict=True))
    rows = (
        (anchor[c.document_id], c.id, c.document_id, c.index, c.content, Jsonb(c.metadata), c.content_hash, vector)
        for c, vector in zip(chunks, embeddings, strict=True)
    )
    # binary COPY: the embedding must be sent as the column's own type, or its bytes are misread
    yield Copy(_format(_COPY, collection), (*_COPY_TYPES, collection.vector_index.storage), rows)
    batch = named(collection.anchors, document_ids)
    yield from assign_topics(collection, _NEW_CHUNKS, batch)  # once it has topics
    if not bulk:  # a bulk load builds all postings once, in `refresh_postings`
        ((added_length,),) = yield append_op(collection, _NEW_CHUNKS, **batch)
    counts = [len(document.chunks) for document in documents]
    hashes = [document.hash for document in documents]
    yield Execute(
        _format(_DOCUMENTS, collection),
        {"anchors": anchors, "document_ids": document_ids, "hashes": hashes, "counts": counts},
    )
    if not bulk:
        change = {"chunks": len(chunks) - removed_chunks, "length": int(added_length) - removed_length}
        yield Execute(_STATS, {**change, "collection": collection.name})
    return len(chunks)


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
    return run_plan(conn, write_plan(collection, documents, embeddings, bulk=bulk, replacing=replacing))


async def awrite_documents(
    conn: psycopg.AsyncConnection,
    collection: Collection,
    documents: Sequence[PreparedDocument],
    embeddings: np.ndarray,
) -> int:
    """Async `write_documents` (not bulk, replacing): the same statements, awaited."""
    return await arun_plan(conn, write_plan(collection, documents, embeddings))


def delete_plan(collection: Collection, document_ids: Sequence[str]) -> Plan[int]:
    """Delete documents with all their chunks; returns how many documents existed (see `delete_documents`)."""
    ids = list(document_ids)
    yield from locked(collection)
    removed_chunks, removed_length = yield from _remove(collection, ids)
    deleted = yield Execute(_format(_FORGET, collection), named(collection.anchors, ids))
    yield Execute(_STATS, {"chunks": -removed_chunks, "length": -removed_length, "collection": collection.name})
    return len(deleted)


def delete_documents(conn: psycopg.Connection, collection: Collection, document_ids: Sequence[str]) -> int:
    """Delete documents with all their chunks; returns how many documents existed.

    Raises `CollectionNotFound` when the collection was dropped meanwhile.
    """
    return run_plan(conn, delete_plan(collection, document_ids))


async def adelete_documents(conn: psycopg.AsyncConnection, collection: Collection, document_ids: Sequence[str]) -> int:
    """Async `delete_documents`: the same statements, awaited."""
    return await arun_plan(conn, delete_plan(collection, document_ids))
