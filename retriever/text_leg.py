"""The BM25 leg of the search statement, over the posting blocks: on one node, or on every shard of a Citus cluster.

BM25 as `retriever.store.bm25` defines it, over the same lexemes `to_tsvector` produces;
`retriever.query` puts the leg after the vector leg (whose chunks it rescores) and before
the fusion. The leg yields `text_leg` rows: each chunk's anchor and key, its BM25 score, its
rank (from 1), its min-max normalised score (`norm`) and its score over the best (`scaled`).
"""

from __future__ import annotations

from psycopg import sql

from retriever.store.bm25 import idf_sql, query_weight_sql, term_weight_sql
from retriever.store.tables import Collection

__all__ = ["text_leg"]

# When the query's terms have few postings in all, the BM25 leg reads them all: exact.
# Otherwise it reads each term's best posting blocks (by impact; `blocks` × idf / 2 of
# them, so rarer terms deeper: all of a rare term, the head of a frequent one) and sums
# the exact BM25 contributions it finds. A term whose tail was cut leaves a bound: no
# unread posting of it adds more than its weight (idf × query-term factor) × the best
# impact of its first unread block.
# Work grows with terms × blocks, not with the number of matching chunks. With `blocks`
# NULL every posting is read: exact BM25, the benchmarks' reference.
_TEXT_TERMS = """
stats AS (
    SELECT chunk_count::float8 AS n, greatest(total_length::float8 / greatest(chunk_count, 1), 1) AS avgdl
    FROM hybrid_rag.collections WHERE name = %(collection)s
),
query_lexemes AS (  -- each lexeme of the query with its count there; "more like this" terms count once
    SELECT u.lexeme AS term, cardinality(u.positions) AS qtf
    FROM unnest(to_tsvector(%(text_config)s::regconfig, %(query)s)) u
    WHERE %(terms)s::text[] IS NULL
    UNION
    SELECT term, 1 FROM unnest(%(terms)s::text[]) AS term
),
query_terms AS (  -- weight: idf × the query-term factor; it scales every score and bound of the term
    SELECT term, weight, avgdl,
           CASE WHEN sum(df) OVER () > %(exact_up_to)s
                THEN ceil(%(blocks)s * greatest(idf, 1) / 2)::integer END AS depth
    FROM (
        SELECT t.term, t.df, i.idf, i.idf * {query_weight} AS weight, s.avgdl
        FROM query_lexemes l
        JOIN {terms} t ON t.term = l.term
        CROSS JOIN stats s
        CROSS JOIN LATERAL (SELECT {idf} AS idf) i
        WHERE t.df > 0
    ) weighted
)
"""

# One node reads each term's best blocks of the whole collection.
_NODE_READ = """
term_blocks AS (  -- one block more than is read, to tell whether a term's tail was cut
    SELECT q.term, q.weight, q.avgdl, q.depth, b.*,
           coalesce(max(q.weight * b.max_impact) FILTER (WHERE b.nth > q.depth) OVER (PARTITION BY q.term), 0) AS bound
    FROM query_terms q
    CROSS JOIN LATERAL (
        SELECT p.chunk_keys, p.tfs, p.lengths, p.max_impact, row_number() OVER (ORDER BY p.max_impact DESC) AS nth
        FROM {postings} p
        WHERE p.term = q.term
        ORDER BY p.max_impact DESC
        LIMIT q.depth + 1
    ) b
),
cut_terms AS (
    SELECT coalesce(sum(bound), 0) AS bound, array_agg(term) FILTER (WHERE bound > 0) AS terms
    FROM term_blocks WHERE nth = 1
),
text_read AS (
    SELECT ''::text AS anchor, p.key, max(p.length) AS length,
           sum({read_score}) AS partial,
           cut.bound - sum(p.bound) AS missing  -- bounds of the cut terms not found
    FROM (  -- unnest in the select list: the arrays in step, no tuplestore per block
        SELECT b.weight, b.avgdl, b.bound,
               unnest(b.chunk_keys) AS key, unnest(b.tfs) AS tf, unnest(b.lengths) AS length
        FROM term_blocks b WHERE b.nth <= coalesce(b.depth, b.nth)
    ) p
    CROSS JOIN cut_terms cut  -- one row (not a subquery here: Citus pushes no subquery above a GROUP BY)
    {text_join}
    WHERE {text_filter}
    GROUP BY p.key, cut.bound
)"""
# The vector leg's chunks the read missed that hold a cut term
_NODE_RESCORES = """(SELECT terms FROM cut_terms) IS NOT NULL
      AND length(ts_delete(c.tsv, (SELECT terms FROM cut_terms))) < length(c.tsv)"""

