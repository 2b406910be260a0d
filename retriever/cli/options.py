"""What every subcommand shares: settings from the environment and options, and one error edge."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any, TypeVar

import click

from ingest import file_document_id
from retriever.engine import Engine
from retriever.errors import HybridRagError
from retriever.settings import Settings, get_settings

__all__ = [
    "CliError",
    "cli_errors",
    "collection_option",
    "database_option",
    "document_id",
    "engine_from",
    "settings_from",
]

F = TypeVar("F", bound=Callable[..., Any])


class CliError(click.ClickException):
    """A user mistake or an unreachable database: one line on stderr, exit code 2."""

    exit_code = 2


def cli_errors(func: F) -> F:
    """Turn our errors into a one-line message and exit code 2, never a traceback: the CLI's one edge."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except HybridRagError as exc:
            raise CliError(str(exc)) from None

    return click.decorators.update_wrapper(wrapper, func)  # type: ignore[return-value]


def settings_from(database_url: str | None) -> Settings:
    """Environment settings, with the CLI's --database-url taking precedence."""
    settings = get_settings()
    return dataclasses.replace(settings, database_url=database_url) if database_url else settings


def engine_from(database_url: str | None) -> Engine:
    """The engine over `settings_from(database_url)`."""
    return Engine(settings_from(database_url))


database_option = click.option(
    "--database-url", envvar="DATABASE_URL", help="PostgreSQL DSN (default: the embedded server in HYBRID_RAG_HOME)."
)
collection_option = click.option("--collection", "-c", required=True, help="Collection name.")


def document_id(value: str) -> str:
    """A document id as typed: a path to an existing file becomes that file's id (its real path,
    as ingest gives it, `ingest._walk.file_document_id`); anything else is the id itself."""
    return file_document_id(value) if os.path.isfile(value) else value
