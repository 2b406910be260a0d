"""The search: ONE SQL statement that ranks by vector distance and by BM25, fused (RRF or linear); and "more like this".

Statements only: `retriever.search` runs them, `retriever.engine` decides when.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from psycopg import sql

from retriever.filters import compile_filter
from retriever.fusion import FUSION_SQL
from retriever.results import SearchParams
from retriever.store.bm25 import idf_sql, query_weight_sql, term_weight_sql
from retriever.store.collections import SEARCH_REGISTRY as REGISTRY
from retriever.store.tables import Collection

__all__ = [
    "LIKE_TERMS",
    "REGISTRY",
    "TEXT_BLOCKS",
    "TEXT_EXACT_UP_TO",
    "TEXT_RESCORE",
    "build_search",
    "like_statement",
]

# The BM25 leg's bounds (`hybrid-rag bench scale` measures what they cost against exact BM25):
TEXT_BLOCKS = 10  # posting blocks read per query term, best impact first (10 × 100 postings)
TEXT_RESCORE = 6  # at most this many × candidates chunks are rescored exactly from their `tsv`
TEXT_EXACT_UP_TO = 20_000  # a query whose terms have this many postings in all reads them all: exact, and cheaper
LIKE_TERMS = 24  # "more like this": the document's most distinctive lexemes the text leg searches for

# The statement reads top to bottom: the HNSW leg, corpus statistics, the query's terms
# with their IDF, the BM25 leg over the posting blocks, then fusion and the final join.
# BM25 as `retriever.store.bm25` defines it, over the same lexemes `to_tsvector` produces.
#
# When the query's terms have few postings in all, the BM25 leg reads them all: exact.
# Otherwise it reads each term's best posting blocks (by impact; `blocks` × idf / 2 of
# them, so rarer terms deeper: all of a rare term, the head of a frequent one) and sums
# the exact BM25 contributions it finds. A term whose tail was cut leaves a bound: no
# unread posting of it adds more than its weight (idf × query-term factor) × the best
# impact of its first unread block.
# Chunks that lack a cut term's contribution and could still reach the top `candidates`
# with it are rescored exactly from their own `tsv`, best bound first, at most `rescore`
# of them; so are, in a hybrid, the vector leg's chunks that the read missed but that
# hold a cut term, since fusion weighs exactly their text ranks. Work grows with terms ×
# blocks, not with the number of matching chunks. With `blocks` NULL every posting is
# read: exact BM25, the benchmarks' reference.
_TEXT_LEG = """
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
),
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
    SELECT r.* FROM (
        SELECT p.key, max(p.length) AS length,
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
    ) r
    -- deleted chunks' postings, dropped once per chunk (below the GROUP BY, the planner
    -- would expect one row and sort rather than hash)
    WHERE NOT EXISTS (SELECT FROM {tombstones} d WHERE d.key = r.key)
),
text_threshold AS (  -- at least `candidates` chunks score this much: no other can enter the leg
    SELECT coalesce(min(partial), 0) AS tau
    FROM (SELECT partial FROM text_read ORDER BY partial DESC LIMIT {candidates}) top
),
text_unsure AS (
    SELECT key, length FROM (
        SELECT key, length FROM text_read
        WHERE missing > 0 AND partial + missing >= (SELECT tau FROM text_threshold)
        ORDER BY partial + missing DESC
        LIMIT {rescore}
    ) bounded
    UNION ALL
    SELECT c.key, l.length
    FROM vector_leg v
    JOIN {chunks} c ON c.key = v.key
    CROSS JOIN LATERAL (SELECT sum(cardinality(positions)) AS length FROM unnest(c.tsv)) l
    WHERE (SELECT terms FROM cut_terms) IS NOT NULL
      AND v.key NOT IN (SELECT key FROM text_read)
      AND length(ts_delete(c.tsv, (SELECT terms FROM cut_terms))) < length(c.tsv)  -- holds a cut term
),
text_rescored AS (
    SELECT r.key, sum({rescore_score}) AS score
    FROM text_unsure r
    JOIN {chunks} c ON c.key = r.key
    -- the query's lexemes only: marked with weight A (`to_tsvector` writes D), then filtered
    CROSS JOIN LATERAL unnest(ts_filter(setweight(c.tsv, 'A', (SELECT array_agg(term) FROM query_terms)), '{{a}}')) AS u
    JOIN query_terms q ON q.term = u.lexeme
    CROSS JOIN stats s
    GROUP BY r.key
),
text_leg AS (
    SELECT key, row_number() OVER (ORDER BY score DESC, key) AS rank,
           coalesce((score - min(score) OVER ()) / nullif(max(score) OVER () - min(score) OVER (), 0), 1) AS norm,
           CASE WHEN max(score) OVER () > 0 THEN score / max(score) OVER () ELSE 1 END AS scaled
    FROM (
        SELECT key, max(score) AS score  -- an exact score is never below the partial one
        FROM (
            SELECT key, partial AS score FROM text_read WHERE partial >= (SELECT tau FROM text_threshold)
            UNION ALL
            SELECT key, score FROM text_rescored
        ) found
        GROUP BY key
        ORDER BY score DESC, key
        LIMIT {candidates}
    ) scored
)"""

_VECTOR_LEG = """
vector_leg AS (
    SELECT key, row_number() OVER (ORDER BY distance, key) AS rank,
           coalesce((max(distance) OVER () - distance) / nullif(max(distance) OVER () - min(distance) OVER (), 0), 1)
             AS norm
    FROM (
        SELECT c.key, c.embedding <=> %(embedding)s::{cast} AS distance  -- the column's type: its index serves
        FROM {chunks} c
        WHERE {filter} AND c.document_id IS DISTINCT FROM %(exclude_document)s::text
        ORDER BY distance
        LIMIT {candidates}
    ) nearest
)"""

_EMPTY_LEG = """
{name} AS (
    SELECT NULL::bigint AS key, NULL::bigint AS rank, NULL::float8 AS norm, NULL::float8 AS scaled WHERE false
)"""

# Each leg carries its chunks' ranks (from 1) and min-max normalised scores (`norm`), the
# text leg also its scores over its best (`scaled`); `retriever.fusion.FUSION_SQL` combines
# ranks or normalised scores, weighted, as its fusion method says.
_FUSE = """
fused AS (
    SELECT coalesce(v.key, t.key) AS key,
           {score} AS score,
           v.rank AS vector_rank,
           t.rank AS text_rank
    FROM vector_leg v FULL OUTER JOIN text_leg t ON v.key = t.key
),
ranked AS (
    SELECT c.id, c.document_id, c.content, c.metadata, f.score, f.vector_rank, f.text_rank,
           row_number() OVER (PARTITION BY c.document_id ORDER BY f.score DESC, c.id COLLATE "C") AS nth_in_document
    FROM fused f JOIN {chunks} c ON c.key = f.key
)
SELECT id, document_id, content, metadata, score, vector_rank, text_rank
FROM ranked
WHERE nth_in_document = 1 OR NOT %(collapse)s
ORDER BY score DESC, id COLLATE "C"
LIMIT {k}"""


def build_search(
    collection: Collection,
    params: SearchParams,
    *,
    query: str,
    embedding: np.ndarray | None,
    terms: list[str] | None = None,
    exclude_document: str | None = None,
) -> tuple[sql.Composed, dict[str, Any]]:
    """The search statement and its parameters, for the legs the mode needs.

    `terms` (lexemes) replace the query's own for the text leg, and `exclude_document`
    leaves one document out: together they make "more like this document" searches.
    """
    filter_sql, filter_params = compile_filter(params.filter, sql.Identifier("c"))
    chunks = collection.table()
    # row counts are literals, not parameters: a cached generic plan then still sees a LIMIT
    # of 100 and keeps the HNSW and key index scans
    candidates = sql.Literal(params.candidates)
    legs = []  # the vector leg first: the text leg rescores its chunks
    if params.mode in ("hybrid", "vector"):
        if embedding is None:
            raise ValueError("vector and hybrid searches need the query embedding")
        storage = sql.SQL(collection.vector_index.storage)  # `vector` or `halfvec`: the query vector cast to it
        legs.append(sql.SQL(_VECTOR_LEG).format(chunks=chunks, filter=filter_sql, candidates=candidates, cast=storage))
    else:
        legs.append(sql.SQL(_EMPTY_LEG).format(name=sql.Identifier("vector_leg")))
    if params.mode in ("hybrid", "text"):
        filtered = bool(params.filter) or exclude_document is not None
        legs.append(
            sql.SQL(_TEXT_LEG).format(
                terms=collection.table("terms"),
                postings=collection.table("postings"),
                tombstones=collection.table("tombstones"),
                chunks=chunks,
                candidates=candidates,
                rescore=sql.Literal(TEXT_RESCORE * params.candidates),
                idf=idf_sql("s.n", "t.df"),
                query_weight=query_weight_sql("l.qtf"),
                read_score=term_weight_sql("p.tf", "p.length", "p.avgdl", idf="p.weight"),
                rescore_score=term_weight_sql("cardinality(u.positions)", "r.length", "s.avgdl", idf="q.weight"),
                text_join=sql.SQL("JOIN {} c ON c.key = p.key").format(chunks) if filtered else sql.SQL(""),
                text_filter=sql.SQL("{} AND c.document_id IS DISTINCT FROM %(exclude_document)s::text").format(
                    filter_sql
                )
                if filtered
                else sql.SQL("true"),
            )
        )
    else:
        legs.append(sql.SQL(_EMPTY_LEG).format(name=sql.Identifier("text_leg")))
    statement = (
        sql.SQL("WITH")
        + sql.SQL(",").join(legs)
        + sql.SQL(",")
        + sql.SQL(_FUSE).format(chunks=chunks, k=sql.Literal(params.k), score=FUSION_SQL[params.fusion])
    )
    values: dict[str, Any] = {
        "collection": collection.name,
        "text_config": collection.text_config,
        "query": query,
        "terms": terms,
        "exclude_document": exclude_document,
        "embedding": embedding,
        # a filter can reject every chunk of a bounded read: filtered searches read all postings
        "blocks": None if params.exact_text or params.filter or exclude_document is not None else TEXT_BLOCKS,
        "exact_up_to": TEXT_EXACT_UP_TO,
        "rrf_k": params.rrf_k,
        "w_vector": float(params.weights[0]),
        "w_text": float(params.weights[1]),
        "collapse": params.collapse,
        **filter_params,
    }
    return statement, values


# "More like this": the document's mean chunk embedding (as `vector` whatever the storage), and
# its most distinctive lexemes (tf · idf within the collection) as the text leg's query terms.
_LIKE = """
SELECT (SELECT avg(embedding)::vector FROM {chunks} WHERE document_id = %(document_id)s),
       ARRAY(
           SELECT u.lexeme
           FROM {chunks} c CROSS JOIN unnest(c.tsv) AS u
           JOIN {terms} t ON t.term = u.lexeme
           WHERE c.document_id = %(document_id)s
           GROUP BY u.lexeme, t.df
           ORDER BY sum(cardinality(u.positions)) * {idf} DESC, u.lexeme
           LIMIT {limit})
"""


def like_statement(collection: Collection, document_id: str) -> tuple[sql.Composed, dict[str, Any]]:
    """The statement that reads a stored document's mean embedding and most distinctive lexemes."""
    statement = sql.SQL(_LIKE).format(
        chunks=collection.table(),
        terms=collection.table("terms"),
        idf=idf_sql("%(n)s", "t.df"),
        limit=sql.Literal(LIKE_TERMS),
    )
    return statement, {"n": collection.chunk_count, "document_id": document_id}
