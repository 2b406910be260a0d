"""The engine as the HTTP API runs it: pools for its lifetime, bounded concurrent writes and embeddings."""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from ingest import SourceDocument
from retriever.connections import ApiPools, borrow, open_api_pools
from retriever.engine import Engine, map_errors
from retriever.errors import DatabaseUnavailable
from retriever.store.citus import unreachable_nodes
from retriever.store.collections import list_collections_async
from retriever.store.documents import DocumentPage, StoredDocument
from retriever.store.pipeline import IngestReport
from retriever.store.tables import Collection

__all__ = ["ServingEngine"]

T = TypeVar("T")


log = logging.getLogger(__name__)


class ServingEngine(Engine):
    """An `Engine` whose connections come from the API's pools while `serving()` is open.

    Searches and writes alike are bounded by POOL_SIZE connections per pool; synchronous
    writes (ingest, delete) run in worker threads, a few at a time (write slots).
    """

    def _serving(self) -> ApiPools:
        if self._pools is None:
            raise RuntimeError("the engine is not serving: use `async with engine.serving()`")
        return self._pools

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[ServingEngine]:
        """Load the model, migrate, open the API's pools (POOL_SIZE each, reads and writes alike); close them after."""
        with map_errors():
            async with open_api_pools(self.settings, self.model) as pools:
                self._pools = pools
                try:
                    yield self
                finally:
                    self._pools = None

    async def _in_write_slot(self, func: Callable[..., T], *args: object) -> T:
        """Run a synchronous write in a worker thread once a write slot is free (bounded wait, then 503)."""
        slots = self._serving().write_slots
        with anyio.move_on_after(self.settings.pool_timeout_s) as waited:
            await slots.acquire()
        if waited.cancelled_caught:
            raise DatabaseUnavailable("every write slot stayed busy; retry later")
        try:
            return await anyio.to_thread.run_sync(func, *args)
        finally:
            slots.release()

    async def aingest_records(
        self, collection: str, records: Sequence[Mapping[str, Any]], source: str, **options: Any
    ) -> tuple[list[SourceDocument], IngestReport]:
        """`ingest_records` (`options`: its keywords) in a write slot."""
        ingest = functools.partial(self.ingest_records, **options)
        return await self._in_write_slot(ingest, collection, records, source)

    async def adelete_document(self, collection: str, document_id: str) -> None:
        """`delete_document` in a write slot."""
        await self._in_write_slot(self.delete_document, collection, document_id)

    async def adelete_where(self, collection: str, filter: Mapping[str, Any]) -> int:
        """`delete_where` in a write slot."""
        return await self._in_write_slot(self.delete_where, collection, filter)

    async def adrop_collection(self, collection: str) -> None:
        """`drop_collection` in a write slot."""
        await self._in_write_slot(self.drop_collection, collection)

    async def adocuments(
        self, collection: str, *, limit: int = 100, after: str | None = None, prefix: str | None = None
    ) -> DocumentPage:
        """`documents` in a worker thread, on the write pool (a listing reads the primary, as writes leave it)."""
        listing = functools.partial(self.documents, limit=limit, after=after, prefix=prefix)
        return await anyio.to_thread.run_sync(listing, collection)

    async def adocument(self, collection: str, document_id: str) -> StoredDocument:
        """`document` in a worker thread, on the write pool."""
        return await anyio.to_thread.run_sync(self.document, collection, document_id)

    async def acollections(self) -> list[Collection]:
        """Async `collections`, from the API's primary pool."""
        with map_errors():
            async with borrow(self._serving().primary) as conn:
                return await list_collections_async(conn)

    async def ready(self) -> None:
        """Raise `DatabaseUnavailable` unless every database answers (on Citus, every worker too)."""
        pools = self._serving()
        for pool in (pools.primary, *pools.readers):
            with map_errors():
                async with borrow(pool) as conn:
                    if lost := await unreachable_nodes(conn):
                        log.warning("not ready: the cluster's node %s does not answer", ", ".join(lost))
                        raise DatabaseUnavailable(
                            f"database unreachable: the cluster's node {', '.join(lost)} does not answer",
                            "the database is unreachable",
                        )
