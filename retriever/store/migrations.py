"""Schema changes of the shared `hybrid_rag` schema, as ordered, recorded migrations.

Each migration is frozen SQL (`mNNN_name`): it never calls the code of the version it
migrates to, so a later change to that code cannot change what an old migration does.
They run in order, each once, inside one transaction under an advisory lock, so
concurrent processes never race.
"""

from __future__ import annotations

import psycopg

__all__ = ["MIGRATIONS", "migrate"]

_LOCK_KEY = 0x6879_6272  # "hybr": serialises migrations across processes

m001_initial = """
CREATE EXTENSION IF NOT EXISTS vector;
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

# Postings move from one row per (term, chunk) to blocks of ≤ 100 in BM25 impact order
# (k1 1.2, b 0.75), indexed by each block's best impact; deleted chunks become tombstones.
m002_posting_blocks = r"""
DO $migration$
DECLARE
    name text;
BEGIN
    FOR name IN SELECT c.name FROM hybrid_rag.collections c ORDER BY c.name LOOP
        EXECUTE format('DROP TABLE IF EXISTS hybrid_rag.%I, hybrid_rag.%I, hybrid_rag.%I',
                       name || '__postings', name || '__tombstones', name || '__terms');
        EXECUTE format('CREATE TABLE hybrid_rag.%I (key bigint PRIMARY KEY)', name || '__tombstones');
        EXECUTE format('CREATE TABLE hybrid_rag.%I (term text COLLATE "C", df integer NOT NULL, '
                       'CONSTRAINT %I PRIMARY KEY (term))', name || '__terms', name || '__terms_pkey');
        EXECUTE format('CREATE TABLE hybrid_rag.%I (term text COLLATE "C" NOT NULL, max_impact real NOT NULL, '
                       'chunk_keys bigint[] NOT NULL, tfs integer[] NOT NULL, lengths integer[] NOT NULL)',
                       name || '__postings');
        EXECUTE format($sql$
            WITH fresh AS (
                SELECT u.term, c.key, u.tf, u.length
                FROM hybrid_rag.%1$I c
                CROSS JOIN LATERAL (
                    SELECT lexeme AS term, cardinality(positions) AS tf,
                           (sum(cardinality(positions)) OVER ())::integer AS length
                    FROM unnest(c.tsv)
                ) u
            ), stats AS MATERIALIZED (
                SELECT greatest(coalesce((SELECT sum(tf) FROM fresh)::float8
                                         / nullif((SELECT count(*) FROM hybrid_rag.%1$I), 0), 1), 1) AS avgdl
            ), by_term AS (
                SELECT term, count(*) AS added,
                       array_agg(impact ORDER BY impact DESC, key) AS impacts,
                       array_agg(key ORDER BY impact DESC, key) AS keys,
                       array_agg(tf ORDER BY impact DESC, key) AS tfs,
                       array_agg(length ORDER BY impact DESC, key) AS lengths
                FROM (
                    SELECT f.*, f.tf * (1.2::float8 + 1)
                           / (f.tf + 1.2::float8 * (1 - 0.75::float8 + 0.75::float8 * f.length / s.avgdl)) AS impact
                    FROM fresh f CROSS JOIN stats s
                ) weighted
                GROUP BY term
            ), inserted AS (
                INSERT INTO hybrid_rag.%2$I (term, max_impact, chunk_keys, tfs, lengths)
                SELECT term, impacts[i], keys[i:i + 99], tfs[i:i + 99], lengths[i:i + 99]
                FROM by_term CROSS JOIN generate_series(1, cardinality(keys), 100) AS i
            ), df AS (
                INSERT INTO hybrid_rag.%3$I (term, df) SELECT term, added FROM by_term ORDER BY term
            )
            UPDATE hybrid_rag.collections
            SET chunk_count = (SELECT count(*) FROM hybrid_rag.%1$I),
                total_length = (SELECT coalesce(sum(tf), 0) FROM fresh)
            WHERE collections.name = %4$L
        $sql$, name, name || '__postings', name || '__terms', name);
        EXECUTE format('CREATE INDEX %I ON hybrid_rag.%I (term, max_impact DESC)',
                       name || '_postings_order', name || '__postings');
        EXECUTE format('CREATE INDEX %I ON hybrid_rag.%I (term) WHERE cardinality(chunk_keys) < 100',
                       name || '_postings_tails', name || '__postings');
        EXECUTE format('ANALYZE hybrid_rag.%I, hybrid_rag.%I', name || '__postings', name || '__terms');
    END LOOP;
