"""The API's search: the query is embedded before a pooled connection is taken."""

from __future__ import annotations

import dataclasses
import time

import anyio.to_thread

from retriever.http.runtime import Runtime
from retriever.query import SearchParams, SearchResult
from retriever.service import search_async, validate_query

__all__ = ["search"]


async def search(
    runtime: Runtime, collection_name: str, query: str | None, params: SearchParams, *, like: str | None
) -> SearchResult:
    """`service.search_async`, with the query embedded BEFORE a pooled connection is taken.

    Embedding is the slow, CPU-bound part: done while holding a connection, a burst of
    searches would keep every connection busy waiting for the CPU and the pool would time
    out. `took_ms` still counts the embedding.
    """
    started = time.perf_counter()
    model = runtime.model
    if like is None and params.mode != "text":
        params.validate(runtime.settings)
        query = validate_query(query, runtime.settings)
        vector = await anyio.to_thread.run_sync(model.embed_query, query, limiter=runtime.embed_slots)
    else:
        vector = None
    embed_ms = (time.perf_counter() - started) * 1000
    async with runtime.reader() as conn:
        result = await search_async(
            conn, runtime.settings, collection_name, query, params, like=like, model=model, embedding=vector
        )
    return dataclasses.replace(result, took_ms=result.took_ms + embed_ms)
