"""Re-embedding as the `Engine` offers it: every chunk embedded with another model, then one swap.

The work is `retriever.store.reembed`'s; here it is driven batch by batch with progress,
one run per collection at a time, and the engine's searches follow the collection to the
new model once it is swapped in (`retriever.searching`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import psycopg
from psycopg import sql

from retriever.embeddings import EmbeddingModel
from retriever.errors import EmbeddingMismatch, InputError
from retriever.store import reembed as store
from retriever.store.collections import get_collection
from retriever.store.progress import Progress
from retriever.store.tables import Collection, validate_name

__all__ = ["CollectionReembedding", "ReembedReport"]

T = TypeVar("T")

_REEMBED_LOCK = "SELECT pg_try_advisory_lock(hashtext('hybrid_rag.reembed:' || %(collection)s))"
_LOCK_ATTEMPTS = 120  # about four minutes of a second's wait and a second's pause
_REEMBED_UNLOCK = "SELECT pg_advisory_unlock(hashtext('hybrid_rag.reembed:' || %(collection)s))"


@dataclass(frozen=True, slots=True)
class ReembedReport:
    """What a re-embed did: the models before and after, chunks embedded by this run, and its seconds."""

    collection: str
    previous_model: str
    model: str
    dimensions: int
    embedded: int
    resumed: bool
    seconds: float


class CollectionReembedding:
    """Mixed into `Engine`: `reembed`, on a primary connection, errors mapped by `connection`."""

    models: dict[str, EmbeddingModel]
    _collection_models: dict[str, EmbeddingModel]
    connection: Callable[[], contextlib.AbstractContextManager[psycopg.Connection]]

    def reembed(
        self,
        collection: str,
        model: EmbeddingModel,
        *,
        batch_size: int = 256,
        storage: str | None = None,
        progress: Callable[[int], Progress] | None = None,
    ) -> ReembedReport:
        """Embed every chunk of `collection` with `model` beside its live vectors, then swap them in at once.

        Searches meanwhile answer with the old model, then with `model` (this engine follows
        at once; others on their next search), never a mix. Resumable: rerun it after a
        crash and only chunks without a new vector are embedded. Ingests keep working until the
        swap and need `model` after it. `storage` (`vector`, `halfvec`) changes the column's type
        with the model (a `vector` index holds at most 2,000 dimensions, a `halfvec` one 4,000);
        `progress`, given the number of chunks, makes the progress display. Raises
        `CollectionNotFound`, `InputError` (the same model, dimensions its index cannot hold, a
        re-embed of it already running), `EmbeddingMismatch` (a model whose vectors change size).
        """
        start = time.perf_counter()
        model = model.load()
        self.models[model.name] = model  # searches here can embed with it once it is swapped in
        with self.connection() as conn:
            validate_name(collection)
            if not conn.execute(_REEMBED_LOCK, {"collection": collection}).fetchone()[0]:  # type: ignore[index]
                raise InputError(f"collection {collection!r} is being re-embedded by another process")
            try:
                current = get_collection(conn, collection)  # as the last re-embed left it
                target = _retrying(store.prepare_reembed, conn, current, model.name, model.dimensions, storage=storage)
                embedded, total = self._embed_pending(conn, current, model, batch_size, progress)
                store.index_next(conn, current, target, rows=total)
                counter = _Counted(model, target.dimensions)
                swapped = _retrying(store.swap_embeddings, conn, current, target, counter.embed, batch=batch_size)
                _retrying(store.require_embeddings, conn, swapped)
                conn.execute(sql.SQL("ANALYZE {}").format(current.table()))
            finally:
                conn.execute(_REEMBED_UNLOCK, {"collection": collection})
        self._collection_models[collection] = model
        return ReembedReport(
            collection,
            current.embedding_model,
            swapped.embedding_model,
            swapped.dimensions,
            embedded + counter.count,
            target.resumed,
            time.perf_counter() - start,
        )

    def _embed_pending(
        self,
        conn: psycopg.Connection,
        collection: Collection,
        model: EmbeddingModel,
        batch_size: int,
        progress: Callable[[int], Progress] | None,
    ) -> tuple[int, int]:
        """Embed the chunks still without a new vector, a committed batch at a time; returns how many, and
        how many chunks the collection had when it began."""
        pending, total = store.counts(conn, collection)
        shown = progress(total) if progress is not None else None
        if shown is not None:
            shown.advance(total - pending)
        counter, after = _Counted(model, model.dimensions), 0
        while rows := store.pending_chunks(conn, collection, batch_size, after):
            vectors = counter.embed([text for *_, text in rows])
            with conn.transaction():
                store.write_next(conn, collection, rows, vectors)
            after = rows[-1][0]
            if shown is not None:
                shown.advance(len(rows))
        if shown is not None:
            shown.close()
        return counter.count, total


def _retrying(operation: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`operation`, tried again while it finds the chunk table locked (a backup, a long search, VACUUM):
    it waits a second at a time for its lock, so searches never queue behind it for longer."""
    for _ in range(_LOCK_ATTEMPTS - 1):
        try:
            return operation(*args, **kwargs)
        except psycopg.errors.LockNotAvailable:
            time.sleep(1.0)
    return operation(*args, **kwargs)


class _Counted:
    """`model.embed_documents`, counting the texts and refusing vectors of another size than the target's."""

    def __init__(self, model: EmbeddingModel, dimensions: int) -> None:
        self.model, self.dimensions, self.count = model, dimensions, 0

    def embed(self, texts: list[str]) -> np.ndarray:
        vectors = self.model.embed_documents(texts)
        if vectors.shape[1] != self.dimensions:
            raise EmbeddingMismatch(
                f"embeddings {self.model.name!r} returned {vectors.shape[1]}-dim vectors where the re-embed "
                f"writes {self.dimensions}"
            )
        self.count += len(texts)
        return vectors
