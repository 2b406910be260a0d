"""`hybrid-rag`: one console script; each package owns its subcommands, assembled here."""

from __future__ import annotations

import click

from retriever.cli import collections_command, ingest_command, search_command

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hybrid-rag")
def main() -> None:
    """Hybrid (BM25 + vector) retrieval on PostgreSQL.

    Settings come from the environment (DATABASE_URL, HYBRID_RAG_HOME, EMBEDDINGS, ...);
    without DATABASE_URL an embedded PostgreSQL starts on demand.
    """


main.add_command(ingest_command)
main.add_command(search_command)
main.add_command(collections_command)
