"""Collections on a Citus coordinator: the chunks sharded by document, the BM25 statistics on every node.

When the server has the citus extension, a new collection is distributed as it is created:

- the chunk table (`docs`) is hash-distributed by `document_id` (so a document's chunks,
  and its atomic replace, are one shard's), with its own HNSW (or IVFFlat) and GIN index
  on each shard; `docs__documents` is colocated with it;
- the document frequencies (`docs__terms`), the posting blocks (`docs__postings`) and the
  tombstones are reference tables: one copy on every node, so BM25's idf is the collection's,
  not a shard's, and the text leg reads them beside any shard;
- the registry (with the collection's chunk count and average length) and the topics stay on
  the coordinator, which plans every statement (a chunk's topic is assigned from centroids
  sent with the update: `retriever.store.topics`).

A search is still one statement: Citus pushes the vector leg's `ORDER BY distance LIMIT n`
down to every shard's index and merges the shards' rows on the coordinator; the text leg
and the fusion run as its subplans. A collection created on a coordinator is marked so in
the registry (`Collection.distributed`); one created before the citus extension was stays on
the coordinator, unsharded. The number of shards is the server's `citus.shard_count`
(Citus' default: 32). On plain PostgreSQL nothing here runs. Citus requires a distributed
table's unique keys to hold its distribution column: there, a chunk's id is unique within
its document (chunk ids are `<document id>:<n>`), and the chunk key is indexed, not unique.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

__all__ = ["distribute_chunks", "on_citus", "replicate", "unreachable_nodes"]

_ON_CITUS = "SELECT EXISTS (SELECT FROM pg_extension WHERE extname = 'citus')"
_UNREACHABLE = """
SELECT nodename || ':' || nodeport FROM pg_dist_node
WHERE isactive AND noderole = 'primary' AND groupid > 0 AND NOT citus_check_connection_to_node(nodename, nodeport)
ORDER BY nodeid
"""
_DISTRIBUTE = "SELECT create_distributed_table(%(table)s::regclass, 'document_id', colocate_with => %(colocate)s)"
_REPLICATE = "SELECT create_reference_table(%(table)s::regclass)"


def on_citus(cur: psycopg.Cursor) -> bool:
    """Whether the server is a Citus coordinator: the citus extension is installed in this database."""
    return bool(cur.execute(_ON_CITUS).fetchone()[0])  # type: ignore[index]


def distribute_chunks(cur: psycopg.Cursor, chunks: sql.Identifier, documents: sql.Identifier) -> None:
    """Shard a new (empty) collection's chunk table by `document_id`, its documents table beside it."""
    cur.execute(_DISTRIBUTE, {"table": chunks.as_string(cur), "colocate": "default"})
    cur.execute(_DISTRIBUTE, {"table": documents.as_string(cur), "colocate": chunks.as_string(cur)})


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
