"""Backup and restore as the `Engine` offers them: a collection to one file and back."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

import psycopg

from retriever.store.archive import BackupReport
from retriever.store.backup import backup_collection
from retriever.store.restore import restore_collection

__all__ = ["CollectionBackups"]


class CollectionBackups:
    """Mixed into `Engine`: each operation on a primary connection, errors mapped by `connection`."""

    connection: Callable[[], contextlib.AbstractContextManager[psycopg.Connection]]

    def backup(self, collection: str, path: str | Path) -> BackupReport:
        """Write the collection (registry row and tables, one snapshot) to the zip archive `path`.

        Raises `CollectionNotFound`, `CollectionIncomplete`, `InputError` (unwritable path).
        """
        with self.connection() as conn:
            return backup_collection(conn, collection, path)

    def restore(self, path: str | Path, collection: str | None = None) -> BackupReport:
        """Restore a backup, all or nothing, as `collection` (default: its backed-up name).

        Raises `InputError` (no such file, not a backup, the name is taken), `InvalidName`.
        """
        with self.connection() as conn:
            return restore_collection(conn, path, collection)
