"""The hybrid query: ONE SQL statement that ranks by vector distance and by BM25, fused by RRF."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import psycopg
from psycopg import sql

from retriever.collections import Collection
from retriever.errors import InputError, LimitExceeded
from retriever.filters import compile_filter
from retriever.settings import Settings

__all__ = ["DEFAULTS", "MODES", "Hit", "SearchParams", "SearchResult", "build_search", "run_search", "run_search_async"]

Mode = Literal["hybrid", "vector", "text"]
MODES: tuple[Mode, ...] = ("hybrid", "vector", "text")
BM25_K1 = 1.2
BM25_B = 0.75
# Chosen by `hybrid-rag eval --sweep` on SciFact train (README "Quality"), never on test.
DEFAULTS = {"candidates": 100, "rrf_k": 10, "weights": (0.7, 1.0)}


@dataclass(frozen=True, slots=True)
class SearchParams:
    """What a search asks for; `validate` checks it against the configured limits."""

    k: int = 10
    mode: Mode = "hybrid"
    filter: Mapping[str, Any] | None = None
    candidates: int = DEFAULTS["candidates"]  # per-leg depth
    rrf_k: int = DEFAULTS["rrf_k"]
    weights: tuple[float, float] = DEFAULTS["weights"]  # (vector, text)
    collapse: bool = False  # best chunk per document only
    ef_search: int | None = None

    def validate(self, settings: Settings) -> SearchParams:
        """Reject values no search should run with; returns self for chaining."""
        if self.mode not in MODES:
            raise InputError(f"unknown mode {self.mode!r}: use one of {', '.join(MODES)}")
        if not 1 <= self.k <= settings.max_k:
            raise LimitExceeded(f"k must be between 1 and {settings.max_k}, got {self.k}")
        if not 1 <= self.candidates <= settings.max_candidates:
            raise LimitExceeded(f"candidates must be between 1 and {settings.max_candidates}, got {self.candidates}")
        if self.rrf_k < 0:
            raise InputError(f"rrf_k must be ≥ 0, got {self.rrf_k}")
        if len(self.weights) != 2 or any(w < 0 for w in self.weights) or not any(self.weights):
            raise InputError("weights must be two non-negative numbers (vector, text), not both 0")
        return self


@dataclass(frozen=True, slots=True)
class Hit:
    """One ranked chunk."""

    id: str
    document_id: str
    content: str
    metadata: dict[str, Any]
    score: float
    vector_rank: int | None
    text_rank: int | None


@dataclass(frozen=True, slots=True)
class SearchResult:
    """Ranked hits and the database time the statement took."""

    hits: list[Hit]
    took_ms: float
    extra: dict[str, Any] = field(default_factory=dict)


# The statement reads top to bottom: corpus statistics, the query's terms with their IDF,
# the BM25 leg over the postings table, the HNSW leg, then fusion and the final join.
# BM25 (Robertson & Zaragoza 2009): Σ_t idf(t) · tf·(k1+1) / (tf + k1·(1 − b + b·len/avgdl)),
# idf(t) = ln(1 + (N − df + 0.5)/(df + 0.5)), over the same lexemes `to_tsvector` produces.
_TEXT_LEG = """
stats AS (
    SELECT chunk_count::float8 AS n, greatest(total_length::float8 / greatest(chunk_count, 1), 1) AS avgdl
    FROM hybrid_rag.collections WHERE name = %(collection)s
),
query_terms AS (
    SELECT t.term, ln(1 + (s.n - t.df + 0.5) / (t.df + 0.5)) AS idf
    FROM {terms} t CROSS JOIN stats s
    WHERE t.term = ANY (
        coalesce(%(terms)s::text[], tsvector_to_array(to_tsvector(%(text_config)s::regconfig, %(query)s)))
    )
),
text_leg AS (
    SELECT chunk_key AS key, row_number() OVER (ORDER BY score DESC, chunk_key) AS rank
    FROM (
        SELECT p.chunk_key,
               sum(q.idf * p.tf * (%(k1)s + 1) / (p.tf + %(k1)s * (1 - %(b)s + %(b)s * p.length / s.avgdl))) AS score
        FROM query_terms q
        JOIN {postings} p ON p.term = q.term
        CROSS JOIN stats s
        {text_filter}
        GROUP BY p.chunk_key
        ORDER BY score DESC, p.chunk_key
        LIMIT %(candidates)s
    ) scored
)"""

_VECTOR_LEG = """
vector_leg AS (
    SELECT key, row_number() OVER (ORDER BY distance, key) AS rank
    FROM (
        SELECT c.key, c.embedding <=> %(embedding)s AS distance
        FROM {chunks} c
        WHERE {filter} AND c.document_id IS DISTINCT FROM %(exclude_document)s::text
        ORDER BY distance
        LIMIT %(candidates)s
    ) nearest
)"""

_EMPTY_LEG = """
{name} AS (SELECT NULL::bigint AS key, NULL::bigint AS rank WHERE false)"""

_FUSE = """
fused AS (
    SELECT coalesce(v.key, t.key) AS key,
           coalesce(%(w_vector)s::float8 / (%(rrf_k)s + v.rank), 0)
             + coalesce(%(w_text)s::float8 / (%(rrf_k)s + t.rank), 0) AS score,
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
LIMIT %(k)s"""


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
    filter_sql, filter_params = compile_filter(params.filter, sql.SQL("c.metadata"))
    chunks = collection.table()
    legs = []
    if params.mode in ("hybrid", "text"):
        text_filter = (
            sql.SQL(
                "JOIN {chunks} c ON c.key = p.chunk_key "
                "WHERE {filter} AND c.document_id IS DISTINCT FROM %(exclude_document)s::text"
            ).format(chunks=chunks, filter=filter_sql)
            if params.filter or exclude_document is not None
            else sql.SQL("")
        )
        legs.append(
            sql.SQL(_TEXT_LEG).format(
                terms=collection.table("terms"), postings=collection.table("postings"), text_filter=text_filter
            )
        )
    else:
        legs.append(sql.SQL(_EMPTY_LEG).format(name=sql.Identifier("text_leg")))
    if params.mode in ("hybrid", "vector"):
        if embedding is None:
            raise ValueError("vector and hybrid searches need the query embedding")
        legs.append(sql.SQL(_VECTOR_LEG).format(chunks=chunks, filter=filter_sql))
    else:
        legs.append(sql.SQL(_EMPTY_LEG).format(name=sql.Identifier("vector_leg")))
    statement = sql.SQL("WITH") + sql.SQL(",").join(legs) + sql.SQL(",") + sql.SQL(_FUSE).format(chunks=chunks)
    values: dict[str, Any] = {
        "collection": collection.name,
        "text_config": collection.text_config,
        "query": query,
        "terms": terms,
        "exclude_document": exclude_document,
        "embedding": embedding,
        "k1": BM25_K1,
        "b": BM25_B,
        "candidates": params.candidates,
        "rrf_k": params.rrf_k,
        "w_vector": float(params.weights[0]),
        "w_text": float(params.weights[1]),
        "collapse": params.collapse,
        "k": params.k,
        **filter_params,
    }
    return statement, values


def session_settings(params: SearchParams, settings: Settings, *, iterative_scan: bool) -> tuple[str, dict[str, str]]:
    """The transaction-local settings of one search (never leaked to the pool)."""
    # ef_search bounds how many rows an HNSW scan yields: below `candidates` it starves fusion.
    ef_search = min(1000, max(params.ef_search or settings.ef_search, params.candidates))
    statement = (
        "SELECT set_config('hnsw.ef_search', %(ef_search)s, true), set_config('statement_timeout', %(timeout)s, true)"
    )
    values = {"ef_search": str(ef_search), "timeout": str(settings.statement_timeout_ms)}
    if iterative_scan and params.filter:
        # a selective filter would leave the HNSW scan with fewer than k rows; keep scanning
        statement += ", set_config('hnsw.iterative_scan', 'relaxed_order', true)"
    return statement, values


def _hits(rows: list[tuple[Any, ...]]) -> list[Hit]:
    return [Hit(*row) for row in rows]


def run_search(
    conn: psycopg.Connection,
    collection: Collection,
    params: SearchParams,
    settings: Settings,
    *,
    query: str,
    embedding: np.ndarray | None,
    terms: list[str] | None = None,
    exclude_document: str | None = None,
    iterative_scan: bool = True,
) -> SearchResult:
    """Run one search on a configured connection: settings and statement in one round trip."""
    statement, values = build_search(
        collection, params, query=query, embedding=embedding, terms=terms, exclude_document=exclude_document
    )
    setup, setup_values = session_settings(params, settings, iterative_scan=iterative_scan)
    start = time.perf_counter()
    with conn.pipeline(), conn.transaction(), conn.cursor() as cur:
        cur.execute(setup, setup_values)
        cur.execute(statement, values)
        rows = cur.fetchall()
    return SearchResult(_hits(rows), (time.perf_counter() - start) * 1000)


async def run_search_async(
    conn: psycopg.AsyncConnection,
    collection: Collection,
    params: SearchParams,
    settings: Settings,
    *,
    query: str,
    embedding: np.ndarray | None,
    terms: list[str] | None = None,
    exclude_document: str | None = None,
    iterative_scan: bool = True,
) -> SearchResult:
    """Async twin of `run_search`."""
    statement, values = build_search(
        collection, params, query=query, embedding=embedding, terms=terms, exclude_document=exclude_document
    )
    setup, setup_values = session_settings(params, settings, iterative_scan=iterative_scan)
    start = time.perf_counter()
    async with conn.pipeline(), conn.transaction(), conn.cursor() as cur:
        await cur.execute(setup, setup_values)
        await cur.execute(statement, values)
        rows = await cur.fetchall()
    return SearchResult(_hits(rows), (time.perf_counter() - start) * 1000)
