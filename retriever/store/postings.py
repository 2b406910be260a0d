"""BM25 posting blocks: per term and anchor, blocks of up to POSTINGS_BLOCK postings in impact order.

`docs__postings` holds blocks of (chunk key, tf, chunk length), each ordered by BM25 impact
(`bm25.term_weight`) and indexed by its best impact: the text leg reads a term's best blocks
first and can stop early. A block's chunks share its anchor (on Citus their shard:
`retriever.store.citus`). `docs__terms` keeps document frequencies. New postings are
appended, merged with their terms' partial blocks; a deleted chunk's leave their blocks at once
(`retriever.store.writer`), which keep their order and bound. A rebuild cuts every block anew
beside the live ones and swaps them in.
"""

from __future__ import annotations

import time

import psycopg
from psycopg import sql

from retriever.errors import DatabaseUnavailable
from retriever.store.bm25 import term_weight_sql
from retriever.store.citus import distribute, replicate
from retriever.store.plans import Execute
from retriever.store.tables import SCHEMA, WRITE_LOCK, Collection, statements

__all__ = [
    "MERGED_BELOW",
    "POSTINGS_BLOCK",
    "add_postings",
    "append_op",
    "begin_bulk",
    "bulk_pending",
    "create_postings",
    "load_finished_op",
    "rebuild_postings",
    "refresh_postings",
    "skip_array_statistics",
    "swap_postings",
]

POSTINGS_BLOCK = 100  # postings per block: a block row stays under 2 kB, inline and uncompressed
# A block deletes took postings from (`trimmed`) is merged with its term's next new postings only
# once under this many: merging every block a delete left a few postings short would sort and
# rewrite all a document touched (`maintain` cuts trimmed blocks anew once there are many).
MERGED_BELOW = POSTINGS_BLOCK // 2
# The blocks an append merges with the new postings of their anchor and term: the partial block
# each cut leaves, and a trimmed one under MERGED_BELOW
_MERGEABLE = "cardinality(chunk_keys) < {block} AND (NOT trimmed OR cardinality(chunk_keys) < {merged_below})"

_CREATE = """
CREATE TABLE {terms} (
    term  text COLLATE "C",
    df    integer NOT NULL,
    CONSTRAINT {terms_key} PRIMARY KEY (term)
);
CREATE TABLE {postings} (
    anchor      text NOT NULL DEFAULT '',   -- the shard of its chunks on Citus (`retriever.store.citus`)
    term        text COLLATE "C" NOT NULL,  -- equality only: byte order sorts and builds faster
    max_impact  real NOT NULL,              -- the block's best BM25 term weight (without idf)
    chunk_keys  bigint[] NOT NULL,          -- ≤ POSTINGS_BLOCK postings, best impact first
    tfs         integer[] NOT NULL,
    lengths     integer[] NOT NULL,         -- chunk lengths in lexemes
    trimmed     boolean NOT NULL DEFAULT false  -- deletes took postings from it (`retriever.store.writer`)
)
"""

# (with the anchor: on Citus, a shard lists its own terms from the index alone)
_INDEX = """
CREATE INDEX {order_index} ON {postings} (term, max_impact DESC) INCLUDE (anchor);
CREATE INDEX {tails_index} ON {postings} (term) WHERE {mergeable}
"""

# No query's plan depends on the block arrays' contents, and sampling them is most of ANALYZE's time.
_NO_ARRAY_STATISTICS = (
    "ALTER TABLE {postings} ALTER COLUMN chunk_keys SET STATISTICS 0, "
    "ALTER COLUMN tfs SET STATISTICS 0, ALTER COLUMN lengths SET STATISTICS 0"
)

