"""The document lifecycle the `Engine` offers: list, get, delete by id or filter, drop a collection."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import psycopg

from retriever.settings import Settings
from retriever.store import documents as lifecycle
from retriever.store.collections import get_collection
from retriever.store.drop import drop_locked

__all__ = ["DocumentLifecycle"]

T = TypeVar("T")


class DocumentLifecycle:
    """Mixed into `Engine`: each operation on a primary connection, errors mapped by `connection`."""

    settings: Settings
    connection: Callable[[], contextlib.AbstractContextManager[psycopg.Connection]]
    _collection_models: dict[str, Any]

    def _on(self, collection: str, operation: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`operation(conn, collection, ...)` on a primary connection; `CollectionNotFound` when there is none."""
        with self.connection() as conn:
            return operation(conn, get_collection(conn, collection), *args, **kwargs)

    def documents(
        self, collection: str, *, limit: int = 100, after: str | None = None, prefix: str | None = None
    ) -> lifecycle.DocumentPage:
        """A page of the collection's documents in id order (`next_after` continues it)."""
        return self._on(collection, lifecycle.list_documents, limit=limit, after=after, prefix=prefix)

    def document(self, collection: str, document_id: str) -> lifecycle.StoredDocument:
        """One stored document with its chunks in order; `DocumentNotFound` when it is not there."""
        return self._on(collection, lifecycle.get_document, document_id)

    def delete_document(self, collection: str, document_id: str) -> None:
        """Delete one document and its chunks; `DocumentNotFound` when it is not there."""
        self._on(collection, lifecycle.delete_by_ids, [document_id])

    def delete_documents(self, collection: str, document_ids: Sequence[str]) -> int:
        """Delete documents by id, all or none (`DocumentNotFound` names the missing); returns how many."""
        return self._on(collection, lifecycle.delete_by_ids, document_ids)

    def delete_where(self, collection: str, filter: Mapping[str, Any]) -> int:
        """Delete, whole, each document with a chunk matching `filter` (search's filters); returns how many."""
        return self._on(collection, lifecycle.delete_matching, filter, max_values=self.settings.max_filter_values)

    def drop_collection(self, collection: str) -> None:
        """Delete the collection with all its documents and tables; `CollectionNotFound` when absent."""
        with self.connection() as conn:
            drop_locked(conn, collection)
        self._collection_models.pop(
            collection, None
        )  # a collection made anew under this name takes the configured model
