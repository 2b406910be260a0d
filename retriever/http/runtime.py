"""What the API holds while it runs: the settings, the model, the connection pools, the write slots.

Searches borrow a connection from a pool (a read replica's when configured); the wait for
one is bounded by POOL_TIMEOUT_S, then DatabaseUnavailable (503). Pooled connections are
checked before use, so the app outlives a database restart. Writes (ingest, delete) run
the service's synchronous code in worker threads, a few at a time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import os
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

import anyio
import anyio.to_thread
import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import AsyncConnectionPool

from retriever.database import configure_async, map_errors, mask_dsn, open_primary, primary_dsn
from retriever.embeddings import EmbeddingModel, LocalEmbeddings, get_embedding_model
from retriever.errors import DatabaseUnavailable
from retriever.settings import Settings

__all__ = ["Runtime", "open_runtime", "with_timeouts"]

log = logging.getLogger(__name__)
T = TypeVar("T")


def with_timeouts(dsn: str, settings: Settings) -> str:
    """The DSN with the per-statement timeout and a bounded connect, for every session it opens."""
    options = conninfo_to_dict(dsn).get("options") or ""
    timeout = f"-c statement_timeout={settings.statement_timeout_ms}"
    connect_s = max(2, int(settings.pool_timeout_s + 0.999))
    return make_conninfo(dsn, options=f"{options} {timeout}".strip(), connect_timeout=connect_s)


def _pool(dsn: str, settings: Settings, name: str) -> AsyncConnectionPool:
    return AsyncConnectionPool(
        with_timeouts(dsn, settings),
        min_size=1,
        max_size=max(1, settings.pool_size),
        kwargs={"autocommit": True},
        configure=configure_async,
        check=AsyncConnectionPool.check_connection,
        timeout=settings.pool_timeout_s,
        # give up reconnecting soon: the next request that finds the pool empty tries again at once
        reconnect_timeout=max(5.0, 2 * settings.pool_timeout_s),
        name=name,
        open=False,
    )


@dataclasses.dataclass
class Runtime:
    """The app's resources, created once at startup."""

    settings: Settings
    model: EmbeddingModel
    primary: AsyncConnectionPool
    readers: tuple[AsyncConnectionPool, ...]
    write_settings: Settings  # the primary with the statement timeout: for the synchronous write path
    write_slots: anyio.CapacityLimiter
    embed_slots: anyio.CapacityLimiter  # query embeddings at once: about one per core, more only contend
    _turn: itertools.count = dataclasses.field(default_factory=itertools.count)

    @contextlib.asynccontextmanager
    async def reader(self) -> AsyncIterator[psycopg.AsyncConnection]:
        """A pooled connection for searches (replicas in turn, when configured); errors mapped to ours."""
        pool = self.readers[next(self._turn) % len(self.readers)] if self.readers else self.primary
        with map_errors():
            async with pool.connection() as conn:
                yield conn

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection]:
        """A pooled connection to the primary; errors mapped to ours."""
        with map_errors():
            async with self.primary.connection() as conn:
                yield conn

    async def write(self, func: Callable[..., T], *args: object) -> T:
        """Run a synchronous write in a worker thread once a write slot is free (bounded wait, then 503)."""
        with anyio.move_on_after(self.settings.pool_timeout_s) as waited:
            await self.write_slots.acquire()
        if waited.cancelled_caught:
            raise DatabaseUnavailable("every write slot stayed busy; retry later")
        try:
            return await anyio.to_thread.run_sync(func, *args)
        finally:
            self.write_slots.release()

    async def ready(self) -> None:
        """Raise DatabaseUnavailable unless every database answers."""
        for pool in (self.primary, *self.readers):
            with map_errors():
                async with pool.connection() as conn:
                    await conn.execute("SELECT 1")


def _load_model(settings: Settings) -> EmbeddingModel:
    model = get_embedding_model(settings)
    if isinstance(model.embeddings, LocalEmbeddings):
        model.embed_query("warm up")  # the first encode is slow; pay for it before the first request
    return model


def _migrate(settings: Settings) -> str:
    open_primary(settings).close()  # runs the migrations this database has not seen
    return primary_dsn(settings)


@contextlib.asynccontextmanager
async def open_runtime(settings: Settings, model: EmbeddingModel | None = None) -> AsyncIterator[Runtime]:
    """Load the model, migrate the schema, open the pools; close them on the way out."""
    if model is None:
        model = await anyio.to_thread.run_sync(_load_model, settings)
    dsn = await anyio.to_thread.run_sync(_migrate, settings)
    primary = _pool(dsn, settings, "primary")
    readers = tuple(_pool(url, settings, f"reader-{i}") for i, url in enumerate(settings.database_read_urls))
    try:
        with map_errors():
            for pool in (primary, *readers):
                await pool.open(wait=True, timeout=max(10.0, settings.pool_timeout_s))
        log.info("serving with %s (%d connections at most)", mask_dsn(dsn), settings.pool_size)
        yield Runtime(
            settings=settings,
            model=model,
            primary=primary,
            readers=readers,
            write_settings=dataclasses.replace(settings, database_url=with_timeouts(dsn, settings)),
            write_slots=anyio.CapacityLimiter(max(1, settings.pool_size // 4)),
            embed_slots=anyio.CapacityLimiter(max(2, os.cpu_count() or 2)),
        )
    finally:
        for pool in (primary, *readers):
            await pool.close()
