"""Schema migrations run once each, and bring collections made by older versions up to date.

Specification: ANALYZE gathers statistics for the posting blocks' `term` and
`max_impact` (the search plans use them) but not for their arrays (no plan does, and
sampling them was most of ANALYZE's time); a collection made before that rule gets it
from migration m003, and migrating twice changes nothing. Migrations are frozen SQL: m002
lays out an older collection's posting blocks exactly as a full rebuild does today. The
registry records each collection's language; m004 gives an older collection the one its
text search configuration names, accents kept. m009 gives every collection's tables an
anchor ('' off Citus), and an older collection takes writes, deletes and searches after it.
m010 takes the postings of chunks an older version deleted (tombstones) out of their
blocks and drops the tombstones: the collection is then as if the new version had deleted them.
"""

from __future__ import annotations

from psycopg import sql
from tombstones import delete_as_before_m010

from ingest import ChunkingConfig, SourceDocument
from retriever import Engine
from retriever.connections import open_primary
from retriever.results import SearchParams
from retriever.store.collections import create_collection, get_collection
from retriever.store.migrations import migrate
from retriever.store.postings import refresh_postings

ARRAYS = {"chunk_keys", "tfs", "lengths"}
ANCHORED = ("", "__documents", "__tombstones", "__postings")  # a collection's tables with an anchor (before m010)
# An older collection's table of deleted chunks whose postings stayed in the blocks (m002 … m009)
_TOMBSTONES = "CREATE TABLE {} (anchor text NOT NULL DEFAULT '', key bigint PRIMARY KEY)"


def _sampled_columns(conn, table: str) -> set[str]:
    conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier("hybrid_rag", table)))
    rows = conn.execute(
        "SELECT attname FROM pg_stats WHERE schemaname = 'hybrid_rag' AND tablename = %s", (table,)
    ).fetchall()
    return {name for (name,) in rows}


def _unsampled_columns(conn, table: str) -> set[str]:
    # Columns only: PostgreSQL 15 reports a target of 0 for the system columns (ctid, xmin, …) as well.
    rows = conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND attstattarget = 0",
        (f"hybrid_rag.{table}",),
    ).fetchall()
    return {name for (name,) in rows}


def _ingest(settings, name: str, model) -> None:
    documents = [
        SourceDocument(document_id=f"d{i}", text=f"alpha beta gamma {i} delta", title=None, source="t", metadata={})
        for i in range(30)
    ]
    Engine(settings, model=model).ingest(name, documents, ChunkingConfig())


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


def _posting_state(conn, name: str) -> tuple[list, list, tuple]:
    blocks = conn.execute(
        sql.SQL(
            "SELECT term, max_impact, chunk_keys, tfs, lengths FROM {} ORDER BY term, max_impact DESC, chunk_keys"
        ).format(sql.Identifier("hybrid_rag", f"{name}__postings"))
    ).fetchall()
    terms = conn.execute(
        sql.SQL("SELECT term, df FROM {} ORDER BY term").format(sql.Identifier("hybrid_rag", f"{name}__terms"))
    ).fetchall()
    stats = conn.execute(
        "SELECT chunk_count, total_length FROM hybrid_rag.collections WHERE name = %s", (name,)
    ).fetchone()
    return blocks, terms, stats


def test_migration_m002_rebuilds_the_posting_blocks_of_an_older_collection(settings, collection_name, fake_model):
    _ingest(settings, collection_name, fake_model)
    with open_primary(settings) as conn:
        refresh_postings(conn, get_collection(conn, collection_name))  # the blocks as a full rebuild lays them out
        rebuilt = _posting_state(conn, collection_name)
        for suffix in ("postings", "terms"):  # as a collection made before the blocks was
            conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier("hybrid_rag", f"{collection_name}__{suffix}")))
        later = ("m002_posting_blocks", "m003_no_array_statistics", "m009_anchors", "m010_no_tombstones")
        conn.execute("DELETE FROM hybrid_rag.migrations WHERE name = ANY(%s)", (list(later),))

        assert migrate(conn) == list(later)
        migrated = _posting_state(conn, collection_name)
        indexes = {
            name
            for (name,) in conn.execute(
                "SELECT indexname FROM pg_indexes WHERE schemaname = 'hybrid_rag' AND tablename = %s",
                (f"{collection_name}__postings",),
            ).fetchall()
        }

    assert migrated == rebuilt
    assert indexes == {f"{collection_name}_postings_order", f"{collection_name}_postings_tails"}
    assert Engine(settings, model=fake_model).search(collection_name, "alpha delta", SearchParams(mode="text")).hits


