"""Dropping a collection under its write lock, without deadlocking the searches that read it.

`drop_plan` is the one transaction of a drop; `drop_locked` and `adrop_locked` run it,
again while searches hold the collection's tables, for at most `wait_s` seconds.
"""

from __future__ import annotations

import asyncio
import time

import psycopg
from psycopg import sql

from retriever.errors import CollectionNotFound, DatabaseUnavailable
from retriever.store.collections import REGISTRY_COLUMNS
from retriever.store.plans import Execute, Plan, arun_plan, run_plan
from retriever.store.tables import TABLE_SUFFIXES, Collection, validate_name
from retriever.store.writer import locked

__all__ = ["adrop_locked", "drop_locked", "drop_plan"]

_DROP_LOCK_TIMEOUT_MS = 250  # below PostgreSQL's deadlock_timeout (1 s): the drop gives way before a deadlock
_DROP_WAIT_S = 30.0
_RETRY_S = 0.05
_REGISTRY = sql.SQL("SELECT {} FROM hybrid_rag.collections WHERE name = %(name)s").format(REGISTRY_COLUMNS)


def drop_plan(name: str) -> Plan[None]:
    """Drop the collection and all its tables under its write lock; `CollectionNotFound` when absent.

    Every table is locked in one step, with a lock timeout below the deadlock timeout: a
    search that locked some of the tables makes the drop fail with `LockNotAvailable`
    (the caller retries) rather than deadlock.
    """
    found = yield Execute(_REGISTRY, {"name": validate_name(name)})
    if not found:
        raise CollectionNotFound(f"no collection named {name!r}")
    collection = Collection(*found[0])
    yield from locked(collection)
    yield Execute("SELECT set_config('lock_timeout', %s, true)", (f"{_DROP_LOCK_TIMEOUT_MS}ms",))
    tables = [collection.table(suffix) for suffix in TABLE_SUFFIXES]
    yield Execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(sql.SQL(", ").join(tables)))
    yield Execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.SQL(", ").join(tables)))
    yield Execute("DELETE FROM hybrid_rag.collections WHERE name = %s", (name,))


def _busy(name: str, deadline: float) -> None:
    if time.monotonic() > deadline:
        raise DatabaseUnavailable(f"searches of collection {name!r} kept it busy; retry the drop") from None


def drop_locked(conn: psycopg.Connection, name: str, *, wait_s: float = _DROP_WAIT_S) -> None:
    """Drop the collection (`drop_plan`), giving way while searches hold its tables.

    A concurrent write either finishes before the drop or, queued behind it, finds the
    collection gone (`CollectionNotFound`). After `wait_s` seconds of searches in the
    way, `DatabaseUnavailable`.
    """
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return run_plan(conn, drop_plan(name))
        except psycopg.errors.LockNotAvailable:
            _busy(name, deadline)
        time.sleep(_RETRY_S)


async def adrop_locked(conn: psycopg.AsyncConnection, name: str, *, wait_s: float = _DROP_WAIT_S) -> None:
    """Async `drop_locked`: the same plan, awaited."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return await arun_plan(conn, drop_plan(name))
        except psycopg.errors.LockNotAvailable:
            _busy(name, deadline)
        await asyncio.sleep(_RETRY_S)
