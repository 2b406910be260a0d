"""A collection's backup: its registry row and every one of its tables, from one snapshot, in one file.

The file is a zip archive:

    manifest.json     format, version, the registry row (model, dimensions, language, vector
                      index, BM25's N and Σ lengths, created_at) and each table's columns and rows
    chunks.tsv        COPY text of the chunk table (without `tsv`, which PostgreSQL
                      recomputes from the content with the collection's configuration)
    documents.tsv     COPY text of each side table
    postings.tsv
    terms.tsv
    tombstones.tsv
    topics.tsv        the collection's rows of `hybrid_rag.topics` (`hybrid-rag topics`)

A backup reads everything inside one REPEATABLE READ, READ ONLY transaction, so the
tables and the registry row agree even while writers run. A restore writes everything
inside one transaction — the collection, its rows with their chunk keys (the posting
blocks refer to them), its statistics and its search indexes — so a restore that fails
leaves nothing behind. The COPY text format is PostgreSQL's own and version-neutral: a
backup restores into another database or server version that has pgvector, under the
same name or another one.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import psycopg
from psycopg import sql

from retriever.errors import CollectionIncomplete, CollectionNotFound, InputError
from retriever.store.collections import create_collection, ensure_indexes, get_collection
from retriever.store.tables import TABLE_SUFFIXES, Collection, table_of, validate_name
from retriever.store.vector_index import VectorIndex

__all__ = ["FORMAT", "TABLES", "BackupReport", "backup_collection", "read_manifest", "restore_collection"]

FORMAT = "hybrid-rag collection backup"
_VERSION = 1
_COPY_CHUNK = 1 << 20  # bytes handed to COPY at a time on restore

# Each table's file in the archive and the columns written, in order (the chunk table's `tsv`
# is generated, its `key` kept: the posting blocks name chunks by key).
TABLES: dict[str, tuple[str, ...]] = {
    "chunks": ("id", "key", "document_id", "chunk_index", "content", "metadata", "content_hash", "embedding"),
    "documents": ("document_id", "hash", "chunk_count", "updated_at"),
    "postings": ("term", "max_impact", "chunk_keys", "tfs", "lengths"),
    "terms": ("term", "df"),
    "tombstones": ("key",),
}
# The collection's topics: rows of the shared `hybrid_rag.topics` table, keyed by the collection's name.
_TOPICS = ("topic", "label", "terms", "size", "centroid", "metadata_key")
_TOPICS_COLUMNS = sql.SQL(", ").join(map(sql.Identifier, _TOPICS))
_TOPICS_OUT = "COPY (SELECT {columns} FROM hybrid_rag.topics WHERE collection = {name} ORDER BY topic) TO STDOUT"
_TOPICS_IN = """
CREATE TEMPORARY TABLE restored_topics (
    topic integer, label text, terms text[], size integer, centroid vector, metadata_key text
) ON COMMIT DROP
"""


@dataclass(frozen=True, slots=True)
class BackupReport:
    """What a backup wrote or a restore read: the collection's name and each table's rows."""

    collection: str
    rows: dict[str, int]
    path: str


def _table(collection: Collection, name: str) -> sql.Identifier:
    return collection.table("" if name == "chunks" else name)


def _columns(name: str) -> sql.Composed:
    return sql.SQL(", ").join(map(sql.Identifier, TABLES[name]))


def backup_collection(conn: psycopg.Connection, name: str, path: str | Path) -> BackupReport:
    """Write collection `name` to the zip archive `path` (replaced if it exists), from one snapshot.

    Raises `CollectionNotFound`, `CollectionIncomplete` (a first load that did not finish:
    complete it with `maintain` first), `InputError` when `path` cannot be written.
    """
    target = Path(path)
    try:  # written beside the target and moved over it once whole: a failed backup leaves the last one intact
        partial = tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{target.name}.", delete=False)
    except OSError as error:
        raise InputError(f"cannot write the backup {str(target)!r}: {error.strerror or error}") from None
    try:
        with partial:
            rows = _write_archive(conn, name, partial)
            partial.flush()
            os.fsync(partial.fileno())
        os.replace(partial.name, target)
    except OSError as error:
        raise InputError(f"cannot write the backup {str(target)!r}: {error.strerror or error}") from None
    finally:
        Path(partial.name).unlink(missing_ok=True)
    return BackupReport(name, rows, str(target))


def _write_archive(conn: psycopg.Connection, name: str, file: IO[bytes]) -> dict[str, int]:
    """The collection's tables and manifest into `file`, from one snapshot; returns each table's rows."""
    rows: dict[str, int] = {}
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        # before the snapshot (LOCK takes none): a re-embed's swap or a posting rebuild, which
        # change the tables' definitions, then fall wholly before this backup or after it
        tables = [table_of(validate_name(name), suffix) for suffix in TABLE_SUFFIXES]
        try:
            cur.execute(sql.SQL("LOCK TABLE {} IN ACCESS SHARE MODE").format(sql.SQL(", ").join(tables)))
        except psycopg.errors.UndefinedTable:
            raise CollectionNotFound(f"no collection named {name!r}") from None
        collection = get_collection(conn, name)
        if not collection.complete:
            raise CollectionIncomplete(
                f"collection {name!r} has an unfinished first load: run `hybrid-rag maintain -c {name}` first"
            )
        with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
            for table, statement in _copies_out(collection):
                with archive.open(f"{table}.tsv", "w", force_zip64=True) as member, cur.copy(statement) as copy:
                    lines = 0
                    for data in copy:
                        member.write(data)
                        lines += bytes(data).count(b"\n")
                rows[table] = lines  # COPY text escapes newlines inside values: one line per row
            archive.writestr("manifest.json", json.dumps(_manifest(collection, rows), indent=2))
    return rows


def _copies_out(collection: Collection) -> list[tuple[str, sql.Composed]]:
    """Each file of the archive with the COPY statement that writes it."""
    copies = [
        (table, sql.SQL("COPY (SELECT {} FROM {}) TO STDOUT").format(_columns(table), _table(collection, table)))
        for table in TABLES
    ]
    topics = sql.SQL(_TOPICS_OUT).format(columns=_TOPICS_COLUMNS, name=sql.Literal(collection.name))
    return [*copies, ("topics", topics)]


def _manifest(collection: Collection, rows: dict[str, int]) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": _VERSION,
        "collection": {
            "name": collection.name,
            "embedding_model": collection.embedding_model,
            "dimensions": collection.dimensions,
            "language": collection.language,
            "accent_insensitive": collection.accent_insensitive,
            "vector_index": collection.vector_index.to_json(),
            "chunk_count": collection.chunk_count,
            "total_length": collection.total_length,
            "created_at": collection.created_at.isoformat(),
        },
        "tables": {
            table: {"columns": list(TABLES.get(table, _TOPICS)), "rows": count} for table, count in rows.items()
        },
    }


def read_manifest(archive: zipfile.ZipFile, source: str) -> dict[str, Any]:
    """The archive's manifest, checked against what this version can restore; `InputError` otherwise."""
    try:
        manifest = json.loads(archive.read("manifest.json"))
    except (KeyError, ValueError, zipfile.BadZipFile):
        raise InputError(f"{source!r} is not a hybrid-rag backup (no readable manifest.json)") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InputError(f"{source!r} is not a hybrid-rag backup")
    if manifest.get("version") != _VERSION:
        raise InputError(f"{source!r} is a version {manifest.get('version')!r} backup; this release reads {_VERSION}")
    for table, columns in TABLES.items():
        described = manifest.get("tables")
        described = described.get(table) if isinstance(described, dict) else None
        if not isinstance(described, dict) or described.get("columns") != list(columns):
            raise InputError(f"{source!r} is damaged: its {table!r} table is missing or has other columns")
        if f"{table}.tsv" not in archive.namelist():
            raise InputError(f"{source!r} is damaged: {table}.tsv is missing")
    try:
        recorded = manifest["collection"]
        manifest["collection"] = {
            "name": str(recorded["name"]),
            "embedding_model": str(recorded["embedding_model"]),
            "dimensions": int(recorded["dimensions"]),
            "language": str(recorded["language"]),
            "accent_insensitive": bool(recorded["accent_insensitive"]),
            "chunk_count": int(recorded["chunk_count"]),
            "total_length": int(recorded["total_length"]),
            "created_at": datetime.fromisoformat(recorded["created_at"]),
            # backups made before collections chose their index have the one every collection had then
            "vector_index": VectorIndex(**recorded.get("vector_index", {})).validate(int(recorded["dimensions"])),
        }
    except (KeyError, TypeError, ValueError):
        raise InputError(f"{source!r} is damaged: its manifest does not describe a collection") from None
    return manifest


