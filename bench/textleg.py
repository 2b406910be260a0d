"""Which text leg is faster: BM25 from the postings table, or from GIN-matched tsvectors?

Both compute the same BM25 (same lexemes, IDF, length normalisation); the first reads
(term → chunk, tf, length) rows from the postings table's covering primary key, the
second finds OR-matching chunks through the GIN index on `tsv` and unnests each
candidate's tsvector. The benchmark runs both over the same queries and checks that
they agree on the ranking.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import psycopg
from psycopg import sql

from retriever.collections import Collection
from retriever.query import BM25_B, BM25_K1, DEFAULTS, SearchParams, build_search

__all__ = ["GIN_TEXT_LEG", "run_textleg_bench"]

GIN_TEXT_LEG = """
WITH stats AS (
    SELECT chunk_count::float8 AS n, greatest(total_length::float8 / greatest(chunk_count, 1), 1) AS avgdl
    FROM hybrid_rag.collections WHERE name = %(collection)s
),
query_terms AS (
    SELECT t.term, ln(1 + (s.n - t.df + 0.5) / (t.df + 0.5)) AS idf
    FROM {terms} t CROSS JOIN stats s
    WHERE t.term = ANY (tsvector_to_array(to_tsvector(%(text_config)s::regconfig, %(query)s)))
),
or_query AS (
    SELECT string_agg(quote_literal(term), ' | ')::tsquery AS q FROM query_terms
),
matched AS (
    SELECT c.key, c.tsv FROM {chunks} c, or_query o WHERE c.tsv @@ o.q
),
scored AS (
    SELECT m.key,
           sum(q.idf * cardinality(u.positions) * (%(k1)s + 1)
               / (cardinality(u.positions) + %(k1)s * (1 - %(b)s + %(b)s * l.length / s.avgdl))) AS score
    FROM matched m
    CROSS JOIN LATERAL (SELECT sum(cardinality(positions)) AS length FROM unnest(m.tsv)) l
    CROSS JOIN LATERAL unnest(m.tsv) u
    JOIN query_terms q ON q.term = u.lexeme
    CROSS JOIN stats s
    GROUP BY m.key
)
SELECT c.id FROM scored s JOIN {chunks} c ON c.key = s.key ORDER BY s.score DESC, s.key LIMIT %(candidates)s
"""


def _time(conn: psycopg.Connection, statement: sql.Composable, values: dict[str, Any]) -> tuple[float, list[str]]:
    start = time.perf_counter()
    rows = conn.execute(statement, values).fetchall()
    return (time.perf_counter() - start) * 1000, [row[0] for row in rows]


def run_textleg_bench(
    conn: psycopg.Connection, collection: Collection, queries: list[str], *, candidates: int = DEFAULTS["candidates"]
) -> dict[str, Any]:
    """p50/p95 of both text legs over `queries`, and how often their top 10 agree."""
    params = SearchParams(k=candidates, mode="text", candidates=candidates)
    gin = sql.SQL(GIN_TEXT_LEG).format(terms=collection.table("terms"), chunks=collection.table())
    timings: dict[str, list[float]] = {"postings": [], "gin": []}
    agree = 0
    for query in queries:
        statement, values = build_search(collection, params, query=query, embedding=None)
        postings_ms, postings_ids = _time(conn, statement, values)
        gin_ms, gin_ids = _time(conn, gin, {**values, "k1": BM25_K1, "b": BM25_B})
        timings["postings"].append(postings_ms)
        timings["gin"].append(gin_ms)
        agree += postings_ids[:10] == gin_ids[:10]
    summary: dict[str, Any] = {
        name: {"p50_ms": statistics.median(values), "p95_ms": statistics.quantiles(values, n=20)[-1]}
        for name, values in timings.items()
    }
    summary["queries"] = len(queries)
    summary["top10_identical"] = agree / len(queries)
    summary["speedup_p50"] = summary["gin"]["p50_ms"] / summary["postings"]["p50_ms"]
    return summary
