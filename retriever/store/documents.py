"""A collection's documents over their life: list, read, delete (by id or by filter), prune.

Every delete goes through `retriever.store.writer.delete_documents`, so BM25 statistics,
document frequencies and posting blocks stay right; every write here holds the collection's
write lock for its whole transaction, so it never interleaves with a concurrent ingest.

Deleting by filter deletes documents whole: a filter matches chunks, and every document
with at least one matching chunk is deleted with all its chunks; a document is never left
with part of its chunks.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import class_row

from ingest import SkippedSource, SourceDocument, file_document_id
from retriever.errors import DocumentNotFound, InputError
from retriever.filters import compile_filter
from retriever.store.citus import NAMED, anchor_of, named
from retriever.store.tables import Collection
from retriever.store.writer import delete_documents, lock_for_writing

__all__ = [
    "CHUNK_KEYS",
    "DocumentInfo",
    "DocumentPage",
    "PathsRead",
    "StoredChunk",
    "StoredDocument",
    "delete_by_ids",
    "delete_matching",
    "get_document",
    "list_documents",
    "prune_documents",
]

CHUNK_KEYS = ("chunk_index", "start_index")
"""Chunk metadata that differs from chunk to chunk; the rest is the document's."""


@dataclass(frozen=True, slots=True)
class DocumentInfo:
    """One document in a listing: its id, how many chunks it has, when it was last written."""

    id: str
    chunks: int
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class DocumentPage:
    """A page of documents in id order; `next_after` is the cursor for the next page (None: the last)."""

    documents: list[DocumentInfo]
    next_after: str | None

    def to_json(self) -> dict[str, Any]:
        """`{"documents": [{"id", "chunks", "updated_at"}], "next_after"}`: `documents --json` and the HTTP listing."""
        return {
            "documents": [
                {"id": d.id, "chunks": d.chunks, "updated_at": d.updated_at.isoformat()} for d in self.documents
            ],
            "next_after": self.next_after,
        }


@dataclass(frozen=True, slots=True)
class StoredChunk:
    """One chunk of a stored document: its id, its position (from 0) and its content (title first)."""

    id: str
    index: int
    content: str


@dataclass(frozen=True, slots=True)
class StoredDocument:
    """A stored document: id, content hash (what re-ingest compares), last write, metadata and chunks in order.

    `metadata` is what its chunks share: the user's metadata with `source` and `title`
    (every chunk key but `chunk_index` and `start_index`).
    """

    id: str
    hash: str
    updated_at: datetime
    metadata: dict[str, Any]
    chunks: list[StoredChunk] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """`{"id", "hash", "updated_at", "metadata", "chunks": [{"id", "index", "content"}]}` (CLI --json, HTTP)."""
        return {
            "id": self.id,
            "hash": self.hash,
            "updated_at": self.updated_at.isoformat(),
            "metadata": self.metadata,
            "chunks": [{"id": c.id, "index": c.index, "content": c.content} for c in self.chunks],
        }


def _format(statement: str, collection: Collection, **parts: sql.Composable) -> sql.Composed:
    return sql.SQL(statement).format(chunks=collection.table(), documents=collection.table("documents"), **parts)


_LIST = """
SELECT document_id AS id, chunk_count AS chunks, updated_at FROM {documents}
WHERE (%(after)s::text IS NULL OR document_id > %(after)s)
  AND (%(prefix)s::text IS NULL OR starts_with(document_id, %(prefix)s))
ORDER BY document_id
LIMIT %(limit)s
"""


def list_documents(
    conn: psycopg.Connection, collection: Collection, *, limit: int, after: str | None = None, prefix: str | None = None
) -> DocumentPage:
    """Up to `limit` documents in id order, after the cursor `after`, with ids starting with `prefix`.

    Raises `InputError` for a `limit` below 1.
    """
    if limit < 1:
        raise InputError(f"limit must be at least 1, got {limit}")
    with conn.cursor(row_factory=class_row(DocumentInfo)) as cur:
        cur.execute(_format(_LIST, collection), {"after": after, "prefix": prefix, "limit": limit + 1})
        found = cur.fetchall()
    page = found[:limit]
    return DocumentPage(page, page[-1].id if len(found) > limit else None)


_GET = """
SELECT d.hash, d.updated_at, c.id, c.chunk_index, c.content, c.metadata
FROM {documents} d LEFT JOIN {chunks} c ON c.anchor = d.anchor AND c.document_id = d.document_id
WHERE d.anchor = %(anchor)s AND d.document_id = %(id)s
ORDER BY c.chunk_index
"""


def get_document(conn: psycopg.Connection, collection: Collection, document_id: str) -> StoredDocument:
    """The document with its chunks in order (one statement: one snapshot); `DocumentNotFound` when absent."""
    values = {"anchor": anchor_of(collection.anchors, document_id), "id": document_id}  # on Citus, one shard's
    rows = conn.execute(_format(_GET, collection), values).fetchall()
    if not rows:
        raise DocumentNotFound(f"no document {document_id!r} in collection {collection.name!r}")
    chunks = [StoredChunk(*row[2:5]) for row in rows if row[2] is not None]
    shared = {key: value for key, value in (rows[0][5] or {}).items() if key not in CHUNK_KEYS}
    return StoredDocument(document_id, rows[0][0], rows[0][1], shared, chunks)


_EXISTING = f"SELECT document_id FROM {{documents}} WHERE {NAMED}"


