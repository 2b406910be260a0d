"""Operator chores: VACUUM ANALYZE, index rebuilds, term-statistics cleanup, size report.

The production checklist of a pgvector deployment, built in: vacuum and analyze after
bulk changes, rebuild the vector index after heavy churn (deleted tuples degrade an HNSW
graph; an IVFFlat's cells are k-means of the rows it was built over) with the collection's
own settings, cut the BM25 posting blocks anew once deletes have trimmed many of them, and
know how large each table and index is (the vector index wants to fit in RAM).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from retriever.store.collections import ensure_indexes, get_collection, index_kinds
from retriever.store.postings import bulk_pending, refresh_postings
from retriever.store.tables import SCHEMA, TABLE_SUFFIXES, Collection

__all__ = ["CollectionStats", "collection_stats", "maintain_collection"]


@dataclass(frozen=True, slots=True)
class CollectionStats:
    """Sizes and health of one collection's tables and indexes."""

    name: str
    chunks: int
    documents: int
    terms: int
    postings: int  # in the BM25 posting blocks
    trimmed_blocks: int  # posting blocks deletes took postings from, until they are cut anew
    tables: dict[str, dict[str, Any]]  # table → rows, dead rows (None on Citus), heap bytes
    indexes: dict[str, int]  # index → bytes

    def total_bytes(self) -> int:
        """Heap plus indexes, all tables."""
        return sum(t["heap_bytes"] for t in self.tables.values()) + sum(self.indexes.values())


_TABLE_STATS = """
SELECT relname, n_live_tup, n_dead_tup, pg_table_size(relid)
FROM pg_stat_user_tables
WHERE schemaname = %(schema)s AND relname = ANY(%(tables)s)
"""

_INDEX_STATS = """
SELECT indexrelname, pg_relation_size(indexrelid)
FROM pg_stat_user_indexes
WHERE schemaname = %(schema)s AND relname = ANY(%(tables)s)
ORDER BY indexrelname
"""

# On a Citus coordinator the collection's tables are shells: sizes are their shards' and copies'
# on every node (`citus_table_size`), and indexes are reported per table, all of them together.
_CITUS_TABLE_STATS = """
SELECT c.relname, citus_table_size(c.oid), citus_total_relation_size(c.oid) - citus_table_size(c.oid)
FROM pg_class c
WHERE c.relnamespace = %(schema)s::regnamespace AND c.relname = ANY(%(tables)s)
"""

_POSTINGS_COUNT = "SELECT coalesce(sum(cardinality(chunk_keys)), 0), count(*) FILTER (WHERE trimmed) FROM {postings}"
_TRIMMED_SHARE = "SELECT coalesce(avg(trimmed::integer), 0) FROM {postings}"
REBUILD_TRIMMED = 0.1  # `maintain` cuts the posting blocks anew once deletes have trimmed this share of them


def _table_names(collection: Collection) -> list[str]:
    return [f"{collection.name}__{suffix}" if suffix else collection.name for suffix in TABLE_SUFFIXES]


def collection_stats(conn: psycopg.Connection, collection: Collection) -> CollectionStats:
    """Row counts and on-disk sizes of the collection's tables and indexes."""
    names = _table_names(collection)
    values = {"schema": SCHEMA, "tables": names}

    @functools.cache  # each table counted once (on Citus, every table's rows are counted for `tables` too)
    def count(suffix: str) -> int:
        return int(conn.execute(sql.SQL("SELECT count(*) FROM {}").format(collection.table(suffix))).fetchone()[0])  # type: ignore[index]

    if collection.distributed:
        found = conn.execute(_CITUS_TABLE_STATS, values).fetchall()
        rows = {name: count(suffix) for name, suffix in zip(names, TABLE_SUFFIXES, strict=True)}
        tables = {name: {"rows": rows[name], "dead_rows": None, "heap_bytes": size} for name, size, _ in found}
        indexes = {f"{name} (all indexes)": size for name, _, size in found}
    else:
        tables = {
            name: {"rows": live, "dead_rows": dead, "heap_bytes": size}
            for name, live, dead, size in conn.execute(_TABLE_STATS, values).fetchall()
        }
        indexes = dict(conn.execute(_INDEX_STATS, values).fetchall())

    postings, trimmed = conn.execute(sql.SQL(_POSTINGS_COUNT).format(postings=collection.table("postings"))).fetchone()  # type: ignore[misc]
    return CollectionStats(
        collection.name,
        count(""),
        count("documents"),
        count("terms"),
        int(postings),
        int(trimmed),
        tables,
        indexes,
    )


def _trimmed_share(conn: psycopg.Connection, collection: Collection) -> float:
    statement = sql.SQL(_TRIMMED_SHARE).format(postings=collection.table("postings"))
    return float(conn.execute(statement).fetchone()[0])  # type: ignore[index]


def maintain_collection(conn: psycopg.Connection, collection: Collection, *, reindex: bool = False) -> CollectionStats:
    """Finish an interrupted first load, drop unused terms, cut the posting blocks anew once over
    REBUILD_TRIMMED of them are trimmed by deletes (with `reindex`, always), (re)build missing (with
    `reindex`, all) indexes, VACUUM ANALYZE every table.

    Needs an autocommit connection: VACUUM cannot run inside a transaction.
    """
    if reindex or bulk_pending(conn, collection) or _trimmed_share(conn, collection) > REBUILD_TRIMMED:
        refresh_postings(conn, collection)  # writes to this collection wait meanwhile; searches do not
        collection = get_collection(conn, collection.name)  # its statistics, rebuilt
    conn.execute(sql.SQL("DELETE FROM {} WHERE df <= 0").format(collection.table("terms")))
    if reindex:
        for index in index_kinds(collection).values():  # rebuilt below with the collection's own settings
            conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(collection.qualified_index(index)))
    ensure_indexes(conn, collection)
    for suffix in TABLE_SUFFIXES:
        conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(collection.table(suffix)))
    return collection_stats(conn, collection)
