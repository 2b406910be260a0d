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
from retriever.collections import (
    POSTINGS_BLOCK,
    SCHEMA,
    Collection,
    create_postings,
    index_postings,
    swap_postings,
)
from retriever.query import BM25_B, BM25_K1

__all__ = [
    "REBUILD_TOMBSTONES",
    "PreparedDocument",
    "begin_bulk",
    "bulk_pending",
    "delete_documents",
    "existing_hashes",
    "rebuild_postings",
    "refresh_postings",
    "stale_share",
    "write_documents",
]


@dataclass(frozen=True, slots=True)
class PreparedDocument:
    """A document split into chunks, with the hash that decides whether it changed."""

    document_id: str
    hash: str
    chunks: list[Chunk]


# Writers of one collection serialise on this lock; bulk-load batches share it (they only add
# new documents and leave term statistics to `refresh_postings`, which takes it exclusively).
_LOCK = "SELECT pg_advisory_xact_lock(hashtext('hybrid_rag.write:' || %(collection)s))"
_SHARED_LOCK = "SELECT pg_advisory_xact_lock_shared(hashtext('hybrid_rag.write:' || %(collection)s))"

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

# The postings of some chunks (`{selection}`), cut into blocks per term. A block holds up to
# POSTINGS_BLOCK postings in impact order (BM25's term weight without idf, at the current
# average length); a term's partial blocks are merged with its new postings, so each term
# keeps at most one partial block. One sort orders every term's postings by impact; the
# blocks are slices of that order. Also adds document frequencies; returns Σ lengths.
_POSTINGS = """
WITH fresh AS (
    SELECT u.term, c.key, u.tf, u.length
    FROM {chunks} c
    CROSS JOIN LATERAL (  -- one pass over the tsvector: tf per lexeme, and their sum, the length
        SELECT lexeme AS term, cardinality(positions) AS tf,
               (sum(cardinality(positions)) OVER ())::integer AS length
        FROM unnest(c.tsv)
    ) u
    WHERE {selection}
), stats AS MATERIALIZED (  -- once, not per use
    SELECT greatest(coalesce(
        total_length::float8 / nullif(chunk_count, 0),
        (SELECT sum(tf) FROM fresh)::float8 / nullif((SELECT count(*) FROM {chunks} c WHERE {selection}), 0)
    ), 1) AS avgdl
    FROM hybrid_rag.collections WHERE name = %(collection)s
), tails AS (
    DELETE FROM {postings} p
    USING (SELECT DISTINCT term FROM fresh) f
    WHERE %(merge)s AND p.term = f.term AND cardinality(p.chunk_keys) < {block}
    RETURNING p.term, p.chunk_keys, p.tfs, p.lengths
), merged AS (
    SELECT term, key, tf, length, true AS fresh FROM fresh
    UNION ALL
    SELECT t.term, u.key, u.tf, u.length, false
    FROM tails t CROSS JOIN unnest(t.chunk_keys, t.tfs, t.lengths) AS u(key, tf, length)
), by_term AS (
    SELECT term, count(*) FILTER (WHERE fresh) AS added,
           array_agg(impact ORDER BY impact DESC, key) AS impacts,
           array_agg(key ORDER BY impact DESC, key) AS keys,
           array_agg(tf ORDER BY impact DESC, key) AS tfs,
           array_agg(length ORDER BY impact DESC, key) AS lengths
    FROM (
        SELECT m.*, m.tf * (%(k1)s + 1) / (m.tf + %(k1)s * (1 - %(b)s + %(b)s * m.length / s.avgdl)) AS impact
        FROM merged m CROSS JOIN stats s
    ) weighted
    GROUP BY term
), inserted AS (
    INSERT INTO {postings} (term, max_impact, chunk_keys, tfs, lengths)
    SELECT term, impacts[i], keys[i:i + {block} - 1], tfs[i:i + {block} - 1], lengths[i:i + {block} - 1]
    FROM by_term CROSS JOIN generate_series(1, cardinality(keys), {block}) AS i
), df AS (
    INSERT INTO {terms} (term, df)
    SELECT term, added FROM by_term WHERE added > 0 ORDER BY term
    ON CONFLICT (term) DO UPDATE SET df = {terms}.df + excluded.df
)
SELECT coalesce(sum(tf), 0) FROM fresh
"""

_RESET_STATS = "UPDATE hybrid_rag.collections SET chunk_count = 0, total_length = 0 WHERE name = %(collection)s"
_SET_STATS = """
UPDATE hybrid_rag.collections
SET chunk_count = (SELECT count(*) FROM {chunks}), total_length = %(length)s
WHERE name = %(collection)s
"""

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


