"""Writes as plans: a generator yields the statements of one transaction, a sync or an async driver runs them.

A plan holds every decision of a write (which statements, in which order, what their rows
mean, which error to raise); `run_plan` and `arun_plan` only execute what it yields, in one
transaction, and answer each `Execute` with its rows (an empty list for a statement without
rows) and each `Copy` with an empty list. So the ingest's writes and the vector store's
async writes are the same statements, and cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
from psycopg import sql

__all__ = ["Copy", "Execute", "Plan", "arun_plan", "run_ops", "run_plan"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Execute:
    """One statement with its parameters; the driver answers with its rows."""

    statement: sql.Composable | str
    params: Mapping[str, Any] | Sequence[Any] | None = None


@dataclass(frozen=True, slots=True)
class Copy:
    """A binary `COPY ... FROM STDIN` of `rows`, whose columns have the PostgreSQL `types`."""

    statement: sql.Composable
    types: Sequence[str]
    rows: Iterable[Sequence[Any]]


Rows = list[tuple[Any, ...]]
Plan = Generator[Execute | Copy, Rows, T]


def run_ops(cur: psycopg.Cursor, plan: Plan[T]) -> T:
    """Drive `plan` on a cursor, inside whatever transaction the caller holds; returns the plan's value."""
    reply: Rows | None = None
    while True:
        try:
            op = plan.send(reply)  # type: ignore[arg-type]
        except StopIteration as done:
            return done.value
        if isinstance(op, Copy):
            with cur.copy(op.statement) as copy:
                copy.set_types(list(op.types))
                for row in op.rows:
                    copy.write_row(row)
            reply = []
        else:
            cur.execute(op.statement, op.params)
            reply = cur.fetchall() if cur.description is not None else []


def run_plan(conn: psycopg.Connection, plan: Plan[T]) -> T:
    """Drive `plan` in one transaction: all its statements commit, or none (the plan's errors roll it back)."""
    with conn.transaction(), conn.cursor() as cur:
        return run_ops(cur, plan)


async def arun_plan(conn: psycopg.AsyncConnection, plan: Plan[T]) -> T:
    """Async twin of `run_plan`: the same plan, awaited."""
    async with conn.transaction(), conn.cursor() as cur:
        reply: Rows | None = None
        while True:
            try:
                op = plan.send(reply)  # type: ignore[arg-type]
            except StopIteration as done:
                return done.value
            if isinstance(op, Copy):
                async with cur.copy(op.statement) as copy:
                    copy.set_types(list(op.types))
                    for row in op.rows:
                        await copy.write_row(row)
                reply = []
            else:
                await cur.execute(op.statement, op.params)
                reply = await cur.fetchall() if cur.description is not None else []