def test_migration_m009_gives_an_older_collection_anchors_and_it_goes_on_working(settings, collection_name, fake_model):
    _ingest(settings, collection_name, fake_model)
    engine = Engine(settings, model=fake_model)
    tables = [sql.Identifier("hybrid_rag", collection_name + suffix) for suffix in ANCHORED]
    with open_primary(settings) as conn, conn.transaction():  # as the tables were before m009
        conn.execute(sql.SQL(_TOMBSTONES).format(tables[2]))
        for table in tables:
            conn.execute(sql.SQL("ALTER TABLE {} DROP COLUMN anchor CASCADE").format(table))
        order = sql.Identifier(f"{collection_name}_postings_order")  # went with the column it included
        conn.execute(sql.SQL("CREATE INDEX {} ON {} (term, max_impact DESC)").format(order, tables[-1]))
        conn.execute("ALTER TABLE hybrid_rag.collections DROP COLUMN anchors")
        conn.execute("DELETE FROM hybrid_rag.migrations WHERE name = 'm009_anchors'")
    with open_primary(settings) as conn:
        assert migrate(conn) == ["m009_anchors"]
        conn.execute("DELETE FROM hybrid_rag.migrations WHERE name = 'm009_anchors'")
        assert migrate(conn) == ["m009_anchors"]  # once more: it adds only what is missing
        defaults = conn.execute(
            "SELECT attrelid::regclass::text, pg_get_expr(adbin, adrelid) FROM pg_attribute JOIN pg_attrdef "
            "ON adrelid = attrelid AND adnum = attnum WHERE attname = 'anchor' AND attrelid = ANY(%s::regclass[])",
            ([table.as_string(conn) for table in tables],),
        ).fetchall()
    assert sorted(default for _, default in defaults) == ["''::text"] * len(tables)
    with open_primary(settings) as conn:  # and on to today's tables
        conn.execute("DELETE FROM hybrid_rag.migrations WHERE name = 'm010_no_tombstones'")
        assert migrate(conn) == ["m010_no_tombstones"]

    changed = SourceDocument(document_id="d3", text="epsilon zeta", title=None, source="t", metadata={})
    engine.ingest(collection_name, [changed], ChunkingConfig())
    engine.delete_document(collection_name, "d4")
    hits = engine.search(collection_name, "zeta", SearchParams(mode="text")).hits
    assert [hit.document_id for hit in hits] == ["d3"]
    assert len(engine.search(collection_name, "alpha delta", SearchParams(mode="text", k=50)).hits) == 28


def test_migration_m010_takes_the_tombstoned_postings_out_of_an_older_collections_blocks(
    settings, collection_name, names, fake_model, collection_state
):
    names.append(today := f"{collection_name}_today")
    for name in (collection_name, today):
        _ingest(settings, name, fake_model)
    gone = ["d3", "d4", "d17"]
    Engine(settings, model=fake_model).delete_documents(today, gone)
    with open_primary(settings) as conn:
        delete_as_before_m010(conn, collection_name, gone)
    assert collection_state(collection_name) != collection_state(today)  # the deleted chunks' postings

    with open_primary(settings) as conn:
        assert migrate(conn) == ["m010_no_tombstones"]
        left = conn.execute("SELECT to_regclass(%s)", (f"hybrid_rag.{collection_name}__tombstones",)).fetchone()[0]
        trimmed = conn.execute(
            sql.SQL("SELECT count(*) FILTER (WHERE trimmed) FROM {}").format(
                sql.Identifier("hybrid_rag", f"{collection_name}__postings")
            )
        ).fetchone()[0]

    assert left is None and trimmed > 0  # the blocks it took postings from, marked as a delete marks them
    assert collection_state(collection_name) == collection_state(today)
    engine = Engine(settings, model=fake_model)
    params = SearchParams(mode="text", k=50, exact_text=True)
    found = {name: engine.search(name, "alpha delta", params).hits for name in (collection_name, today)}
    assert [(h.id, h.score) for h in found[collection_name]] == [(h.id, h.score) for h in found[today]]
    assert len(found[today]) == 27


def test_migration_m004_records_the_language_of_an_older_collection(settings, collection_name, fake_model):
    with open_primary(settings) as conn:
        create_collection(
            conn, collection_name, embedding_model=fake_model.name, dimensions=fake_model.dimensions, language="german"
        )
        with conn.transaction():  # as the registry was before m004, which knew only `text_config`
            conn.execute("ALTER TABLE hybrid_rag.collections DROP COLUMN language, DROP COLUMN accent_insensitive")
            conn.execute("DELETE FROM hybrid_rag.migrations WHERE name = 'm004_collection_language'")

        assert migrate(conn) == ["m004_collection_language"]
        assert migrate(conn) == []
        migrated = get_collection(conn, collection_name)

    assert (migrated.language, migrated.accent_insensitive, migrated.text_config) == ("german", False, "german")
    assert Engine(settings, model=fake_model).collections()
