"""One search as pure steps (statements out, rows in), run by one sync and one async driver.

`search_steps` holds every decision of a search: it validates, reads the collection's
registry row, checks the query embedding against it, reads a stored document for "more
like this", and builds the statement. The drivers only execute what it yields, so the
sync and the async path cannot drift apart: same hits, same errors, for the same input.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

from ingest import text_problem
from retriever.errors import CollectionIncomplete, CollectionNotFound, DocumentNotFound, InputError, LimitExceeded
from retriever.query import REGISTRY, build_search, like_statement
from retriever.results import Hit, SearchParams
from retriever.search_settings import session_settings
from retriever.settings import Settings
from retriever.store.collections import check_embeddings
from retriever.store.tables import Collection, validate_name

__all__ = [
    "Searched",
    "Step",
    "StepResult",
    "Steps",
    "expect_embeddings",
    "run_steps",
    "run_steps_async",
    "search_steps",
    "validate_query",
]

Statement = tuple[sql.Composable | str, Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class Step:
    """Statements to run in order; the driver answers with the rows of the last one.

    `atomic` runs them in one transaction, sent in one round trip (pipeline mode).
    """

    statements: Sequence[Statement]
    atomic: bool = False


@dataclass(frozen=True, slots=True)
class StepResult:
    """What a driver answers a step with: the last statement's rows and the step's database time."""

    rows: list[tuple[Any, ...]]
    ms: float = 0.0


@dataclass(slots=True)
class Searched:
    """What `search_steps` returns: hits, and the search statement's database time."""

    hits: list[Hit]
    db_ms: float


Steps = Generator[Step, StepResult, Searched]

# First in a search's transaction: the collection still holds the vectors it was checked
# against, else SQLSTATE HR001 (`EmbeddingsReplaced`). The chunk table is named, so its lock
# is taken before the statement's snapshot: a re-embed's swap, which holds that table
# exclusively, then falls wholly before this check or wholly after the search.
_EXPECT_EMBEDDINGS = """
SELECT hybrid_rag.expect_embeddings(%(collection)s, %(model)s, %(dimensions)s)
WHERE NOT EXISTS (SELECT FROM {chunks} WHERE false)
"""


def expect_embeddings(collection: Collection) -> Statement:
    """The statement that opens a vector search's transaction: see `_EXPECT_EMBEDDINGS`."""
    values = {"collection": collection.name, "model": collection.embedding_model, "dimensions": collection.dimensions}
    return sql.SQL(_EXPECT_EMBEDDINGS).format(chunks=collection.table()), values


def validate_query(query: str | None, settings: Settings) -> str:
    """A usable query text, or a clear `InputError` / `LimitExceeded`."""
    if query is None or not query.strip():
        raise InputError("the query is empty")
    if problem := text_problem(query, "the query"):  # NUL, or an unpaired surrogate (undecodable argv bytes)
        raise InputError(problem)
    if len(query) > settings.max_query_chars:
        raise LimitExceeded(f"the query has {len(query)} characters; the limit is {settings.max_query_chars}")
    return query.strip()


def search_steps(
    settings: Settings,
    collection_name: str,
    params: SearchParams,
    *,
    query: str,
    like: str | None,
    embedding: np.ndarray | None,
    model_name: str | None,
) -> Steps:
    """The steps of one search, for `run_steps` or `run_steps_async`.

    `query` is validated text (ignored with `like`); `embedding` is the query's, needed by
    the vector leg unless `like` names a stored document, made by `model_name` (None: a
    caller's vector, whose size alone can be checked). Raises `CollectionIncomplete` (a
    search that reads the text leg while a first load has not built it), `CollectionNotFound`,
    `DocumentNotFound`, `EmbeddingMismatch` (another model, or another vector size).
    """
    validate_name(collection_name)
    if like is not None and (problem := text_problem(like, "the document id")):
        raise InputError(problem)
    found = (yield Step([(REGISTRY, {"name": collection_name})])).rows
    if not found:
        raise CollectionNotFound(f"no collection named {collection_name!r}")
    *row, iterative_scan = found[0]
    collection = Collection(*row)
    if not collection.complete and (params.mode != "vector" or like is not None):
        raise CollectionIncomplete(
            f"collection {collection_name!r} is being loaded, or its first load was interrupted: its text search "
            f"is not ready; rerun the ingest or run `hybrid-rag maintain -c {collection_name}`"
        )
    terms: list[str] | None = None
    if like is not None:
        stored = (yield Step([like_statement(collection, like)])).rows
        if not stored or stored[0][0] is None:
            raise DocumentNotFound(f"no document {like!r} in this collection")
        embedding, terms, query = np.asarray(stored[0][0], dtype=np.float32), list(stored[0][1]), ""
    elif params.needs_vector:
        if embedding is None:
            raise ValueError("vector and hybrid searches need the query embedding")
        check_embeddings(collection, model_name or collection.embedding_model, len(embedding))
    statement = build_search(collection, params, query=query, embedding=embedding, terms=terms, exclude_document=like)
    setup = session_settings(params, settings, iterative_scan=bool(iterative_scan), collection=collection)
    vectors = [expect_embeddings(collection)] if params.needs_vector or like is not None else []
    searched = yield Step([*vectors, *setup, statement], atomic=True)
    return Searched([Hit(*row) for row in searched.rows], searched.ms)


def run_steps(conn: psycopg.Connection, steps: Steps) -> Searched:
    """Drive `steps` on a configured connection."""
    reply: StepResult | None = None
    while True:
        try:
            step = steps.send(reply)  # type: ignore[arg-type]
        except StopIteration as done:
            return done.value
        start = time.perf_counter()
        with contextlib.ExitStack() as held:
            if step.atomic:  # one transaction, sent in one round trip
                held.enter_context(conn.pipeline())
                held.enter_context(conn.transaction())
            cur = held.enter_context(conn.cursor())
            for statement, values in step.statements:
                cur.execute(statement, values)
            rows = cur.fetchall()
        reply = StepResult(rows, (time.perf_counter() - start) * 1000)


async def run_steps_async(conn: psycopg.AsyncConnection, steps: Steps) -> Searched:
    """Async twin of `run_steps`: the same steps, awaited."""
    reply: StepResult | None = None
    while True:
        try:
            step = steps.send(reply)  # type: ignore[arg-type]
        except StopIteration as done:
            return done.value
        start = time.perf_counter()
        async with contextlib.AsyncExitStack() as held:
            if step.atomic:
                await held.enter_async_context(conn.pipeline())
                await held.enter_async_context(conn.transaction())
            cur = await held.enter_async_context(conn.cursor())
            for statement, values in step.statements:
                await cur.execute(statement, values)
            rows = await cur.fetchall()
        reply = StepResult(rows, (time.perf_counter() - start) * 1000)