# The postings of some chunks (`{selection}`), cut into blocks per anchor and term: up to
# POSTINGS_BLOCK postings in impact order (the term weight at the current average length); its
# terms' mergeable blocks (`_MERGEABLE`) are merged with the new postings. One sort orders
# every term's postings by impact; the blocks are slices of that order. Also adds document
# frequencies; returns Σ lengths of the selected chunks.
_APPEND = """
WITH fresh AS (
    SELECT c.anchor, u.term, c.key, u.tf, u.length
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
    USING (SELECT DISTINCT anchor, term FROM fresh) f
    WHERE %(merge)s AND p.anchor = f.anchor AND p.term = f.term AND {mergeable}
    RETURNING p.anchor, p.term, p.chunk_keys, p.tfs, p.lengths
), merged AS (
    SELECT anchor, term, key, tf, length, true AS fresh FROM fresh
    UNION ALL
    SELECT t.anchor, t.term, u.key, u.tf, u.length, false
    FROM tails t CROSS JOIN unnest(t.chunk_keys, t.tfs, t.lengths) AS u(key, tf, length)
), by_term AS (  -- per anchor (shard) and term
    SELECT anchor, term, count(*) FILTER (WHERE fresh) AS added,
           array_agg(impact ORDER BY impact DESC, key) AS impacts,
           array_agg(key ORDER BY impact DESC, key) AS keys,
           array_agg(tf ORDER BY impact DESC, key) AS tfs,
           array_agg(length ORDER BY impact DESC, key) AS lengths
    FROM (
        SELECT m.*, {impact} AS impact
        FROM merged m CROSS JOIN stats s
    ) weighted
    GROUP BY anchor, term
), inserted AS (
    INSERT INTO {postings} (anchor, term, max_impact, chunk_keys, tfs, lengths)
    SELECT anchor, term, impacts[i], keys[i:i + {block} - 1], tfs[i:i + {block} - 1], lengths[i:i + {block} - 1]
    FROM by_term CROSS JOIN generate_series(1, cardinality(keys), {block}) AS i
), df AS (
    INSERT INTO {terms} (term, df)
    SELECT term, sum(added) FROM by_term GROUP BY term HAVING sum(added) > 0 ORDER BY term
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

_REBUILT = "__next"  # suffix of the terms and blocks a rebuild fills beside the live ones
_TABLES = ("terms", "postings")  # the order searches lock them in

# The swap gives way (then tries again) rather than queue searches behind a long reader.
_SWAP_WAIT = "1s"
_SWAP_ATTEMPTS = 30


def _names(collection: Collection, suffix: str = "") -> dict[str, str]:
    """Tables (`terms`, `postings`) and indexes of a collection's posting blocks; `suffix` names a set
    built beside the live one (it holds `__`, which collection names cannot, so no other name collides)."""
    name = collection.name
    return {
        "terms": f"{name}__terms{suffix}",
        "postings": f"{name}__postings{suffix}",
        "terms_key": f"{name}__terms{suffix}_pkey",
        "order_index": f"{name}_postings_order{suffix}",
        "tails_index": f"{name}_postings_tails{suffix}",
    }


def skip_array_statistics(cur: psycopg.Cursor, collection: Collection, *, suffix: str = "") -> None:
    """Keep ANALYZE off the posting blocks' arrays (a quarter of the time; no plan uses them)."""
    postings = sql.Identifier(SCHEMA, _names(collection, suffix)["postings"])
    cur.execute(sql.SQL(_NO_ARRAY_STATISTICS).format(postings=postings))


def create_postings(cur: psycopg.Cursor, collection: Collection, *, suffix: str = "", indexed: bool = True) -> None:
    """Create empty terms and posting-block tables (`suffix`: a set built beside the live one); on Citus the
    terms a reference table, the blocks sharded beside their chunks (`retriever.store.citus`)."""
    names = _names(collection, suffix)
    terms, postings = sql.Identifier(SCHEMA, names["terms"]), sql.Identifier(SCHEMA, names["postings"])
    for statement in statements(_CREATE):
        cur.execute(statement.format(terms=terms, postings=postings, terms_key=sql.Identifier(names["terms_key"])))
    skip_array_statistics(cur, collection, suffix=suffix)  # before Citus, which cannot alter it after
    if collection.sharded:
        replicate(cur, terms)
        distribute(cur, postings, beside=collection.table())
    elif collection.distributed:  # sharded by document before anchors (m009): its blocks on every node
        replicate(cur, terms, postings)
    if indexed:
        _index(cur, collection, suffix=suffix)


def _mergeable() -> sql.Composed:
    return sql.SQL(_MERGEABLE).format(block=sql.Literal(POSTINGS_BLOCK), merged_below=sql.Literal(MERGED_BELOW))


def _index(cur: psycopg.Cursor, collection: Collection, *, suffix: str = "") -> None:
    names = _names(collection, suffix)
    for statement in statements(_INDEX):
        cur.execute(
            statement.format(
                postings=sql.Identifier(SCHEMA, names["postings"]),
                order_index=sql.Identifier(names["order_index"]),
                tails_index=sql.Identifier(names["tails_index"]),
                mergeable=_mergeable(),
            )
        )


def append_op(
    collection: Collection, selection: sql.Composable, *, merge: bool = True, suffix: str = "", **values: object
) -> Execute:
    """The statement that adds the postings of the chunks `selection` picks (a condition on `c`); its one row
    holds Σ their lengths."""
    statement = sql.SQL(_APPEND).format(
        chunks=collection.table(),
        postings=collection.table(f"postings{suffix}"),
        terms=collection.table(f"terms{suffix}"),
        selection=selection,
        block=sql.Literal(POSTINGS_BLOCK),
        mergeable=_mergeable(),
        impact=term_weight_sql("m.tf", "m.length", "s.avgdl"),
    )
    return Execute(statement, {"collection": collection.name, "merge": merge, **values})


def add_postings(cur: psycopg.Cursor, collection: Collection, selection: sql.Composable, **options: object) -> int:
    """Add the postings of the chunks `selection` picks (`append_op`'s options); returns Σ their lengths."""
    op = append_op(collection, selection, **options)  # type: ignore[arg-type]
    cur.execute(op.statement, op.params)
    return int(cur.fetchone()[0])  # type: ignore[index]