def restore_collection(conn: psycopg.Connection, path: str | Path, name: str | None = None) -> BackupReport:
    """Restore the backup at `path` as collection `name` (default: the name it was backed up under).

    All or nothing, in one transaction. Raises `InputError` when the file is missing or not a
    backup, or a collection of that name exists (drop it, or restore under another name);
    `InvalidName`; and `create_collection`'s errors (e.g. a server without unaccent for an
    accent-insensitive collection).
    """
    source = str(path)
    try:
        archive = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise InputError(f"no backup at {source!r}") from None
    except (OSError, zipfile.BadZipFile) as error:
        raise InputError(f"cannot read {source!r} as a hybrid-rag backup: {error}") from None
    with archive:
        manifest = read_manifest(archive, source)
        recorded = manifest["collection"]
        target = validate_name(name or recorded["name"])
        with conn.transaction():
            # the lock create_collection takes, taken first: two restores to one name find it taken, one after the other
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('hybrid_rag.collection:' || %s))", (target,))
            _refuse_existing(conn, target)
            collection = create_collection(
                conn,
                target,
                embedding_model=recorded["embedding_model"],
                dimensions=recorded["dimensions"],
                language=recorded["language"],
                accent_insensitive=recorded["accent_insensitive"],
                index=recorded["vector_index"],
            )
            rows = {table: _copy_in(conn, collection, table, archive) for table in TABLES}
            if "topics.tsv" in archive.namelist():
                rows["topics"] = _topics_in(conn, collection, archive)
            _restore_statistics(conn, collection, recorded)
            ensure_indexes(conn, get_collection(conn, target))
            conn.execute(sql.SQL("ANALYZE {}").format(collection.table()))
    return BackupReport(target, rows, source)


