"""`hybrid-rag`: one console script; each package owns its subcommands, assembled here.

Subcommands are imported when they run, so `hybrid-rag search` does not pay for
importing the HTTP server, the evaluation stack or matplotlib.
"""

from __future__ import annotations

from collections.abc import Callable

import click

__all__ = ["main"]


def _ingest() -> click.Command:
    from retriever.cli.commands import ingest_command

    return ingest_command


def _search() -> click.Command:
    from retriever.cli.commands import search_command

    return search_command


def _collections() -> click.Command:
    from retriever.cli.commands import collections_command

    return collections_command


def _maintain() -> click.Command:
    from retriever.cli.commands import maintain_command

    return maintain_command


def _documents() -> click.Command:
    from retriever.cli.documents import documents_command

    return documents_command


def _document() -> click.Command:
    from retriever.cli.documents import document_command

    return document_command


def _delete() -> click.Command:
    from retriever.cli.documents import delete_command

    return delete_command


def _drop() -> click.Command:
    from retriever.cli.documents import drop_command

    return drop_command


def _backup() -> click.Command:
    from retriever.cli.backup import backup_command

    return backup_command


def _restore() -> click.Command:
    from retriever.cli.backup import restore_command

    return restore_command


def _topics() -> click.Command:
    from retriever.cli.topics import topics_command

    return topics_command


def _reembed() -> click.Command:
    from retriever.cli.reembed import reembed_command

    return reembed_command


def _serve() -> click.Command:
    from retriever.cli.serve import serve_command

    return serve_command


def _eval() -> click.Command:
    from eval.cli import eval_command

    return eval_command


def _bench() -> click.Command:
    from bench.cli import bench

    return bench


COMMANDS: dict[str, Callable[[], click.Command]] = {
    "ingest": _ingest,
    "search": _search,
    "collections": _collections,
    "documents": _documents,
    "document": _document,
    "delete": _delete,
    "drop": _drop,
    "maintain": _maintain,
    "backup": _backup,
    "restore": _restore,
    "topics": _topics,
    "reembed": _reembed,
    "serve": _serve,
    "eval": _eval,
    "bench": _bench,
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        loader = COMMANDS.get(cmd_name)
        return loader() if loader else None

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:  # a mistyped option is a user mistake like any other: one line, exit 2
            where = exc.ctx.command_path if exc.ctx is not None else ctx.command_path
            raise click.UsageError(f"{exc.format_message()} (see {where} --help)") from None


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hybrid-rag")
def main() -> None:
    """Hybrid (BM25 + vector) retrieval on PostgreSQL.

    Settings come from the environment (DATABASE_URL, HYBRID_RAG_HOME, EMBEDDINGS, ...);
    without DATABASE_URL an embedded PostgreSQL starts on demand.
    """