def _format(
    statement: str, collection: Collection, selection: sql.Composable = _NEW_CHUNKS, *, suffix: str = ""
) -> sql.Composed:
    """`statement` over the collection's tables; `suffix` picks posting blocks and terms built beside the live ones."""
    return sql.SQL(statement).format(
        chunks=collection.table(),
        documents=collection.table("documents"),
        postings=collection.table(f"postings{suffix}"),
        terms=collection.table(f"terms{suffix}"),
        tombstones=collection.table("tombstones"),
        selection=selection,
        block=sql.Literal(POSTINGS_BLOCK),
    )


def _add_postings(
    cur: psycopg.Cursor,
    collection: Collection,
    selection: sql.Composable,
    *,
    merge: bool = True,
    suffix: str = "",
    **values: object,
) -> int:
    values = {"collection": collection.name, "k1": BM25_K1, "b": BM25_B, "merge": merge, **values}
    cur.execute(_format(_POSTINGS, collection, selection, suffix=suffix), values)
    return int(cur.fetchone()[0])  # type: ignore[index]


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
    appends chunks only, for a load between `begin_bulk` and `refresh_postings`.
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
        if not bulk:  # a bulk load builds all postings once, in `refresh_postings`
            added_length = _add_postings(cur, collection, _NEW_CHUNKS, document_ids=document_ids)
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


_REBUILT = "__next"  # suffix of the terms and blocks a rebuild fills beside the live ones

REBUILD_TOMBSTONES = 0.1  # rebuild the blocks once deleted chunks are this share of the chunks they hold

_STALE_SHARE = """
SELECT t.n::float8 / nullif(t.n + c.chunk_count, 0)
FROM (SELECT count(*) AS n FROM {tombstones}) t, hybrid_rag.collections c
WHERE c.name = %(collection)s
"""


def stale_share(conn: psycopg.Connection, collection: Collection) -> float:
    """The share of the chunks in the posting blocks that are deleted (tombstones), 0 when empty."""
    row = conn.execute(_format(_STALE_SHARE, collection), {"collection": collection.name}).fetchone()
    return float(row[0] or 0) if row else 0.0


def _order_index(collection: Collection) -> str:
    return f"{collection.name}_postings_order"


def begin_bulk(conn: psycopg.Connection, collection: Collection) -> None:
    """Before loading an empty collection: drop the indexes that are cheaper to build afterwards.

    The missing postings order index marks the load as unfinished (see `bulk_pending`).
    """
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(_LOCK, {"collection": collection.name})
        for index in ("embedding_hnsw", "tsv_gin", "postings_order"):
            cur.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(SCHEMA, f"{collection.name}_{index}")))


def rebuild_postings(cur: psycopg.Cursor, collection: Collection) -> None:
    """Rebuild every posting block, document frequency and BM25 statistic from the chunks' `tsv`.

    The new blocks come out in impact order across the whole collection, without
    tombstones. They are built beside the live ones, which searches go on reading; only
    the final swap locks searches out, until the caller's transaction commits. Writers
    of the collection wait on its write lock throughout.
    """
    cur.execute(_LOCK, {"collection": collection.name})
    create_postings(cur, collection, suffix=_REBUILT, indexed=False)
    cur.execute(_RESET_STATS, {"collection": collection.name})  # others see the old ones until commit
    length = _add_postings(cur, collection, sql.SQL("true"), merge=False, suffix=_REBUILT)
    cur.execute(_format(_SET_STATS, collection), {"length": length, "collection": collection.name})
    index_postings(cur, collection, suffix=_REBUILT)
    for suffix in ("postings", "terms"):  # statistics stay with the tables: plans are right from the swap on
        cur.execute(sql.SQL("ANALYZE {}").format(collection.table(suffix + _REBUILT)))
    swap_postings(cur, collection, _REBUILT)


def refresh_postings(conn: psycopg.Connection, collection: Collection, *, only_if_stale: bool = False) -> bool:
    """Rebuild the posting blocks in their own transaction, with the memory for one sort of them all.

    Finishes a bulk load (and one that crashed: the next ingest runs it again), and drops
    deleted chunks' postings once they pile up: `only_if_stale` rechecks `stale_share`
    once the write lock is held, in case another writer just did. Returns whether it rebuilt.
    """
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(_LOCK, {"collection": collection.name})
        if only_if_stale and stale_share(conn, collection) <= REBUILD_TOMBSTONES:
            return False
        cur.execute("SET LOCAL maintenance_work_mem = '256MB'")
        cur.execute("SET LOCAL work_mem = '1GB'")  # one sort of every posting
        cur.execute("SET LOCAL statement_timeout = 0")  # minutes at a million chunks, whoever asked
        rebuild_postings(cur, collection)
    return True


def bulk_pending(conn: psycopg.Connection, collection: Collection) -> bool:
    """True when a bulk load began and did not finish (its postings order index is missing)."""
    row = conn.execute(
        "SELECT count(*) FROM pg_indexes WHERE schemaname = %s AND indexname = %s", (SCHEMA, _order_index(collection))
    ).fetchone()
    return row[0] == 0  # type: ignore[index]
