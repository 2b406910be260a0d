"""The `hybrid-rag` subcommands for documents over their life: documents, document, delete, drop.

Wherever a command takes a document id, a path to an existing file works too: it
becomes that file's id (its real path), as `ingest` gave it.
"""

from __future__ import annotations

import json
import sys

import click

from retriever.cli.commands import parse_filter
from retriever.cli.options import CliError, cli_errors, collection_option, database_option, document_id, engine_from

__all__ = ["delete_command", "document_command", "documents_command", "drop_command"]


@click.command("documents")
@collection_option
@click.option("--prefix", help="Only documents whose id starts with this.")
@click.option("--limit", default=100, show_default=True, help="Documents per page.")
@click.option("--after", metavar="DOCUMENT_ID", help="Continue after this id (the cursor a page ends with).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@database_option
@cli_errors
def documents_command(
    collection: str, prefix: str | None, limit: int, after: str | None, as_json: bool, database_url: str | None
) -> None:
    """List a collection's documents in id order: id, chunks, last written.

    A page ends with the command for the next one. --json prints
    {"documents": [{"id", "chunks", "updated_at"}], "next_after"}.

    \b
    Example:
        hybrid-rag documents -c docs --prefix "$PWD/docs/" --limit 20
        hybrid-rag documents -c docs --after "$PWD/docs/brakes.md"
    """
    page = engine_from(database_url).documents(collection, limit=limit, after=after, prefix=prefix)
    if as_json:
        click.echo(json.dumps(page.to_json(), ensure_ascii=False))
        return
    for info in page.documents:
        click.echo(f"{info.chunks:>6}  {info.updated_at:%Y-%m-%d %H:%M:%S}  {info.id}")
    click.echo(f"{len(page.documents)} documents" + ("" if page.documents else " (none)"))
    if page.next_after is not None:
        click.echo(f"more: hybrid-rag documents -c {collection} --after {_quoted(page.next_after)}")


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


@click.command("document")
@collection_option
@click.argument("document", metavar="DOCUMENT_ID")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@database_option
@cli_errors
def document_command(collection: str, document: str, as_json: bool, database_url: str | None) -> None:
    """Show one stored document: id, hash, last written, metadata, and its chunks in order.

    DOCUMENT_ID may be the path of an ingested file. --json prints
    {"id", "hash", "updated_at", "metadata", "chunks": [{"id", "index", "content"}]}.

    \b
    Example:
        hybrid-rag document -c docs docs/brakes.md
        hybrid-rag document -c scifact 4983 --json
    """
    stored = engine_from(database_url).document(collection, document_id(document))
    if as_json:
        click.echo(json.dumps(stored.to_json(), ensure_ascii=False))
        return
    click.echo(f"{stored.id}\n  hash {stored.hash}, written {stored.updated_at:%Y-%m-%d %H:%M:%S %Z}")
    click.echo(f"  metadata {json.dumps(stored.metadata, ensure_ascii=False)}")
    for chunk in stored.chunks:
        click.echo(f"\n--- chunk {chunk.index} ---\n{chunk.content}")


@click.command("delete")
@collection_option
@click.argument("documents", nargs=-1, metavar="[DOCUMENT_ID]...")
@click.option("--filter", "filter_json", help="Delete every document with a chunk matching this metadata filter.")
@database_option
@cli_errors
def delete_command(
    collection: str, documents: tuple[str, ...], filter_json: str | None, database_url: str | None
) -> None:
    """Delete documents, by id or by metadata filter, with all their chunks.

    By id, all or none: an id that is not there deletes nothing and exits 2. By filter
    (search's filter language), every document with at least one matching chunk is
    deleted whole; an empty filter is refused (drop the collection instead).

    \b
    Example:
        hybrid-rag delete -c docs docs/brakes.md docs/old-notes.md
        hybrid-rag delete -c docs --filter '{"year": {"$lt": 2020}}'
    """
    if bool(documents) == (filter_json is not None):
        raise CliError("give either DOCUMENT_IDs or --filter JSON")
    engine = engine_from(database_url)
    if filter_json is not None:
        deleted = engine.delete_where(collection, parse_filter(filter_json))
    else:
        deleted = engine.delete_documents(collection, [document_id(value) for value in documents])
    click.echo(f"{deleted} document{'' if deleted == 1 else 's'} deleted")


def _interactive() -> bool:
    """Whether someone at a terminal can answer a question."""
    return sys.stdin.isatty()


@click.command("drop")
@collection_option
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (required without a terminal).")
@database_option
@cli_errors
def drop_command(collection: str, yes: bool, database_url: str | None) -> None:
    """Delete a collection with all its documents, chunks and indexes.

    Asks for confirmation on a terminal; without one, --yes is required.

    \b
    Example:
        hybrid-rag drop -c scratch --yes
    """
    engine = engine_from(database_url)
    found = engine.collection(collection)  # an unknown collection is an error before any question
    if not yes:
        if not _interactive():
            raise CliError(f"dropping collection {collection!r} needs --yes when there is no terminal to confirm on")
        if not click.confirm(f"Drop collection {collection!r} and its {found.chunk_count} chunks?", default=False):
            click.echo(f"collection {collection!r} kept", err=True)
            sys.exit(1)
    engine.drop_collection(collection)
    click.echo(f"collection {collection!r} dropped")
