"""Nearest chunks by cosine distance, with the distances and (for MMR) the stored vectors.

The vector store's `similarity_search*` and `max_marginal_relevance_search*` need what
the fused query does not give: each chunk's cosine distance to the query (the fused score
is normalised or rank-based) and its embedding. `nearest_steps` holds the decisions, as
`retriever.search.search_steps` does, for the same sync and async drivers.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from psycopg import sql

from retriever.filters import compile_filter
from retriever.query import REGISTRY
from retriever.results import SearchParams
from retriever.search import Step, StepResult, expect_embeddings
from retriever.search_settings import session_settings
from retriever.settings import Settings
from retriever.store.collections import check_embeddings
from retriever.store.tables import Collection, validate_name

__all__ = ["Neighbour", "nearest_steps"]

_NEAREST = """
SELECT c.document_id, c.content, c.metadata, c.embedding <=> %(embedding)s::{cast} AS distance, {vectors}
FROM {chunks} c
WHERE {filter}
ORDER BY c.embedding <=> %(embedding)s::{cast}, c.id COLLATE "C"
LIMIT {k}
"""


@dataclass(frozen=True, slots=True)
class Neighbour:
    """A chunk near the query: its document's id, content, metadata, cosine distance (0 to 2), and vector."""

    document_id: str
    content: str
    metadata: dict[str, Any]
    distance: float
    embedding: np.ndarray | None


def nearest_steps(
    settings: Settings,
    collection_name: str,
    embedding: np.ndarray,
    *,
    k: int,
    filter: Mapping[str, Any] | None = None,
    model_name: str | None = None,
    with_vectors: bool = False,
) -> Generator[Step, StepResult, list[Neighbour]]:
    """The `k` chunks nearest to `embedding` (cosine, the collection's vector index) that `filter` matches.

    A collection that does not exist (yet) has no neighbours. `model_name` names the model
    that embedded the query (None: a caller's vector, whose size alone is checked). Raises
    `LimitExceeded` for `k` over MAX_CANDIDATES (an MMR's `fetch_k` may exceed MAX_K), `InvalidFilter`,
    `EmbeddingMismatch`.
    """
    validate_name(collection_name)
    params = SearchParams(k=min(k, settings.max_k), mode="vector", filter=filter, candidates=k).validate(settings)
    found = (yield Step([(REGISTRY, {"name": collection_name})])).rows
    if not found:
        return []
    *row, iterative_scan = found[0]
    collection = Collection(*row)
    check_embeddings(collection, model_name or collection.embedding_model, len(embedding))
    condition, values = compile_filter(filter, sql.Identifier("c"))
    statement = sql.SQL(_NEAREST).format(
        chunks=collection.table(),
        filter=condition,
        k=sql.Literal(k),
        vectors=sql.SQL("c.embedding::vector" if with_vectors else "NULL"),  # halfvec read back as vector
        cast=sql.SQL(collection.vector_index.storage),  # the query as the column's type: its index serves
    )
    setup = session_settings(params, settings, iterative_scan=bool(iterative_scan), collection=collection)
    # the collection's vectors may not change between the check above and the statement
    steps = [expect_embeddings(collection), *setup, (statement, {**values, "embedding": embedding})]
    rows = (yield Step(steps, atomic=True)).rows
    return [Neighbour(*row[:4], None if row[4] is None else np.asarray(row[4], dtype=np.float32)) for row in rows]