# On a Citus cluster each shard reads its own blocks (`retriever.store.citus`), with the
# collection's idf and average length, to one node's depth per term: its terms listed from
# its block index (an index entry per block of the term on the shard), then each term's best
# blocks (Citus pushes that per-term LIMIT down below a sharded relation, not below the
# query's terms alone); the next block's impact is the shard's bound for the term. Each
# shard passes on its best `candidates` partial scores and its `rescore` most promising
# unsure chunks: the collection's best of both are among them, so the coordinator's
# threshold and rescoring below are what one node would compute from these reads, and exact
# BM25 ranks and scores as on one node. A bounded read reads up to `depth` blocks per term
# on every shard: deeper in all than one node's, and not the same.
_SHARD_READ = """
text_read AS (
    SELECT anchor, key, length, partial, missing
    FROM (
        SELECT r.*, row_number() OVER (PARTITION BY anchor, unsure ORDER BY partial + missing DESC, key) AS by_bound
        FROM (
            SELECT r.*, missing > 0 AND partial + missing >= tau AS unsure
            FROM (
                SELECT r.*,
                       coalesce(min(partial) FILTER (WHERE by_partial <= {candidates}) OVER (PARTITION BY anchor), 0)
                         AS tau
                FROM (
                    SELECT r.*, row_number() OVER (PARTITION BY anchor ORDER BY partial DESC, key) AS by_partial
                    FROM (
                        SELECT p.anchor, p.key, max(p.length) AS length, sum({read_score}) AS partial,
                               p.cut_bound - sum(p.bound) AS missing  -- bounds of the shard's cut terms not found
                        FROM (  -- the blocks read, unnested in step
                            SELECT b.anchor, b.weight, b.avgdl, b.bound, b.cut_bound,
                                   unnest(b.chunk_keys) AS key, unnest(b.tfs) AS tf, unnest(b.lengths) AS length
                            FROM (
                                SELECT b.*, sum(b.bound) FILTER (WHERE b.nth = 1) OVER (PARTITION BY b.anchor)
                                              AS cut_bound
                                FROM (
                                    SELECT b.*,
                                           coalesce(max(b.weight * b.max_impact) FILTER (WHERE b.nth > b.depth)
                                                    OVER (PARTITION BY b.anchor, b.term), 0) AS bound
                                    FROM (
                                        SELECT s.term, s.weight, s.avgdl, s.depth, b.*
                                        FROM (
                                            SELECT p.anchor, q.term, q.weight, q.avgdl, q.depth
                                            FROM query_terms q JOIN {postings} p ON p.term = q.term
                                            GROUP BY p.anchor, q.term, q.weight, q.avgdl, q.depth
                                        ) s
                                        CROSS JOIN LATERAL (  -- one block more than is read: was the tail cut?
                                            SELECT p.anchor, p.chunk_keys, p.tfs, p.lengths, p.max_impact,
                                                   row_number() OVER (PARTITION BY p.anchor ORDER BY p.max_impact DESC)
                                                     AS nth
                                            FROM {postings} p
                                            WHERE p.anchor = s.anchor AND p.term = s.term
                                            ORDER BY p.max_impact DESC
                                            LIMIT s.depth + 1
                                        ) b
                                    ) b
                                ) b
                            ) b
                            WHERE b.nth <= coalesce(b.depth, b.nth)
                        ) p
                        {text_join}
                        WHERE {text_filter}
                        GROUP BY p.anchor, p.key, p.cut_bound
                    ) r
                ) r
            ) r
        ) r
    ) r
    WHERE partial >= tau OR (unsure AND by_bound <= {rescore})
)"""
# The vector leg's chunks no shard passed on, when a term's tail may have been cut (each shard
# knows its own cut terms; the coordinator rescores them all, at most `candidates` chunks)
_SHARD_RESCORES = "EXISTS (SELECT FROM query_terms WHERE depth IS NOT NULL)"