END
$migration$
"""

# ANALYZE stops sampling the posting blocks' arrays, which no plan uses.
m003_no_array_statistics = r"""
DO $migration$
DECLARE
    name text;
BEGIN
    FOR name IN SELECT c.name FROM hybrid_rag.collections c ORDER BY c.name LOOP
        EXECUTE format('ALTER TABLE hybrid_rag.%I ALTER COLUMN chunk_keys SET STATISTICS 0, '
                       'ALTER COLUMN tfs SET STATISTICS 0, ALTER COLUMN lengths SET STATISTICS 0',
                       name || '__postings');
    END LOOP;
END
$migration$
"""

# The registry records each collection's language as chosen (its `text_config` is the
# configuration used: the language itself, or its accent-insensitive derivative). Every
# collection before this one was made in its `text_config`, accents kept.
m004_collection_language = """
ALTER TABLE hybrid_rag.collections
    ADD COLUMN language text,
    ADD COLUMN accent_insensitive boolean NOT NULL DEFAULT false;
UPDATE hybrid_rag.collections SET language = text_config::text;
ALTER TABLE hybrid_rag.collections ALTER COLUMN language SET NOT NULL
"""

# A collection's topics (`hybrid-rag topics`): k-means centroids with their labels; each
# chunk's topic number sits in its metadata under `metadata_key`. Dropping a collection
# drops its topics.
m005_topics = """
CREATE TABLE hybrid_rag.topics (
    collection    text NOT NULL REFERENCES hybrid_rag.collections (name) ON DELETE CASCADE,
    topic         integer NOT NULL,
    label         text NOT NULL,
    terms         text[] NOT NULL,
    size          integer NOT NULL,
    centroid      vector NOT NULL,
    metadata_key  text NOT NULL,
    PRIMARY KEY (collection, topic)
)
"""

# Each collection's vector index, chosen at creation (`retriever.store.vector_index`): its kind,
# the embedding column's storage and the build parameters. Every collection before this one
# has an HNSW index, m 16, ef_construction 64, over a `vector` column.
m006_vector_index = """
ALTER TABLE hybrid_rag.collections
    ADD COLUMN index_kind text NOT NULL DEFAULT 'hnsw' CHECK (index_kind IN ('hnsw', 'ivfflat')),
    ADD COLUMN storage text NOT NULL DEFAULT 'vector' CHECK (storage IN ('vector', 'halfvec')),
    ADD COLUMN hnsw_m integer NOT NULL DEFAULT 16,
    ADD COLUMN ef_construction integer NOT NULL DEFAULT 64,
    ADD COLUMN ivfflat_lists integer NOT NULL DEFAULT 100
"""

# A re-embed (`retriever.store.reembed`) records its target model while it runs; a vector
# search checks, first in its transaction, that the collection still holds the vectors its
# query was embedded for (SQLSTATE HR001 when a swap replaced them meanwhile).
m007_reembed = """
ALTER TABLE hybrid_rag.collections
    ADD COLUMN reembed_model text,
    ADD COLUMN reembed_dimensions integer,
    ADD COLUMN reembed_storage text;
CREATE FUNCTION hybrid_rag.expect_embeddings(collection text, model text, dimensions integer)
RETURNS boolean LANGUAGE plpgsql STABLE AS $function$
BEGIN
    IF NOT EXISTS (SELECT FROM hybrid_rag.collections c
                   WHERE c.name = $1 AND c.embedding_model = $2 AND c.dimensions = $3) THEN
        RAISE EXCEPTION 'the embeddings of collection % were replaced', $1 USING ERRCODE = 'HR001';
    END IF;
    RETURN true;
END
$function$
"""

# Whether a collection's tables are sharded over a Citus cluster (`retriever.store.citus`): set
# when it is created on a coordinator; a collection from before stays on the coordinator.
m008_distributed = """
ALTER TABLE hybrid_rag.collections ADD COLUMN distributed boolean NOT NULL DEFAULT false
"""

# Every collection's chunks, documents, tombstones and posting blocks carry an anchor: on Citus the
# distribution column (one value per shard, so the blocks sit beside their chunks), '' elsewhere.
# Each collection under its write lock: a posting rebuild running meanwhile swaps its blocks in first.
# (A table m010 has dropped since is passed over: run again, m009 adds only what is missing.)
m009_anchors = r"""
ALTER TABLE hybrid_rag.collections ADD COLUMN IF NOT EXISTS anchors text[];
DO $migration$
DECLARE
    name text;
    suffix text;
