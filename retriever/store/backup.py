"""A collection's backup: its registry row and every one of its tables, from one snapshot, in one file.

The file is a zip archive:

    manifest.json     format, version, the registry row (model, dimensions, language, vector
                      index, BM25's N and Σ lengths, created_at) and each table's columns and rows
    chunks.tsv        COPY text of the chunk table (without `tsv`, which PostgreSQL
                      recomputes from the content with the collection's configuration)
    documents.tsv     COPY text of each side table
    postings.tsv
    terms.tsv
    topics.tsv        the collection's rows of `hybrid_rag.topics` (`hybrid-rag topics`)

A backup reads everything inside one REPEATABLE READ, READ ONLY transaction, so the
tables and the registry row agree even while writers run. The COPY text format is
PostgreSQL's own and version-neutral (`retriever.store.restore` reads it back). A chunk's
`anchor` (its shard on Citus) is not written: a restore places the rows anew.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import IO, Any

import psycopg
from psycopg import sql

from retriever.errors import CollectionIncomplete, CollectionNotFound, InputError
from retriever.store.archive import (
    FORMAT,
    TABLES,
    TOPICS,
    TOPICS_COLUMNS,
    VERSION,
    BackupReport,
    archived_columns,
    archived_table,
)
from retriever.store.collections import get_collection
from retriever.store.tables import TABLE_SUFFIXES, Collection, table_of, validate_name

__all__ = ["backup_collection"]

_TOPICS_OUT = "COPY (SELECT {columns} FROM hybrid_rag.topics WHERE collection = {name} ORDER BY topic) TO STDOUT"


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
    out = "COPY (SELECT {} FROM {}) TO STDOUT"
    copies = [
        (table, sql.SQL(out).format(archived_columns(table), archived_table(collection, table))) for table in TABLES
    ]
    topics = sql.SQL(_TOPICS_OUT).format(columns=TOPICS_COLUMNS, name=sql.Literal(collection.name))
    return [*copies, ("topics", topics)]


def _manifest(collection: Collection, rows: dict[str, int]) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": VERSION,
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
            "sharded": collection.sharded,  # its posting blocks cut per shard
        },
        "tables": {table: {"columns": list(TABLES.get(table, TOPICS)), "rows": count} for table, count in rows.items()},
    }
