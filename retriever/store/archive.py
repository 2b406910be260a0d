"""The backup archive's format: its files, their columns, and what a backup or a restore reports.

`retriever.store.backup` writes the archive, `retriever.store.restore` reads it back.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

from retriever.store.tables import Collection

__all__ = [
    "FORMAT",
    "TABLES",
    "TOPICS",
    "TOPICS_COLUMNS",
    "VERSION",
    "VERSIONS_READ",
    "BackupReport",
    "archived_columns",
    "archived_table",
    "columns_of",
]

FORMAT = "hybrid-rag collection backup"
VERSION = 2
# Version 1 archives wrote the blocks without `trimmed`, and also held `tombstones.tsv`: deleted
# chunks whose postings were still in the blocks. A restore of one that has any cuts the blocks anew.
VERSIONS_READ = (1, 2)
_VERSION_1 = {"postings": ("term", "max_impact", "chunk_keys", "tfs", "lengths")}

# Each table's file in the archive and the columns written, in order (the chunk table's `tsv`
# is generated, its `key` kept: the posting blocks name chunks by key).
TABLES: dict[str, tuple[str, ...]] = {
    "chunks": ("id", "key", "document_id", "chunk_index", "content", "metadata", "content_hash", "embedding"),
    "documents": ("document_id", "hash", "chunk_count", "updated_at"),
    "postings": ("term", "max_impact", "chunk_keys", "tfs", "lengths", "trimmed"),
    "terms": ("term", "df"),
}
# The collection's topics: rows of the shared `hybrid_rag.topics` table, keyed by the collection's name.
TOPICS = ("topic", "label", "terms", "size", "centroid", "metadata_key")
TOPICS_COLUMNS = sql.SQL(", ").join(map(sql.Identifier, TOPICS))


@dataclass(frozen=True, slots=True)
class BackupReport:
    """What a backup wrote or a restore wrote: the collection's name and each table's rows (a restore that cuts
    the posting blocks anew reports the blocks and terms it made)."""

    collection: str
    rows: dict[str, int]
    path: str


def archived_table(collection: Collection, name: str) -> sql.Identifier:
    """The collection's table whose rows the archive's file `name` holds."""
    return collection.table("" if name == "chunks" else name)


def columns_of(name: str, version: int = VERSION) -> tuple[str, ...]:
    """The columns of the archive's file `name` in a backup of `version`, in order."""
    return _VERSION_1.get(name, TABLES[name]) if version == 1 else TABLES[name]


def archived_columns(name: str, version: int = VERSION) -> sql.Composed:
    """`columns_of` as SQL."""
    return sql.SQL(", ").join(map(sql.Identifier, columns_of(name, version)))
