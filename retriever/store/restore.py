"""Restoring a collection from its backup (`retriever.store.backup` writes it and describes the archive).

A restore writes everything inside one transaction — the collection, its rows with their
chunk keys (the posting blocks refer to them), its statistics and its search indexes — so a
restore that fails leaves nothing behind. A backup restores into another database or
server version that has pgvector, under the same name or another one, and onto a Citus
cluster or off one: there the rows go to their documents' shards and each shard's posting
blocks are cut again.
"""

from __future__ import annotations

import json
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from retriever.errors import CollectionNotFound, InputError
from retriever.store.archive import (
    FORMAT,
    TABLES,
    TOPICS_COLUMNS,
    VERSION,
    VERSIONS_READ,
    BackupReport,
    archived_columns,
    archived_table,
    columns_of,
)
from retriever.store.citus import ANCHOR_SQL
from retriever.store.collections import create_collection, ensure_indexes, get_collection
from retriever.store.postings import add_postings
from retriever.store.tables import Collection, validate_name
from retriever.store.vector_index import VectorIndex
from retriever.store.writer import lock_for_writing

__all__ = ["restore_collection"]

_COPY_CHUNK = 1 << 20  # bytes handed to COPY at a time on restore
_ANCHORED = "INSERT INTO {target} (anchor, {columns}) OVERRIDING SYSTEM VALUE SELECT {anchor}, {columns} FROM {staged}"
_TOPICS_IN = """
CREATE TEMPORARY TABLE restored_topics (
    topic integer, label text, terms text[], size integer, centroid vector, metadata_key text
) ON COMMIT DROP
"""


def _read_manifest(archive: zipfile.ZipFile, source: str) -> dict[str, Any]:
    """The archive's manifest, checked against what this version can restore; `InputError` otherwise."""
    try:
        manifest = json.loads(archive.read("manifest.json"))
    except (KeyError, ValueError, zipfile.BadZipFile):
        raise InputError(f"{source!r} is not a hybrid-rag backup (no readable manifest.json)") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InputError(f"{source!r} is not a hybrid-rag backup")
    if manifest.get("version") not in VERSIONS_READ:
        readable = " and ".join(map(str, VERSIONS_READ))
        raise InputError(f"{source!r} is a version {manifest.get('version')!r} backup; this release reads {readable}")
    tables = manifest.get("tables")
    for table in TABLES:
        described = tables.get(table) if isinstance(tables, dict) else None
        if not isinstance(described, dict) or described.get("columns") != list(columns_of(table, manifest["version"])):
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
            # blocks cut per shard (backups made before anchors were not), or holding deleted chunks' (version 1)
            "recut": bool(recorded.get("sharded", False)) or bool(tables.get("tombstones", {}).get("rows")),
            # backups made before collections chose their index have the one every collection had then
            "vector_index": VectorIndex(**recorded.get("vector_index", {})).validate(int(recorded["dimensions"])),
        }
    except (AttributeError, KeyError, TypeError, ValueError):
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
        manifest = _read_manifest(archive, source)
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
            rows = _tables_in(conn, collection, archive, version=manifest["version"], recut=recorded["recut"])
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


def _tables_in(
    conn: psycopg.Connection, collection: Collection, archive: zipfile.ZipFile, *, version: int, recut: bool
) -> dict[str, int]:
    """Every table's file of a backup of `version` into the new collection; returns each table's rows.

    A sharded collection's chunks and documents go to their documents' shards. Its posting
    blocks are cut anew from its chunks, as are those of any collection restored from a
    sharded one or from an archive that holds deleted chunks' postings (`recut`): then the
    archive's blocks are not read.
    """
    if not (collection.sharded or recut):
        return {table: _copy_in(conn, collection, table, archive, version=version) for table in TABLES}
    anchored = collection.sharded
    rows = {table: _copy_in(conn, collection, table, archive, anchored=anchored) for table in ("chunks", "documents")}
    with conn.cursor() as cur:
        lock_for_writing(cur, collection)
        add_postings(cur, collection, sql.SQL("true"), merge=False)
        for table in ("postings", "terms"):
            counted = cur.execute(sql.SQL("SELECT count(*) FROM {}").format(archived_table(collection, table)))
            rows[table] = counted.fetchone()[0]  # type: ignore[index]
    return rows


def _copy_in(
    conn: psycopg.Connection,
    collection: Collection,
    table: str,
    archive: zipfile.ZipFile,
    *,
    version: int = VERSION,
    anchored: bool = False,
) -> int:
    """COPY one table's file (of a backup of `version`) into the new collection; returns its rows. `anchored`:
    through a temporary table, each row given its document's anchor (`retriever.store.citus`)."""
    target = archived_table(collection, table)
    staged = sql.Identifier(f"restored_{table}")
    statement = sql.SQL("COPY {table} ({columns}) FROM STDIN").format(
        table=staged if anchored else target, columns=archived_columns(table, version)
    )
    with archive.open(f"{table}.tsv") as member, conn.cursor() as cur:
        if anchored:
            cur.execute(
                sql.SQL("CREATE TEMPORARY TABLE {} (LIKE {} INCLUDING DEFAULTS) ON COMMIT DROP").format(staged, target)
            )
        with cur.copy(statement) as copy:
            while data := member.read(_COPY_CHUNK):
                copy.write(data)
        if not anchored:
            return cur.rowcount
        cur.execute(
            sql.SQL(_ANCHORED).format(target=target, staged=staged, columns=archived_columns(table), anchor=ANCHOR_SQL),
            {"anchors": collection.anchors},
        )
        return cur.rowcount


def _topics_in(conn: psycopg.Connection, collection: Collection, archive: zipfile.ZipFile) -> int:
    """The backed-up topics, as the restored collection's."""
    columns = TOPICS_COLUMNS
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
