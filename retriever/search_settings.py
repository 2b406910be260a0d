"""The settings one search runs under (HNSW ef_search, IVFFlat probes, iterative scans, its timeout),
local to its transaction; on Citus, passed on to every shard.
"""

from __future__ import annotations

from typing import Any

from psycopg import sql

from retriever.results import SearchParams
from retriever.settings import Settings
from retriever.store.tables import Collection
from retriever.store.vector_index import default_probes

__all__ = ["search_settings", "session_settings"]


def search_settings(
    params: SearchParams, settings: Settings, *, iterative_scan: bool, collection: Collection | None = None
) -> dict[str, str]:
    """The settings of one search, by name, for either index kind: `ivfflat.probes` is `params.probes`,
    else `default_probes` of the `collection` (without one: pgvector's, 1)."""
    # ef_search bounds how many rows an HNSW scan yields: below `candidates` it starves fusion.
    ef_search = min(1000, max(params.ef_search or settings.ef_search, params.candidates))
    lists, rows = (collection.ivfflat_lists, collection.chunk_count) if collection else (1, 1)
    chosen = {
        "hnsw.ef_search": str(ef_search),
        "ivfflat.probes": str(params.probes or default_probes(lists, rows, params.candidates)),
        "statement_timeout": str(settings.statement_timeout_ms),
    }
    if params.filter:
        # how selective a filter is decides the plan: never reuse a generic one for it
        chosen["plan_cache_mode"] = "force_custom_plan"
        if iterative_scan:
            # a selective filter would leave the index scan with fewer than k rows; keep scanning
            chosen["hnsw.iterative_scan"] = chosen["ivfflat.iterative_scan"] = "relaxed_order"
    return chosen


# On Citus, only `SET LOCAL` commands reach the shards, and only once this says so; and the
# shards' statements over the coordinator's intermediate results are not worth compiling (Debian's
# PostgreSQL compiles them, for a tenth of a second each, from the row counts it cannot know).
_CITUS = {"citus.propagate_set_commands": "local", "jit": "off"}


def session_settings(
    params: SearchParams, settings: Settings, *, iterative_scan: bool, collection: Collection | None = None
) -> list[tuple[sql.Composed, dict[str, Any]]]:
    """`search_settings` for the search's transaction only (never leaked to the pool): on one node, one
    `set_config(..., true)` statement whose text depends only on which settings are set (prepared once);
    for a distributed `collection`, `SET LOCAL` statements, which Citus passes on to every shard."""
    chosen = search_settings(params, settings, iterative_scan=iterative_scan, collection=collection)
    if collection is not None and collection.distributed:
        return [
            (sql.SQL("SET LOCAL {} = {}").format(sql.SQL(name), sql.Literal(value)), {})
            for name, value in {**_CITUS, **chosen}.items()
        ]
    calls = [
        sql.SQL("set_config({}, %(s{})s, true)").format(sql.Literal(name), sql.SQL(str(i)))
        for i, name in enumerate(chosen)
    ]
    values = {f"s{i}": value for i, value in enumerate(chosen.values())}
    return [(sql.SQL("SELECT ") + sql.SQL(", ").join(calls), values)]
