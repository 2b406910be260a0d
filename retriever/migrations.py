"""Schema changes of the shared `hybrid_rag` schema, as ordered, recorded migrations.

Each migration is a function `mNNN_name(cur)`; they run in order, each once, inside
one transaction under an advisory lock, so concurrent processes never race.
"""

from __future__ import annotations

from collections.abc import Callable

import psycopg
from psycopg import sql

__all__ = ["MIGRATIONS", "migrate"]

_LOCK_KEY = 0x6879_6272  # "hybr": serialises migrations across processes


def m001_initial(cur: psycopg.Cursor) -> None:
    cur.execute("CREATE EXTENSION IF NOT EXISTS vector")
    cur.execute(
        """
        CREATE TABLE hybrid_rag.collections (
            name            text PRIMARY KEY,
            embedding_model text NOT NULL,
            dimensions      integer NOT NULL CHECK (dimensions > 0),
            text_config     regconfig NOT NULL,
            chunk_count     bigint NOT NULL DEFAULT 0,   -- N of BM25
            total_length    bigint NOT NULL DEFAULT 0,   -- Σ chunk lengths in lexemes: avgdl of BM25
            created_at      timestamptz NOT NULL DEFAULT now()
        )
        """
    )


def m002_posting_blocks(cur: psycopg.Cursor) -> None:
    """Postings move from one row per (term, chunk) to impact-ordered blocks: rebuild them."""
    from retriever.collections import list_collections
    from retriever.writer import rebuild_postings

    for collection in list_collections(cur.connection):
        for suffix in ("postings", "tombstones"):
            cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(collection.table(suffix)))
        cur.execute(sql.SQL("CREATE TABLE {} (key bigint PRIMARY KEY)").format(collection.table("tombstones")))
        rebuild_postings(cur, collection)  # creates the blocks, replaces the terms


def m003_no_array_statistics(cur: psycopg.Cursor) -> None:
    """ANALYZE stops sampling the posting blocks' arrays, which no plan uses."""
    from retriever.collections import list_collections, skip_array_statistics

    for collection in list_collections(cur.connection):
        skip_array_statistics(cur, collection)


MIGRATIONS: tuple[Callable[[psycopg.Cursor], None], ...] = (
    m001_initial,
    m002_posting_blocks,
    m003_no_array_statistics,
)


def migrate(conn: psycopg.Connection) -> list[str]:
    """Apply the migrations this database has not seen yet; return their names."""
    applied: list[str] = []
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        cur.execute("CREATE SCHEMA IF NOT EXISTS hybrid_rag")
        cur.execute(
            """
            CREATE TABLE IF NOT EXISTS hybrid_rag.migrations (
                name       text PRIMARY KEY,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """
        )
        cur.execute("SELECT name FROM hybrid_rag.migrations")
        done = {name for (name,) in cur.fetchall()}
        for migration in MIGRATIONS:
            if migration.__name__ in done:
                continue
            migration(cur)
            cur.execute("INSERT INTO hybrid_rag.migrations (name) VALUES (%s)", (migration.__name__,))
            applied.append(migration.__name__)
    return applied