BEGIN
    FOR name IN SELECT c.name FROM hybrid_rag.collections c ORDER BY c.name LOOP
        PERFORM pg_advisory_xact_lock(hashtext('hybrid_rag.write:' || name));
        FOREACH suffix IN ARRAY ARRAY['', '__documents', '__tombstones', '__postings'] LOOP
            EXECUTE format('ALTER TABLE IF EXISTS hybrid_rag.%I '
                           'ADD COLUMN IF NOT EXISTS anchor text NOT NULL DEFAULT %L', name || suffix, '');
        END LOOP;
    END LOOP;
END
$migration$
"""

# A deleted chunk's postings leave their blocks with it (`retriever.store.writer`), which are
# marked `trimmed`, so tombstones go: every collection's blocks get the mark, the postings the
# tombstones still hid (of keys no live chunk holds) are taken out of their blocks (each keeps its
# order and bound, marked; one left empty goes), then the table is dropped. Set-based: one hash
# lookup per posting. Each collection under its write lock.
m010_no_tombstones = r"""
DO $migration$
DECLARE
    name text;
BEGIN
    PERFORM set_config('citus.multi_shard_modify_mode', 'sequential', true);  -- on Citus: DDL after the writes
    FOR name IN SELECT c.name FROM hybrid_rag.collections c ORDER BY c.name LOOP
        PERFORM pg_advisory_xact_lock(hashtext('hybrid_rag.write:' || name));
        EXECUTE format('ALTER TABLE hybrid_rag.%I ADD COLUMN IF NOT EXISTS trimmed boolean NOT NULL DEFAULT false',
                       name || '__postings');
        CONTINUE WHEN to_regclass(format('hybrid_rag.%I', name || '__tombstones')) IS NULL;
        EXECUTE format($sql$
            WITH gone AS (
                SELECT anchor, key FROM hybrid_rag.%1$I EXCEPT SELECT anchor, key FROM hybrid_rag.%3$I
            ), posted AS (
                SELECT DISTINCT p.anchor, p.term, p.chunk_keys[1] AS first
                FROM hybrid_rag.%2$I p CROSS JOIN unnest(p.chunk_keys) AS k(key)
                JOIN gone g ON g.anchor = p.anchor AND g.key = k.key
            ), hit AS (
                DELETE FROM hybrid_rag.%2$I p USING posted b
                WHERE p.anchor = b.anchor AND p.term = b.term AND p.chunk_keys[1] = b.first
                RETURNING p.anchor, p.term, p.max_impact, p.chunk_keys, p.tfs, p.lengths
            )
            INSERT INTO hybrid_rag.%2$I (anchor, term, max_impact, chunk_keys, tfs, lengths, trimmed)
            SELECT h.anchor, h.term, max(h.max_impact), array_agg(u.key ORDER BY u.i), array_agg(u.tf ORDER BY u.i),
                   array_agg(u.length ORDER BY u.i), true
            FROM hit h CROSS JOIN unnest(h.chunk_keys, h.tfs, h.lengths) WITH ORDINALITY AS u(key, tf, length, i)
            WHERE NOT EXISTS (SELECT FROM gone g WHERE g.anchor = h.anchor AND g.key = u.key)
            GROUP BY h.anchor, h.term, h.chunk_keys[1]
        $sql$, name || '__tombstones', name || '__postings', name);
        EXECUTE format('DROP TABLE hybrid_rag.%I', name || '__tombstones');
    END LOOP;
END
$migration$
"""

MIGRATIONS: tuple[tuple[str, str], ...] = (
    ("m001_initial", m001_initial),
    ("m002_posting_blocks", m002_posting_blocks),
    ("m003_no_array_statistics", m003_no_array_statistics),
    ("m004_collection_language", m004_collection_language),
    ("m005_topics", m005_topics),
    ("m006_vector_index", m006_vector_index),
    ("m007_reembed", m007_reembed),
    ("m008_distributed", m008_distributed),
    ("m009_anchors", m009_anchors),
    ("m010_no_tombstones", m010_no_tombstones),
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
        for name, statement in MIGRATIONS:
            if name in done:
                continue
            cur.execute(statement)
            cur.execute("INSERT INTO hybrid_rag.migrations (name) VALUES (%s)", (name,))
            applied.append(name)
    return applied