def swap_postings(cur: psycopg.Cursor, collection: Collection, suffix: str) -> None:
    """Put the terms and blocks built under `suffix` in place of the live ones.

    Searches are locked out from here until the caller's transaction ends. Raises
    `DatabaseUnavailable` when other transactions kept the tables for all the attempts.
    """
    live, built = _names(collection), _names(collection, suffix)
    tables = [collection.table(kind) for kind in _TABLES]
    lock = sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(sql.SQL(", ").join(tables))  # searches' order
    renames = [sql.SQL("DROP TABLE IF EXISTS {}").format(sql.SQL(", ").join(tables))]
    renames += [
        sql.SQL("ALTER {} {} RENAME TO {}").format(
            sql.SQL("TABLE" if kind in _TABLES else "INDEX"), sql.Identifier(SCHEMA, built[kind]), sql.Identifier(new)
        )
        for kind, new in live.items()
    ]
    for attempt in range(1, _SWAP_ATTEMPTS + 1):
        try:
            with cur.connection.transaction():
                cur.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(_SWAP_WAIT)))
                cur.execute(lock)
                for statement in renames:
                    cur.execute(statement)
            return
        except psycopg.errors.LockNotAvailable:
            if attempt == _SWAP_ATTEMPTS:
                raise DatabaseUnavailable(
                    f"the rebuilt posting blocks of {collection.name!r} could not be swapped in: other "
                    f"transactions kept reading them for {_SWAP_ATTEMPTS} attempts; run `hybrid-rag maintain` later"
                ) from None
            time.sleep(1.0)  # let the searches queued behind the attempt run


def begin_bulk(conn: psycopg.Connection, collection: Collection) -> bool:
    """Before loading an empty collection: drop the indexes that are cheaper to build afterwards.

    The missing postings order index marks the load as unfinished (see `bulk_pending`).
    Returns False, dropping nothing, when another writer finished loading the collection
    since the caller looked: then write as any ingest does.
    """
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(WRITE_LOCK, {"collection": collection.name})
        cur.execute("SELECT chunk_count FROM hybrid_rag.collections WHERE name = %(name)s", {"name": collection.name})
        if cur.fetchone()[0] > 0:  # type: ignore[index]
            return False
        for index in (collection.vector_index.suffix, "tsv_gin", "postings_order"):
            cur.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(collection.qualified_index(index)))
    return True


def load_finished_op(collection: Collection) -> Execute:
    """The statement whose one row says whether the collection's posting blocks are indexed: no bulk load pending."""
    return Execute("SELECT to_regclass(%s) IS NOT NULL", (f"{SCHEMA}.{_names(collection)['order_index']}",))


def bulk_pending(conn: psycopg.Connection, collection: Collection) -> bool:
    """True when a bulk load began and did not finish (its postings order index is missing)."""
    op = load_finished_op(collection)
    return not conn.execute(op.statement, op.params).fetchone()[0]  # type: ignore[index]


def rebuild_postings(cur: psycopg.Cursor, collection: Collection) -> None:
    """Rebuild every posting block, document frequency and BM25 statistic from the chunks' `tsv`.

    The new blocks come out in impact order (per anchor), none trimmed, built beside the
    live ones, which searches go on reading; only the final swap locks searches out, until the
    caller's transaction commits. Writers of the collection wait on its write lock throughout.
    """
    cur.execute(WRITE_LOCK, {"collection": collection.name})
    create_postings(cur, collection, suffix=_REBUILT, indexed=False)
    cur.execute(_RESET_STATS, {"collection": collection.name})  # others see the old ones until commit
    length = add_postings(cur, collection, sql.SQL("true"), merge=False, suffix=_REBUILT)
    values = {"length": length, "collection": collection.name}
    cur.execute(sql.SQL(_SET_STATS).format(chunks=collection.table()), values)
    _index(cur, collection, suffix=_REBUILT)
    if not collection.distributed:  # Citus refuses ANALYZE after the writes: `refresh_postings` runs it after commit
        _analyze(cur, collection, _REBUILT)  # statistics stay with the tables: plans are right from the swap on
    swap_postings(cur, collection, _REBUILT)


def _analyze(cur: psycopg.Cursor, collection: Collection, suffix: str = "") -> None:
    for kind in _TABLES:
        cur.execute(sql.SQL("ANALYZE {}").format(collection.table(kind + suffix)))


def refresh_postings(conn: psycopg.Connection, collection: Collection) -> None:
    """Rebuild the posting blocks in their own transaction, with the memory for one sort of them all.

    Finishes a bulk load (and one that crashed: the next ingest runs it again), and cuts the
    blocks deletes trimmed anew (`retriever.store.maintenance`).
    """
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SET LOCAL maintenance_work_mem = '256MB'")
        cur.execute("SET LOCAL work_mem = '1GB'")  # one sort of every posting
        cur.execute("SET LOCAL statement_timeout = 0")  # minutes at a million chunks, whoever asked
        rebuild_postings(cur, collection)
    if collection.distributed:
        with conn.cursor() as cur:
            _analyze(cur, collection)
