"""The `hybrid-rag` subcommands that copy a collection to a file and back: backup, restore."""

from __future__ import annotations

from pathlib import Path

import click

from retriever.cli.options import cli_errors, collection_option, database_option, engine_from
from retriever.store.archive import BackupReport

__all__ = ["backup_command", "restore_command"]

_FILE = click.Path(dir_okay=False, path_type=Path)


def _rows(report: BackupReport) -> str:
    return ", ".join(f"{rows} {table}" for table, rows in report.rows.items())


@click.command("backup")
@collection_option
@click.argument("file", type=_FILE)
@database_option
@cli_errors
def backup_command(collection: str, file: Path, database_url: str | None) -> None:
    """Write a collection to FILE: its registry row and every table, from one snapshot.

    FILE is a zip archive (replaced if it exists) of the tables in COPY text form and a
    manifest; writers may go on meanwhile. `restore` reads it into this or any other
    database with pgvector.

    \b
    Example:
        hybrid-rag backup -c docs docs-2026-12-01.zip
    """
    report = engine_from(database_url).backup(collection, file)
    click.echo(f"collection {collection!r} written to {str(file)!r}: {_rows(report)} rows")


@click.command("restore")
@click.argument("file", type=_FILE)
@click.option("--collection", "-c", help="Restore under this name (default: the name it was backed up under).")
@database_option
@cli_errors
def restore_command(file: Path, collection: str | None, database_url: str | None) -> None:
    """Restore a collection from a FILE written by `backup`, all or nothing.

    The name must be free: drop the collection first, or restore beside it under another
    name with -c. The search indexes are rebuilt, so a large collection takes a while.

    \b
    Example:
        hybrid-rag drop -c docs --yes && hybrid-rag restore docs-2026-12-01.zip
        hybrid-rag restore docs-2026-12-01.zip -c docs_yesterday
    """
    report = engine_from(database_url).restore(file, collection)
    click.echo(f"collection {report.collection!r} restored from {str(file)!r}: {_rows(report)} rows")