# Then, on one node as on a cluster's coordinator: the chunks that lack a cut term's
# contribution and could still reach the top `candidates` with it are rescored exactly from
# their own `tsv`, best bound first, at most `rescore` of them; so are, in a hybrid, the
# vector leg's chunks the read missed (`{rescores}` says which), since fusion weighs exactly
# their text ranks.
_TEXT_SCORE = """
text_threshold AS (  -- at least `candidates` chunks score this much: no other can enter the leg
    SELECT coalesce(min(partial), 0) AS tau
    FROM (SELECT partial FROM text_read ORDER BY partial DESC LIMIT {candidates}) top
),
text_unsure AS (
    SELECT anchor, key, length FROM (
        SELECT anchor, key, length FROM text_read
        WHERE missing > 0 AND partial + missing >= (SELECT tau FROM text_threshold)
        ORDER BY partial + missing DESC, key
        LIMIT {rescore}
    ) bounded
    UNION ALL
    SELECT c.anchor, c.key, l.length
    FROM vector_leg v
    JOIN {chunks} c ON {vector_chunk}
    CROSS JOIN LATERAL (SELECT sum(cardinality(positions)) AS length FROM unnest(c.tsv)) l
    WHERE (v.anchor, v.key) NOT IN (SELECT anchor, key FROM text_read) AND {rescores}
),
text_rescored AS (
    SELECT r.anchor, r.key, sum({rescore_score}) AS score
    FROM text_unsure r
    JOIN {chunks} c ON {unsure_chunk}
    -- the query's lexemes only: marked with weight A (`to_tsvector` writes D), then filtered
    CROSS JOIN LATERAL unnest(ts_filter(setweight(c.tsv, 'A', (SELECT array_agg(term) FROM query_terms)), '{{a}}')) AS u
    JOIN query_terms q ON q.term = u.lexeme
    GROUP BY r.anchor, r.key
),
text_leg AS (
    SELECT anchor, key, score, row_number() OVER (ORDER BY score DESC, key) AS rank,
           coalesce((score - min(score) OVER ()) / nullif(max(score) OVER () - min(score) OVER (), 0), 1) AS norm,
           CASE WHEN max(score) OVER () > 0 THEN score / max(score) OVER () ELSE 1 END AS scaled
    FROM (
        SELECT anchor, key, max(score) AS score  -- an exact score is never below the partial one
        FROM (
            SELECT anchor, key, partial AS score FROM text_read WHERE partial >= (SELECT tau FROM text_threshold)
            UNION ALL
            SELECT anchor, key, score FROM text_rescored
        ) found
        GROUP BY anchor, key
        ORDER BY score DESC, key
        LIMIT {candidates}
    ) scored
)"""


def text_leg(
    collection: Collection,
    *,
    candidates: sql.Composable,
    rescore: sql.Composable,
    filter_sql: sql.Composable | None,
) -> sql.Composed:
    """The CTEs of the BM25 leg (`stats` … `text_leg`) for `collection`: on a sharded one, its read per shard.

    `candidates` and `rescore` are row counts (literals); `filter_sql` a condition on the
    chunk `c` (None: no filter, and no document left out). The statement's
    parameters: `collection`, `text_config`, `query`, `terms`, `blocks`, `exact_up_to`,
    `exclude_document`, and the filter's.
    """
    chunks = collection.table()
    terms = sql.SQL(_TEXT_TERMS).format(
        terms=collection.table("terms"), idf=idf_sql("s.n", "t.df"), query_weight=query_weight_sql("l.qtf")
    )
    read = sql.SQL(_SHARD_READ if collection.sharded else _NODE_READ).format(
        postings=collection.table("postings"),
        candidates=candidates,
        rescore=rescore,
        read_score=term_weight_sql("p.tf", "p.length", "p.avgdl", idf="p.weight"),
        text_join=sql.SQL("")
        if filter_sql is None
        else sql.SQL("JOIN {} c ON {}").format(chunks, collection.chunk_join("p")),
        text_filter=sql.SQL("true")
        if filter_sql is None
        else sql.SQL("{} AND c.document_id IS DISTINCT FROM %(exclude_document)s::text").format(filter_sql),
    )
    score = sql.SQL(_TEXT_SCORE).format(
        chunks=chunks,
        candidates=candidates,
        rescore=rescore,
        rescore_score=term_weight_sql("cardinality(u.positions)", "r.length", "q.avgdl", idf="q.weight"),
        vector_chunk=collection.chunk_join("v"),
        unsure_chunk=collection.chunk_join("r"),
        rescores=sql.SQL(_SHARD_RESCORES if collection.sharded else _NODE_RESCORES),
    )
    return terms + sql.SQL(",") + read + sql.SQL(",") + score
