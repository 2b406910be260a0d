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
from retriever.store.bm25 import idf_sql
from retriever.store.citus import anchor_of
from retriever.store.collections import SEARCH_REGISTRY as REGISTRY
from retriever.store.tables import Collection
from retriever.text_leg import text_leg

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
TEXT_BLOCKS = 10  # posting blocks read per query term, best impact first (up to 10 × 100 postings)
TEXT_RESCORE = 6  # at most this many × candidates chunks are rescored exactly from their `tsv`
TEXT_EXACT_UP_TO = 20_000  # a query whose terms have this many postings in all reads them all: exact, and cheaper
LIKE_TERMS = 24  # "more like this": the document's most distinctive lexemes the text leg searches for

# The statement reads top to bottom: the HNSW leg, the BM25 leg (`retriever.text_leg`: corpus
# statistics, the query's terms with their IDF, the read of their posting blocks), then
# fusion and the final join.
_VECTOR_LEG = """
vector_leg AS (
    SELECT anchor, key, row_number() OVER (ORDER BY distance, key) AS rank,
           coalesce((max(distance) OVER () - distance) / nullif(max(distance) OVER () - min(distance) OVER (), 0), 1)
             AS norm
    FROM (
        -- the query vector cast to the column's type: its index serves
        SELECT c.anchor, c.key, c.embedding <=> %(embedding)s::{cast} AS distance
        FROM {chunks} c
        WHERE {filter} AND c.document_id IS DISTINCT FROM %(exclude_document)s::text
        ORDER BY distance
        LIMIT {candidates}
    ) nearest
)"""

_EMPTY_LEG = """
{name} AS (
    SELECT NULL::text AS anchor, NULL::bigint AS key, NULL::float8 AS score, NULL::bigint AS rank,
           NULL::float8 AS norm, NULL::float8 AS scaled
    WHERE false
)"""

# Each leg carries its chunks' ranks (from 1) and min-max normalised scores (`norm`), the
# text leg also its scores over its best (`scaled`); `retriever.fusion.FUSION_SQL` combines
# ranks or normalised scores, weighted, as its fusion method says.
_FUSE = """
fused AS (
    SELECT coalesce(v.anchor, t.anchor) AS anchor, coalesce(v.key, t.key) AS key,
           {score} AS score,
           v.rank AS vector_rank,
           t.rank AS text_rank
    FROM vector_leg v FULL OUTER JOIN text_leg t ON v.anchor = t.anchor AND v.key = t.key
),
ranked AS (
    SELECT c.id, c.document_id, c.content, c.metadata, f.score, f.vector_rank, f.text_rank,
           row_number() OVER (PARTITION BY c.anchor, c.document_id ORDER BY f.score DESC, c.id COLLATE "C")
             AS nth_in_document
    FROM fused f JOIN {chunks} c ON {chunk_join}
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
            text_leg(
                collection,
                candidates=candidates,
                rescore=sql.Literal(TEXT_RESCORE * params.candidates),
                filter_sql=filter_sql if filtered else None,
            )
        )
    else:
        legs.append(sql.SQL(_EMPTY_LEG).format(name=sql.Identifier("text_leg")))
    statement = (
        sql.SQL("WITH")
        + sql.SQL(",").join(legs)
        + sql.SQL(",")
        + sql.SQL(_FUSE).format(
            chunks=chunks,
            chunk_join=collection.chunk_join("f"),
            k=sql.Literal(params.k),
            score=FUSION_SQL[params.fusion],
        )
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
SELECT (SELECT avg(embedding)::vector FROM {chunks} WHERE anchor = %(anchor)s AND document_id = %(document_id)s),
       ARRAY(
           SELECT u.lexeme
           FROM {chunks} c CROSS JOIN unnest(c.tsv) AS u
           JOIN {terms} t ON t.term = u.lexeme
           WHERE c.anchor = %(anchor)s AND c.document_id = %(document_id)s
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
    anchor = anchor_of(collection.anchors, document_id)  # on Citus, one shard's work
    return statement, {"n": collection.chunk_count, "anchor": anchor, "document_id": document_id}
