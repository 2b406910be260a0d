"""Schema migrations run once each, and bring collections made by older versions up to date.

Specification: ANALYZE gathers statistics for the posting blocks' `term` and
`max_impact` (the search plans use them) but not for their arrays (no plan does, and
sampling them was most of ANALYZE's time); a collection made before that rule gets it
from migration m003, and migrating twice changes nothing.
"""

from __future__ import annotations

from psycopg import sql

from ingest import ChunkingConfig, SourceDocument
from retriever.collections import get_collection
from retriever.database import open_primary
from retriever.migrations import migrate
from retriever.service import ingest_source_documents

ARRAYS = {"chunk_keys", "tfs", "lengths"}


def _sampled_columns(conn, table: str) -> set[str]:
    conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier("hybrid_rag", table)))
    rows = conn.execute(
        "SELECT attname FROM pg_stats WHERE schemaname = 'hybrid_rag' AND tablename = %s", (table,)
    ).fetchall()
    return {name for (name,) in rows}


def _unsampled_columns(conn, table: str) -> set[str]:
    rows = conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attstattarget = 0", (f"hybrid_rag.{table}",)
    ).fetchall()
    return {name for (name,) in rows}


def _ingest(settings, name: str, model) -> None:
    documents = [
        SourceDocument(document_id=f"d{i}", text=f"alpha beta gamma {i} delta", title=None, source="t", metadata={})
        for i in range(30)
    ]
    ingest_source_documents(settings, name, documents, ChunkingConfig(), model=model)


def test_analyze_samples_the_posting_terms_but_not_their_arrays(settings, collection_name, fake_model):
    _ingest(settings, collection_name, fake_model)

    with open_primary(settings) as conn:
        sampled = _sampled_columns(conn, f"{collection_name}__postings")

    assert {"term", "max_impact"} <= sampled
    assert not sampled & ARRAYS


def test_migration_m003_stops_sampling_the_arrays_of_an_older_collection(settings, collection_name, fake_model):
    _ingest(settings, collection_name, fake_model)
    with open_primary(settings) as conn:
        postings = get_collection(conn, collection_name).table("postings")
        reset = sql.SQL("ALTER TABLE {} ALTER COLUMN {} SET STATISTICS -1")
        for column in sorted(ARRAYS):  # as a collection made before m003 was
            conn.execute(reset.format(postings, sql.Identifier(column)))
        conn.execute("DELETE FROM hybrid_rag.migrations WHERE name = 'm003_no_array_statistics'")
        conn.commit()
        assert not _unsampled_columns(conn, f"{collection_name}__postings")

        assert migrate(conn) == ["m003_no_array_statistics"]
        assert migrate(conn) == []
        unsampled = _unsampled_columns(conn, f"{collection_name}__postings")

    assert unsampled == ARRAYS