def delete_by_ids(conn: psycopg.Connection, collection: Collection, document_ids: Sequence[str]) -> int:
    """Delete these documents, all or none: `DocumentNotFound` naming those that are not there."""
    ids = list(dict.fromkeys(document_ids))
    with conn.transaction(), conn.cursor() as cur:
        lock_for_writing(cur, collection)
        existing = {row[0] for row in cur.execute(_format(_EXISTING, collection), named(collection.anchors, ids))}
        missing = [document_id for document_id in ids if document_id not in existing]
        if missing:
            listed = ", ".join(repr(document_id) for document_id in missing[:5])
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise DocumentNotFound(f"no document {listed}{more} in collection {collection.name!r}")
        return delete_documents(conn, collection, ids)


_MATCHING = "SELECT DISTINCT document_id FROM {chunks} c WHERE {condition}"


def delete_matching(
    conn: psycopg.Connection, collection: Collection, spec: Mapping[str, Any], *, max_values: int | None = None
) -> int:
    """Delete every document with at least one chunk matching the metadata filter `spec`, whole; returns how many.

    The filter language is search's (`retriever.filters`). An empty filter would match
    every document: it raises `InvalidFilter`-like `InputError` (drop the collection instead).
    """
    if not isinstance(spec, Mapping) or not spec:
        raise InputError("an empty filter would delete every document: give a condition, or drop the collection")
    condition, params = compile_filter(spec, sql.Identifier("c"), max_values=max_values)
    with conn.transaction(), conn.cursor() as cur:
        lock_for_writing(cur, collection)  # the matching set cannot change before the delete
        ids = [row[0] for row in cur.execute(_format(_MATCHING, collection, condition=condition), params)]
        return delete_documents(conn, collection, ids) if ids else 0


_UNDER = """
SELECT document_id, metadata ->> 'source' FROM {chunks}
WHERE chunk_index = 0
  AND (metadata ->> 'source' = ANY(%(roots)s)
       OR EXISTS (SELECT FROM unnest(%(folders)s::text[]) AS f(prefix)
                  WHERE starts_with(metadata ->> 'source', f.prefix)))
"""


class PathsRead:
    """What an ingest of files and folders read and skipped: what `prune` needs to know."""

    def __init__(self, paths: Iterable[str | os.PathLike[str]] | str | os.PathLike[str]) -> None:
        given = [paths] if isinstance(paths, str | os.PathLike) else list(paths)  # a lone path, as iter_documents
        self.given = [os.fspath(path) for path in given]
        self.roots = [file_document_id(path) for path in given]
        self.seen: dict[str, str] = {}  # document id -> source, of every document read
        self.skipped: list[SkippedSource] = []

    def track(self, documents: Iterable[SourceDocument]) -> Iterator[SourceDocument]:
        """Pass `documents` through, noting each."""
        for document in documents:
            self.seen[document.document_id] = document.source
            yield document

    def prune(self, conn: psycopg.Connection, collection: Collection) -> int:
        """`prune_documents` under the paths read, once they have all been read."""
        unclean = {file_document_id(item.path) for item in self.skipped}
        clean = set(self.seen.values()) - unclean
        pruned = prune_documents(conn, collection, self.roots, seen=set(self.seen), read_cleanly=clean)
        return pruned + _prune_renamed(conn, collection, self._earlier_ids())

    def _earlier_ids(self) -> dict[str, str]:
        """The ids the files read had under the earlier rule (a folder's name and the path inside it;
        a file named directly, its path as given, normalised), each to the id it has now."""
        earlier: dict[str, str] = {}
        files = [document_id for document_id, source in self.seen.items() if document_id == source]
        for path, root in zip(self.given, self.roots, strict=True):
            if not os.path.isdir(root):
                earlier[os.path.normpath(path).replace(os.sep, "/")] = root
                continue
            name, inside = os.path.basename(os.path.abspath(path)), root.rstrip("/") + "/"
            earlier.update({f"{name}/{i.removeprefix(inside)}": i for i in files if i.startswith(inside)})
        return {old: new for old, new in earlier.items() if old != new and old not in self.seen}


_RENAMED = f"SELECT document_id, metadata ->> 'source' FROM {{chunks}} WHERE chunk_index = 0 AND {NAMED}"


def _prune_renamed(conn: psycopg.Connection, collection: Collection, earlier: Mapping[str, str]) -> int:
    """Delete the documents stored under a file's earlier id, now that it has been read under its real path.

    Only a document whose `source` names a file of the same name goes (not one posted over HTTP under
    a path-like id): collections built before ids were real paths are cleaned by one `ingest --prune`.
    """
    found = conn.execute(_format(_RENAMED, collection), named(collection.anchors, list(earlier))) if earlier else []
    rows = list(found)
    stale = [
        old
        for old, source in rows
        if source and not source.startswith("http:") and PurePosixPath(source).name == PurePosixPath(earlier[old]).name
    ]
    return delete_documents(conn, collection, stale) if stale else 0


def prune_documents(
    conn: psycopg.Connection,
    collection: Collection,
    roots: Iterable[str],
    *,
    seen: set[str],
    read_cleanly: set[str],
) -> int:
    """Delete the documents under `roots` (real paths) whose files are gone; returns how many.

    A document is under a root when its `source` is the root or lies inside it. It is pruned
    when nothing exists at its `source` any more, or, for a JSONL record (whose `source` is
    the corpus file, not its own id), when this run read that file without skipping a line
    (`read_cleanly`) and its id was not among the documents read (`seen`). A file that still
    exists but was skipped this time (unreadable, now empty) keeps its document.
    """
    roots = list(dict.fromkeys(roots))
    folders = [root if root.endswith("/") else root + "/" for root in roots if os.path.isdir(root)]
    with conn.cursor() as cur:
        found = cur.execute(_format(_UNDER, collection), {"roots": roots, "folders": folders}).fetchall()
    gone = [
        document_id
        for document_id, source in found
        if not os.path.exists(source) or (source != document_id and source in read_cleanly and document_id not in seen)
    ]
    return delete_documents(conn, collection, gone) if gone else 0