def _refuse_existing(conn: psycopg.Connection, name: str) -> None:
    try:
        get_collection(conn, name)
    except CollectionNotFound:
        return
    raise InputError(f"collection {name!r} exists: drop it first, or restore under another name")


def _copy_in(conn: psycopg.Connection, collection: Collection, table: str, archive: zipfile.ZipFile) -> int:
    """COPY one table's file into the new collection; returns its rows."""
    statement = sql.SQL("COPY {table} ({columns}) FROM STDIN").format(
        table=_table(collection, table), columns=_columns(table)
    )
    with archive.open(f"{table}.tsv") as member, conn.cursor() as cur:
        with cur.copy(statement) as copy:
            while data := member.read(_COPY_CHUNK):
                copy.write(data)
        return cur.rowcount


def _topics_in(conn: psycopg.Connection, collection: Collection, archive: zipfile.ZipFile) -> int:
    """The backed-up topics, as the restored collection's."""
    columns = _TOPICS_COLUMNS
    with archive.open("topics.tsv") as member, conn.cursor() as cur:
        cur.execute(_TOPICS_IN)
        with cur.copy(sql.SQL("COPY restored_topics ({}) FROM STDIN").format(columns)) as copy:
            while data := member.read(_COPY_CHUNK):
                copy.write(data)
        cur.execute(
            sql.SQL(
                "INSERT INTO hybrid_rag.topics (collection, {columns}) SELECT %s, {columns} FROM restored_topics"
            ).format(columns=columns),
            (collection.name,),
        )
        return cur.rowcount


def _restore_statistics(conn: psycopg.Connection, collection: Collection, recorded: dict[str, Any]) -> None:
    """BM25's N and Σ lengths and the creation time as backed up; new chunk keys continue after the last."""
    conn.execute(
        "UPDATE hybrid_rag.collections SET chunk_count = %(n)s, total_length = %(length)s, created_at = %(created)s "
        "WHERE name = %(name)s",
        {
            "n": recorded["chunk_count"],
            "length": recorded["total_length"],
            "created": recorded["created_at"],
            "name": collection.name,
        },
    )
    conn.execute(
        sql.SQL("SELECT setval(pg_get_serial_sequence(%s, 'key'), coalesce(max(key), 0) + 1, false) FROM {}").format(
            collection.table()
        ),
        (collection.table().as_string(conn),),
    )
