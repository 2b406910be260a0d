"""Writes prepared batches in the background; an empty collection is bulk-loaded.

A bulk load (the collection starts empty) drops the search indexes, appends chunks
on two connections at once (`to_tsvector` is CPU-bound: use both cores), then builds
everything else in one pass: the HNSW graph on one connection while the BM25 posting
blocks, document frequencies and the GIN index build on another.
Each batch is still its own transaction, so a crash leaves whole documents only,
and the next ingest finishes an interrupted bulk load.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack

import numpy as np
import psycopg
from psycopg import sql

from retriever.store.collections import VECTOR, ensure_index, get_collection, missing_indexes
from retriever.store.postings import begin_bulk, bulk_pending, refresh_postings
from retriever.store.tables import Collection
from retriever.store.writer import LoadFinished, PreparedDocument, write_documents

__all__ = ["BatchWriter", "Connect"]

Connect = Callable[[], AbstractContextManager[psycopg.Connection]]
"""Lends a primary connection for a `with` block: a fresh one, or one from a pool."""


def _refused(exc: psycopg.Error) -> bool:
    """A data exception or a program limit (SQLSTATE classes 22, 54): the document's fault, not the server's."""
    return (exc.sqlstate or "")[:2] in ("22", "54")


def _reason(exc: psycopg.Error) -> str:
    return (exc.diag.message_primary or str(exc)).strip()


class BatchWriter:
    """Background writer of one ingest: `submit` batches, then `finish` (indexes, ANALYZE)."""

    def __init__(
        self,
        connect: Connect,
        collection: Collection,
        *,
        workers: int = 2,
    ) -> None:
        self._connect = connect
        self.collection = collection
        self.bulk = collection.chunk_count == 0
        if self.bulk:
            with connect() as conn:
                self.bulk = begin_bulk(conn, collection)
        self._workers = workers if self.bulk else 1  # normal writes serialise on the collection anyway
        self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="writer")
        self._pending: deque[Future[float]] = deque()
        self._local = threading.local()
        self._held = ExitStack()  # the writer threads' connections, given back by `close`
        self._lock = threading.Lock()
        self.rows = 0
        self.write_s = 0.0
        self.refused: list[tuple[PreparedDocument, str]] = []
        """Documents the database refused, with its reason; the rest of their batch is written."""

    def _connection(self) -> psycopg.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            with self._lock:
                conn = self._local.conn = self._held.enter_context(self._connect())
        return conn

    def _write(self, batch: Sequence[PreparedDocument], vectors: np.ndarray, replacing: bool) -> float:
        """Write one batch (its own transaction); if the database refuses it, each document alone.

        A refused document (a data exception or a limit: the input's fault, SQLSTATE classes
        22 and 54) goes to `refused` with the database's reason; the others are written.
        """
        start = time.perf_counter()
        try:
            self._write_batch(batch, vectors, replacing)
        except psycopg.Error as exc:
            if not _refused(exc):
                raise
            if len(batch) == 1:
                self.refused.append((batch[0], _reason(exc)))
            else:
                self._write_alone(batch, vectors, replacing)
        return time.perf_counter() - start

    def _write_alone(self, batch: Sequence[PreparedDocument], vectors: np.ndarray, replacing: bool) -> None:
        ends = np.cumsum([len(document.chunks) for document in batch])
        for document, end in zip(batch, ends, strict=True):
            try:
                self._write_batch([document], vectors[end - len(document.chunks) : end], replacing)
            except psycopg.Error as exc:
                if not _refused(exc):
                    raise
                self.refused.append((document, _reason(exc)))

    def _write_batch(self, batch: Sequence[PreparedDocument], vectors: np.ndarray, replacing: bool) -> None:
        """Write a batch, again when another writer got in the way.

        Stored hashes were read without the write lock, so another writer may have stored
        some of these documents since: outside a bulk load every batch replaces; a bulk batch
        that met another writer's document (or its locks) is written again, replacing; one
        that finds the load finished by another writer is written as any ingest writes.
        """
        conn = self._connection()
        while True:
            try:
                bulk = self.bulk
                write_documents(conn, self.collection, batch, vectors, bulk=bulk, replacing=replacing or not bulk)
                return
            except LoadFinished:
                self.bulk = False
            except (psycopg.errors.UniqueViolation, psycopg.errors.DeadlockDetected):
                if replacing or not self.bulk:
                    raise
                replacing = True

    def submit(self, batch: Sequence[PreparedDocument], vectors: np.ndarray, *, replacing: bool = True) -> None:
        """Queue one batch (its own transaction); blocks while `workers` batches are in flight."""
        while len(self._pending) >= self._workers:
            self.write_s += self._pending.popleft().result()
        self._pending.append(self._pool.submit(self._write, list(batch), vectors, replacing))
        self.rows += len(vectors)

    def finish(self) -> dict[str, float]:
        """Wait for the writes, then build what is missing and ANALYZE; returns seconds per phase.

        A failed batch is re-raised only after the committed ones are finished.
        """
        phases: dict[str, float] = {}
        start = time.perf_counter()
        failures: list[BaseException] = []
        while self._pending:  # every batch either committed whole or rolled back: finish what committed
            try:
                self.write_s += self._pending.popleft().result()
            except Exception as exc:
                failures.append(exc)
        self._pool.shutdown()
        self._held.close()  # the writer threads are done: their connections go back first
        phases["write"] = self.write_s  # summed over the writer threads
        start = time.perf_counter()
        with self._connect() as first, ExitStack() as side_connection:
            collection = get_collection(first, self.collection.name)
            finishing = self.bulk or bulk_pending(first, collection)
            missing = missing_indexes(first, collection)
            rows = collection.chunk_count + self.rows
            with ThreadPoolExecutor(1, thread_name_prefix="vector-index") as side:
                vector_index = None
                if VECTOR in missing:  # the slowest build runs beside the rest, on a second connection
                    second = side_connection.enter_context(self._connect())
                    # with the collection's own settings; an IVFFlat's k-means cells over the rows now loaded
                    vector_index = side.submit(ensure_index, second, collection, VECTOR, rows=rows)
                if finishing:
                    refresh_postings(first, collection)
                if "tsv_gin" in missing:
                    ensure_index(first, collection, "tsv_gin")
                if vector_index is not None:
                    vector_index.result()
            phases["indexes"] = time.perf_counter() - start
            if finishing or missing or self.rows >= 1000:
                start = time.perf_counter()
                postings = () if finishing else ("postings", "terms")  # a rebuild analyzed its own
                for suffix in ("", "documents", *postings):
                    first.execute(sql.SQL("ANALYZE {}").format(collection.table(suffix)))
                phases["analyze"] = time.perf_counter() - start
        if failures:
            raise failures[0]
        return phases

    def close(self) -> None:
        """Close the writer connections (idempotent)."""
        self._pool.shutdown(wait=True)
        self._held.close()

    def __enter__(self) -> BatchWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
