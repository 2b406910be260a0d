"""A collection as the release before m010 left it: deleted chunks' postings kept in their blocks behind tombstones.

`delete_as_before_m010` deletes documents the way that release did (chunks out, document
frequencies and statistics down, postings left in the blocks, chunk keys into
`<name>__tombstones`; blocks without a `trimmed` column) and marks m010 as not yet applied,
so `migrate` runs it next. On a Citus coordinator the tombstones are sharded beside the chunks.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

__all__ = ["delete_as_before_m010"]

_TOMBSTONES = "CREATE TABLE {tombstones} (anchor text NOT NULL DEFAULT '', key bigint, PRIMARY KEY (key, anchor))"
_SHARDED = "SELECT create_distributed_table(%(tombstones)s, 'anchor', colocate_with => %(chunks)s)"
_DELETE = """
WITH gone AS (
    DELETE FROM {chunks} WHERE document_id = ANY(%(ids)s) RETURNING anchor, key, tsv
), df AS (
    UPDATE {terms} t SET df = t.df - g.n
    FROM (SELECT u.lexeme AS term, count(*) AS n FROM gone, unnest(gone.tsv) AS u GROUP BY 1) g
    WHERE t.term = g.term
)
INSERT INTO {tombstones} (anchor, key) SELECT anchor, key FROM gone
"""
_FORGET = "DELETE FROM {documents} WHERE document_id = ANY(%(ids)s)"
_STATISTICS = """
UPDATE hybrid_rag.collections
SET chunk_count = (SELECT count(*) FROM {chunks}),
    total_length = (SELECT coalesce(sum(cardinality(u.positions)), 0) FROM {chunks} c, unnest(c.tsv) AS u)
WHERE name = %(name)s
"""


def delete_as_before_m010(conn: psycopg.Connection, name: str, document_ids: list[str], *, citus: bool = False) -> None:
    """Delete `document_ids` from collection `name` as the release before m010 did, in one transaction."""
    tables = {
        "chunks": sql.Identifier("hybrid_rag", name),
        **{kind: sql.Identifier("hybrid_rag", f"{name}__{kind}") for kind in ("documents", "terms", "tombstones")},
    }
    postings = sql.Identifier("hybrid_rag", f"{name}__postings")
    with conn.transaction():
        conn.execute("SELECT set_config('citus.multi_shard_modify_mode', 'sequential', true)")
        conn.execute(sql.SQL("ALTER TABLE {} DROP COLUMN trimmed").format(postings))
        conn.execute(sql.SQL(_TOMBSTONES).format(**tables))
        if citus:
            conn.execute(_SHARDED, {"tombstones": f"hybrid_rag.{name}__tombstones", "chunks": f"hybrid_rag.{name}"})
        values = {"ids": document_ids, "name": name}
        for statement in (_DELETE, _FORGET, _STATISTICS):
            conn.execute(sql.SQL(statement).format(**tables), values)
        conn.execute("DELETE FROM hybrid_rag.migrations WHERE name = 'm010_no_tombstones'")
