"""Connections the engine hands out: a fresh one to the primary (migrated once), and the API's pools.

Errors are left as psycopg raises them; `retriever.engine.map_errors` translates them.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread
import psycopg
from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout

from retriever.embeddings import EmbeddingModel, LocalEmbeddings
from retriever.settings import Settings
from retriever.store.database import configure, configure_async, connect, mask_dsn, primary_dsn, with_timeouts
from retriever.store.migrations import migrate

__all__ = ["ApiPools", "borrow", "ensure_migrated", "open_api_pools", "open_primary"]

log = logging.getLogger(__name__)

_migrated: set[str] = set()  # primaries whose schema this process has brought up to date


def open_primary(settings: Settings) -> psycopg.Connection:
    """A fresh connection to the primary; the schema is migrated the first time in this process."""
    dsn = primary_dsn(settings)
    conn = connect(dsn, register=False)
    try:
        if dsn not in _migrated:
            migrate(conn)
            _migrated.add(dsn)
        configure(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def ensure_migrated(settings: Settings) -> None:
    """Bring the primary's schema up to date, unless this process already did."""
    if primary_dsn(settings) not in _migrated:
        open_primary(settings).close()


@dataclass(frozen=True, slots=True)
class ApiPools:
    """What the API holds while it runs: its pools and the slots that bound its concurrent work.

    Searches borrow from `primary` or the `readers` (replicas); writes run the synchronous
    ingest in worker threads on `writes`. Every pool holds at most POOL_SIZE connections and
    waits at most POOL_TIMEOUT_S for one; pooled connections are checked before use, so the
    API outlives a database restart.
    """

    primary: AsyncConnectionPool
    readers: tuple[AsyncConnectionPool, ...]
    writes: ConnectionPool
    write_slots: anyio.CapacityLimiter  # an ingest holds up to 3 connections (2 more in a bulk load)
    embed_slots: anyio.CapacityLimiter  # query embeddings at once: about one per core, more only contend


PROBE_AFTER_S = 1.0  # a pool that lends nothing this long is asked: is the database there at all?


@contextlib.asynccontextmanager
async def borrow(pool: AsyncConnectionPool) -> AsyncIterator[psycopg.AsyncConnection]:
    """A connection from `pool`, or within about a second the reason there is none.

    A pool that cannot connect waits its whole timeout (POOL_TIMEOUT_S) before it gives
    up. After PROBE_AFTER_S this opens one connection of its own: when that fails too, the
    database is unreachable and its error is raised at once; otherwise the pool is only
    busy, and the wait goes on for the rest of its timeout (then `PoolTimeout`).
    """
    try:
        conn = await pool.getconn(timeout=min(PROBE_AFTER_S, pool.timeout))
    except PoolTimeout:
        probe = await psycopg.AsyncConnection.connect(pool.conninfo, autocommit=True, connect_timeout=2)
        await probe.close()
        conn = await pool.getconn(timeout=max(pool.timeout - PROBE_AFTER_S, 0.001))
    try:
        yield conn
    finally:
        await pool.putconn(conn)


def _pool_options(settings: Settings, name: str) -> dict[str, Any]:
    return {
        "min_size": 1,
        "kwargs": {"autocommit": True},
        "timeout": settings.pool_timeout_s,
        # give up reconnecting soon: the next request that finds the pool empty tries again at once
        "reconnect_timeout": max(5.0, 2 * settings.pool_timeout_s),
        "name": name,
        "open": False,
    }


def _async_pool(dsn: str, settings: Settings, name: str) -> AsyncConnectionPool:
    return AsyncConnectionPool(
        with_timeouts(dsn, settings),
        max_size=max(1, settings.pool_size),
        configure=configure_async,
        check=AsyncConnectionPool.check_connection,
        **_pool_options(settings, name),
    )


def _write_pool(dsn: str, settings: Settings) -> ConnectionPool:
    return ConnectionPool(
        with_timeouts(dsn, settings),
        max_size=max(3, settings.pool_size),  # an ingest holds up to three connections
        configure=configure,
        check=ConnectionPool.check_connection,
        **_pool_options(settings, "writes"),
    )


def _load_model(model: EmbeddingModel) -> None:
    if isinstance(model.embeddings, LocalEmbeddings):
        model.embed_query("warm up")  # the first encode is slow; pay for it before the first request


def _migrate(settings: Settings) -> str:
    ensure_migrated(settings)
    return primary_dsn(settings)


@contextlib.asynccontextmanager
async def open_api_pools(settings: Settings, model: EmbeddingModel) -> AsyncIterator[ApiPools]:
    """Load the model, migrate the schema, open the pools; close them on the way out."""
    await anyio.to_thread.run_sync(_load_model, model)
    dsn = await anyio.to_thread.run_sync(_migrate, settings)
    primary = _async_pool(dsn, settings, "primary")
    readers = tuple(_async_pool(url, settings, f"reader-{i}") for i, url in enumerate(settings.database_read_urls))
    writes = _write_pool(dsn, settings)
    try:
        for pool in (primary, *readers):
            await pool.open(wait=True, timeout=max(10.0, settings.pool_timeout_s))
        await anyio.to_thread.run_sync(lambda: writes.open(wait=True, timeout=max(10.0, settings.pool_timeout_s)))
        log.info("serving with %s (%d connections at most per pool)", mask_dsn(dsn), settings.pool_size)
        yield ApiPools(
            primary=primary,
            readers=readers,
            writes=writes,
            write_slots=anyio.CapacityLimiter(max(1, settings.pool_size // 4)),
            embed_slots=anyio.CapacityLimiter(max(2, os.cpu_count() or 2)),
        )
    finally:
        for pool in (primary, *readers):
            await pool.close()
        await anyio.to_thread.run_sync(writes.close)
