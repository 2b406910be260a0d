"""Searches as the `Engine` runs them: the query embedded by the collection's model, then the statements.

A collection records the model its vectors come from, and a query must be embedded by the
same one. The engine starts with the configured model for every collection and follows a
collection to the model its registry names when they differ — after a re-embed, here or in
another process — if it can make that model: one this engine re-embedded with, or one the
configuration can make (`retriever.embeddings.model_named`). A search that a re-embed's swap
overtakes (`EmbeddingsReplaced`) is run again with the new model, so every answer comes
wholly from one model.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import anyio.to_thread
import numpy as np
import psycopg

from retriever.boundary import map_errors
from retriever.connections import ApiPools
from retriever.embeddings import EmbeddingModel, model_named
from retriever.errors import EmbeddingMismatch, EmbeddingsReplaced
from retriever.query_embedder import QueryEmbedder
from retriever.results import SearchParams, SearchResult
from retriever.search import Steps, run_steps, run_steps_async, search_steps, validate_query
from retriever.settings import Settings
from retriever.store.collections import get_collection

__all__ = ["Searching"]

_ATTEMPTS = 3  # a search overtaken by re-embeds this often in a row gives up with the error


class Searching:
    """Mixed into `Engine`: `search`, `asearch`, and which model embeds each collection's queries."""

    settings: Settings
    model: EmbeddingModel
    query_embedder: QueryEmbedder
    models: dict[str, EmbeddingModel]  # by name: models this engine re-embedded with
    _collection_models: dict[str, EmbeddingModel]  # collections that follow another model than `model`
    _pools: ApiPools | None
    connection: Callable[[], contextlib.AbstractContextManager[psycopg.Connection]]
    reader: Callable[[], contextlib.AbstractContextManager[psycopg.Connection]]
    areader: Callable[[], contextlib.AbstractAsyncContextManager[psycopg.AsyncConnection]]

    def query_model(self, collection: str) -> EmbeddingModel:
        """The model that embeds queries for `collection`: the configured one until it follows a re-embed."""
        return self._collection_models.get(collection) or self.model

    def model_for(self, name: str) -> EmbeddingModel | None:
        """The model a registry names, if this engine can make it: one it re-embedded with, or one the
        configuration can make (`retriever.embeddings.model_named`)."""
        return self.models.get(name) or model_named(name, self.settings)

    def follow_model(self, collection: str, used: EmbeddingModel | None, error: Exception, attempt: int) -> bool:
        """Whether a search that failed with `error` on try `attempt` is worth another try; follows
        `collection` to the model its registry names on the way.

        A search a re-embed's swap overtook is (its next try embeds with the new model); a
        mismatch is when the registry names another model this engine can make.
        """
        if attempt >= _ATTEMPTS or (used is None and not isinstance(error, EmbeddingsReplaced)):
            return False
        if used is None:
            return True  # a stored document's vector or a caller's: nothing to follow
        with self.connection() as conn:
            found = self.model_for(get_collection(conn, collection).embedding_model)
        if found is not None:
            self._collection_models[collection] = found
        return isinstance(error, EmbeddingsReplaced) or (found is not None and found is not used)

    def _prepare(
        self, collection: str, query: str | None, params: SearchParams, like: str | None, embedding: np.ndarray | None
    ) -> tuple[str, EmbeddingModel | None]:
        """Every check that needs no database, and the model that must embed the query (loaded now,
        outside `took_ms`), if any: none for `like`, a text search or a caller's vector."""
        params.validate(self.settings)
        if like is not None:
            return "", None
        text = validate_query(query, self.settings)
        return text, self.query_model(collection).load() if params.needs_vector and embedding is None else None

    def _steps(
        self, collection: str, query: str, params: SearchParams, like: str | None, embedding: Any, model: Any
    ) -> Steps:
        # a caller's vector has no model to compare: only its size is checked
        model_name = model.name if model is not None else None
        return search_steps(
            self.settings, collection, params, query=query, like=like, embedding=embedding, model_name=model_name
        )

    def _attempts(self, collection: str, model: EmbeddingModel | None) -> Iterator[EmbeddingModel | None]:
        """The model of each try: the first one's, then whichever `follow_model` settled on."""
        for attempt in range(_ATTEMPTS):
            yield model if attempt == 0 or model is None else self.query_model(collection).load()

    def search(
        self,
        collection: str,
        query: str | None,
        params: SearchParams | None = None,
        *,
        like: str | None = None,
        embedding: np.ndarray | None = None,
        conn: psycopg.Connection | None = None,
    ) -> SearchResult:
        """Rank a collection's chunks for `query` (or, with `like=DOCUMENT_ID`, for a stored document).

        `embedding` skips embedding the query; `conn` runs on a connection the caller holds.
        `took_ms` is end to end (embedding included), `extra["db_ms"]` the statement alone.
        Raises `InputError`s (`EmbeddingMismatch` among them), `NotFound`s, `CollectionIncomplete`,
        `DatabaseUnavailable` (retry later), `DatabaseFault` (an operator must act).
        """
        params = params or SearchParams()
        with map_errors():
            text, first = self._prepare(collection, query, params, like, embedding)
            start = time.perf_counter()
            for attempt, model in enumerate(self._attempts(collection, first), 1):
                vector = self.query_embedder.embed(model, text) if model is not None else embedding
                try:
                    with contextlib.nullcontext(conn) if conn is not None else self.reader() as held:
                        searched = run_steps(held, self._steps(collection, text, params, like, vector, model))
                    break
                except (EmbeddingMismatch, EmbeddingsReplaced) as error:
                    if not self.follow_model(collection, model, error, attempt):
                        raise
        return SearchResult(searched.hits, (time.perf_counter() - start) * 1000, {"db_ms": searched.db_ms})

    async def asearch(
        self,
        collection: str,
        query: str | None,
        params: SearchParams | None = None,
        *,
        like: str | None = None,
        embedding: np.ndarray | None = None,
    ) -> SearchResult:
        """Async `search`: the query is embedded, with concurrent ones, BEFORE a connection is taken.

        Embedding is the slow, CPU-bound part: done while holding a pooled connection, a burst of
        searches would keep every connection waiting for the CPU.
        """
        params = params or SearchParams()
        with map_errors():
            text, first = self._prepare(collection, query, params, like, embedding)
            start = time.perf_counter()
            for attempt, model in enumerate(self._attempts(collection, first), 1):
                slots = self._pools.embed_slots if self._pools else None
                vector = await self.query_embedder.aembed(model, text, slots) if model is not None else embedding
                try:
                    async with self.areader() as held:
                        steps = self._steps(collection, text, params, like, vector, model)
                        searched = await run_steps_async(held, steps)
                    break
                except (EmbeddingMismatch, EmbeddingsReplaced) as error:
                    if not await anyio.to_thread.run_sync(self.follow_model, collection, model, error, attempt):
                        raise
        return SearchResult(searched.hits, (time.perf_counter() - start) * 1000, {"db_ms": searched.db_ms})
