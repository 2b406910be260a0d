"""Collections on a Citus coordinator: each shard holds whole documents and their posting blocks; BM25 stays global.

When the server has the citus extension, a new collection is distributed as it is created.
Every table of it but the document frequencies carries an `anchor`, its distribution column:

- a collection has one anchor per shard (`shard_anchors`: values that hash into each shard,
  kept in the registry), and a document's chunks all carry the same one, chosen by its id
  (`anchor_of`): a document's chunks, and its atomic replace, are one shard's;
- the chunk table (`docs`), `docs__documents` and the posting blocks `docs__postings` are
  hash-distributed by `anchor` and colocated: each shard holds the blocks of its own
  chunks, with its own HNSW (or IVFFlat), GIN and block indexes;
- the document frequencies (`docs__terms`) are a reference table (a copy on every node), and
  the chunk count and average length stay in the registry on the coordinator: BM25's idf
  and average length are the collection's, not a shard's. Topics stay on the coordinator
  too (a chunk's topic is assigned from centroids sent with the update: `retriever.store.topics`).

A search is still one statement: Citus pushes the vector leg's `ORDER BY distance LIMIT n`
down to every shard's index, and the BM25 leg's read runs on every shard over its own
blocks (`retriever.text_leg`); the coordinator merges both legs' shard results and fuses
them. A write of some documents names their anchors, so Citus sends it to their shards
alone; so do `like=` and reading one document.

A collection keeps its anchors, so its number of shards, for life: adding workers and
rebalancing moves whole shards, but a split shard would keep each anchor's rows in one half
(a backup restored anew picks the cluster's shards of the day).

A collection created on a coordinator is marked so in the registry (`Collection.distributed`);
one created before the citus extension was stays on the coordinator, unsharded. The number
of shards is the server's `citus.shard_count` (Citus' default: 32). On plain PostgreSQL
nothing here runs and every anchor is ''. Citus requires a distributed table's unique keys
to hold its distribution column: there a chunk's key is `(anchor, id)`, a document's
`(anchor, document_id)`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import psycopg
from psycopg import sql

from retriever.errors import ConfigurationError

__all__ = [
    "ANCHOR_SQL",
    "NAMED",
    "anchor_of",
    "distribute",
    "named",
    "on_citus",
    "replicate",
    "shard_anchors",
    "unreachable_nodes",
]

_ON_CITUS = "SELECT EXISTS (SELECT FROM pg_extension WHERE extname = 'citus')"
_UNREACHABLE = """
SELECT nodename || ':' || nodeport FROM pg_dist_node
WHERE isactive AND noderole = 'primary' AND groupid > 0 AND NOT citus_check_connection_to_node(nodename, nodeport)
ORDER BY nodeid
"""
_DISTRIBUTE = "SELECT create_distributed_table(%(table)s::regclass, 'anchor', colocate_with => %(colocate)s)"
# One anchor per shard of a table: the first of `anchor-0`, `anchor-1`, ... that hashes into it.
_ANCHORS = """
SELECT array_agg(anchor ORDER BY shard) FROM (
    SELECT DISTINCT ON (shard) shard, anchor
    FROM (SELECT 'anchor-' || i AS anchor FROM generate_series(0, %(tries)s) AS i) candidates
    CROSS JOIN LATERAL get_shard_id_for_distribution_column(%(table)s::regclass, anchor) AS shard
    ORDER BY shard, length(anchor), anchor
) found
"""
_REPLICATE = "SELECT create_reference_table(%(table)s::regclass)"


def on_citus(cur: psycopg.Cursor) -> bool:
    """Whether the server is a Citus coordinator: the citus extension is installed in this database."""
    return bool(cur.execute(_ON_CITUS).fetchone()[0])  # type: ignore[index]


def distribute(cur: psycopg.Cursor, *tables: sql.Identifier, beside: sql.Identifier | None = None) -> None:
    """Shard new (empty) tables by their `anchor`, each shard beside the same shard of the table `beside`."""
    colocate = "default" if beside is None else beside.as_string(cur)
    for table in tables:
        cur.execute(_DISTRIBUTE, {"table": table.as_string(cur), "colocate": colocate})


def shard_anchors(cur: psycopg.Cursor, chunks: sql.Identifier) -> list[str]:
    """One anchor per shard of the distributed chunk table, in shard order.

    Raises `ConfigurationError` when 64 candidates per shard do not reach every shard (shards of
    very unequal hash ranges, e.g. after splits: create the collection on a cluster with even ones).
    """
    shards = cur.execute(
        "SELECT count(*) FROM pg_dist_shard WHERE logicalrelid = %s::regclass", (chunks.as_string(cur),)
    ).fetchone()[0]  # type: ignore[index]
    found = cur.execute(_ANCHORS, {"table": chunks.as_string(cur), "tries": 64 * shards}).fetchone()[0]  # type: ignore[index]
    if len(found) != shards:
        raise ConfigurationError(
            f"found anchors for {len(found)} of the {shards} shards of {chunks.as_string(cur)}: "
            "the cluster's shards are of very unequal sizes"
        )
    return list(found)


# `anchor_of` in SQL, for rows with a `document_id` and the collection's `%(anchors)s`
ANCHOR_SQL = sql.SQL(
    "(%(anchors)s::text[])[1 + ('x' || left(md5(convert_to(document_id, 'UTF8')), 8))::bit(32)::bigint"
    " %% cardinality(%(anchors)s::text[])]"
)


def anchor_of(anchors: Sequence[str] | None, document_id: str) -> str:
    """The anchor of a document's chunks: one of the collection's `anchors`, chosen by the first 32 bits of
    the MD5 of its id ('' for a collection without anchors); the same as `ANCHOR_SQL`."""
    if not anchors:
        return ""
    return anchors[int(hashlib.md5(document_id.encode()).hexdigest()[:8], 16) % len(anchors)]


def replicate(cur: psycopg.Cursor, *tables: sql.Identifier) -> None:
    """Make new (empty) tables reference tables: a copy on every node of the cluster."""
    for table in tables:
        cur.execute(_REPLICATE, {"table": table.as_string(cur)})


async def unreachable_nodes(conn: psycopg.AsyncConnection) -> list[str]:
    """The workers (host:port) a Citus coordinator cannot connect to within 2 s now; none elsewhere."""
    citus = await (await conn.execute(_ON_CITUS)).fetchone()
    if not (citus and citus[0]):
        return []
    async with conn.transaction():
        await conn.execute("SET LOCAL citus.node_connection_timeout = 2000")  # ms; Citus waits 30 s by default
        return [node for (node,) in await (await conn.execute(_UNREACHABLE)).fetchall()]


# The rows of the documents `%(document_ids)s` whose anchors are `%(anchors)s` (`named`): on Citus,
# a statement with this condition goes to those documents' shards alone.
NAMED = "anchor = ANY(%(anchors)s) AND document_id = ANY(%(document_ids)s)"


def named(anchors: Sequence[str] | None, document_ids: Sequence[str]) -> dict[str, list[str]]:
    """The parameters of `NAMED` for these documents of a collection with these `anchors`."""
    return {
        "anchors": sorted({anchor_of(anchors, document_id) for document_id in document_ids}),
        "document_ids": list(document_ids),
    }
