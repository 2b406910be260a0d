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
from retriever.store.vector_index import INDEX_KINDS, STORAGES, VectorIndex

__all__ = [
    "CliError",
    "cli_errors",
    "collection_option",
    "database_option",
    "document_id",
    "engine_from",
    "index_options",
    "settings_from",
    "vector_index_from",
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


def index_options(func: F) -> F:
    """The vector index options of a new collection: --index, --storage, --hnsw-m, --ef-construction, --lists."""
    defaults = VectorIndex()
    for option in reversed(
        (
            click.option(
                "--index",
                "index_kind",
                metavar="|".join(INDEX_KINDS),
                help=f"Vector index of a new collection  [default: {defaults.kind}]",
            ),
            click.option(
                "--storage",
                metavar="|".join(STORAGES),
                help="Embedding column of a new collection: vector (4 B a dimension, indexes ≤ 2000) or halfvec "
                f"(2 B, ≤ 4000)  [default: {defaults.storage}]",
            ),
            click.option("--hnsw-m", type=int, help=f"HNSW links per node, 2-100  [default: {defaults.m}]"),
            click.option(
                "--ef-construction",
                type=int,
                help=f"HNSW build candidates, 4-1000 and ≥ 2 × m  [default: {defaults.ef_construction}]",
            ),
            click.option("--lists", type=int, help=f"IVFFlat lists, 1-32768  [default: {defaults.lists}]"),
        )
    ):
        func = option(func)
    return func


def vector_index_from(
    index_kind: str | None, storage: str | None, hnsw_m: int | None, ef_construction: int | None, lists: int | None
) -> VectorIndex | None:
    """The `VectorIndex` the options ask for (None when none is given: an existing collection keeps its own).

    Raises `CliError` for a parameter of the other kind (--lists with HNSW, --hnsw-m or
    --ef-construction with IVFFlat); the values themselves are checked where the
    collection is created (`VectorIndex.validate`, against its dimensions).
    """
    given = {"m": hnsw_m, "ef_construction": ef_construction, "lists": lists}
    if index_kind is None and storage is None and all(value is None for value in given.values()):
        return None
    kind = index_kind or ("ivfflat" if lists is not None else "hnsw")
    foreign = ("m", "ef_construction") if kind == "ivfflat" else ("lists",) if kind == "hnsw" else ()
    if wrong := [field for field in foreign if given[field] is not None]:
        names = {"m": "--hnsw-m", "ef_construction": "--ef-construction", "lists": "--lists"}
        raise CliError(f"{', '.join(names[field] for field in wrong)} does not apply to --index {kind}")
    chosen = {field: value for field, value in given.items() if value is not None}
    return VectorIndex(kind=kind, storage=storage or "vector", **chosen)  # type: ignore[arg-type]
