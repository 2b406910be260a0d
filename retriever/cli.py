"""The `hybrid-rag` subcommands owned by the retriever: ingest, search, collections, serve."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from ingest import ChunkingConfig, IngestInputError, SkippedSource
from retriever.collections import list_collections
from retriever.database import map_errors, open_primary, open_reader
from retriever.errors import HybridRagError, InvalidFilter
from retriever.query import DEFAULTS, MODES, SearchParams, SearchResult
from retriever.service import ingest_paths, search
from retriever.settings import Settings, get_settings

__all__ = ["CliError", "cli_errors", "collections_command", "ingest_command", "search_command", "settings_from"]

F = TypeVar("F", bound=Callable[..., Any])


class CliError(click.ClickException):
    """A user mistake or an unreachable database: one line on stderr, exit code 2."""

    exit_code = 2


def cli_errors(func: F) -> F:
    """Turn our errors into a one-line message and exit code 2, never a traceback."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (HybridRagError, IngestInputError) as exc:
            raise CliError(str(exc)) from None

    return click.decorators.update_wrapper(wrapper, func)  # type: ignore[return-value]


def settings_from(database_url: str | None) -> Settings:
    """Environment settings, with the CLI's --database-url taking precedence."""
    settings = get_settings()
    return dataclasses.replace(settings, database_url=database_url) if database_url else settings


database_option = click.option(
    "--database-url", envvar="DATABASE_URL", help="PostgreSQL DSN (default: the embedded server in HYBRID_RAG_HOME)."
)
collection_option = click.option("--collection", "-c", required=True, help="Collection name.")


@click.command("ingest")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@collection_option
@click.option("--chunk-size", default=ChunkingConfig().chunk_size, show_default=True, help="Characters per chunk.")
@click.option(
    "--chunk-overlap",
    default=ChunkingConfig().chunk_overlap,
    show_default=True,
    help="Characters shared by neighbours.",
)
@database_option
@cli_errors
def ingest_command(
    paths: tuple[str, ...], collection: str, chunk_size: int, chunk_overlap: int, database_url: str | None
) -> None:
    """Ingest files and folders (.txt .md .html .pdf .jsonl .jsonl.gz) into a collection.

    Re-ingesting unchanged input embeds and writes nothing; a changed document's
    chunks are replaced atomically.

    \b
    Example:
        hybrid-rag ingest docs/ notes.md --collection docs
        hybrid-rag ingest corpus.jsonl.gz --collection scifact
    """

    def warn(item: SkippedSource) -> None:
        click.echo(f"warning: skipped {item.path}: {item.reason}", err=True)

    report = ingest_paths(
        settings_from(database_url),
        collection,
        list(paths),
        ChunkingConfig(chunk_size, chunk_overlap),
        on_skip=warn,
        progress=sys.stderr.isatty(),
    )
    click.echo(report.summary())
    click.echo(report.timing())


def _parse_filter(raw: str | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidFilter(f"--filter is not valid JSON: {exc.msg} at position {exc.pos}") from None
    if not isinstance(parsed, dict):
        raise InvalidFilter('--filter must be a JSON object, e.g. \'{"lang": "en"}\'')
    return parsed


def result_json(result: SearchResult) -> dict[str, Any]:
    """The contract's JSON shape of a search result (CLI --json and HTTP)."""
    return {
        "results": [
            {
                "id": hit.id,
                "document_id": hit.document_id,
                "content": hit.content,
                "metadata": hit.metadata,
                "score": hit.score,
                "vector_rank": hit.vector_rank,
                "text_rank": hit.text_rank,
            }
            for hit in result.hits
        ],
        "took_ms": round(result.took_ms, 3),
    }


def _table(result: SearchResult) -> str:
    lines = [f"{'#':>3}  {'score':>7}  {'vec':>4}  {'text':>4}  document / excerpt"]
    for rank, hit in enumerate(result.hits, start=1):
        excerpt = " ".join(hit.content.split())[:100]
        lines.append(
            f"{rank:>3}  {hit.score:7.4f}  {hit.vector_rank or '-':>4}  {hit.text_rank or '-':>4}  {hit.document_id}\n"
            f"{'':>25}{excerpt}"
        )
    lines.append(f"{len(result.hits)} results in {result.took_ms:.1f} ms")
    return "\n".join(lines)


@click.command("search")
@click.argument("query", required=False)
@collection_option
@click.option("--like", metavar="DOCUMENT_ID", help="Rank by similarity to this stored document instead of QUERY.")
@click.option("-k", default=10, show_default=True, help="Number of results.")
@click.option("--mode", type=click.Choice(MODES), default="hybrid", show_default=True)
@click.option("--filter", "filter_json", help='Metadata filter, e.g. \'{"year": {"$gte": 2023}}\'.')
@click.option("--candidates", default=DEFAULTS["candidates"], show_default=True, help="Depth of each leg.")
@click.option("--rrf-k", default=DEFAULTS["rrf_k"], show_default=True, help="RRF constant.")
@click.option(
    "--weights",
    default=",".join(f"{w:g}" for w in DEFAULTS["weights"]),
    show_default=True,
    help="Vector,text weights of the fusion.",
)
@click.option("--collapse", is_flag=True, help="Best chunk per document only.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@database_option
@cli_errors
def search_command(
    query: str | None,
    collection: str,
    like: str | None,
    k: int,
    mode: str,
    filter_json: str | None,
    candidates: int,
    rrf_k: int,
    weights: str,
    collapse: bool,
    as_json: bool,
    database_url: str | None,
) -> None:
    """Search a collection with one SQL statement (vector + BM25, fused by RRF).

    \b
    Example:
        hybrid-rag search "how do I adjust a rear derailleur" -c demo -k 5
        hybrid-rag search "coffee" -c demo --filter '{"year": {"$gte": 2023}}' --json
        hybrid-rag search --like docs/brakes.md -c demo     # more like this document
    """
    if (query is None) == (like is None):
        raise CliError("give either a QUERY or --like DOCUMENT_ID")
    try:
        weight_pair = tuple(float(part) for part in weights.split(","))
    except ValueError:
        raise CliError(f"--weights must be two numbers like 1,0.5, got {weights!r}") from None
    params = SearchParams(
        k=k,
        mode=mode,  # type: ignore[arg-type]
        filter=_parse_filter(filter_json),
        candidates=candidates,
        rrf_k=rrf_k,
        weights=weight_pair,  # type: ignore[arg-type]
        collapse=collapse,
    )
    settings = settings_from(database_url)
    with map_errors(), open_reader(settings) as conn:
        result = search(conn, settings, collection, query, params, like=like)
    click.echo(json.dumps(result_json(result), ensure_ascii=False) if as_json else _table(result))


@click.command("collections")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@database_option
@cli_errors
def collections_command(as_json: bool, database_url: str | None) -> None:
    """List collections with their sizes and embedding model."""
    with map_errors(), open_primary(settings_from(database_url)) as conn:
        found = list_collections(conn)
    rows = [
        {
            "name": c.name,
            "chunks": c.chunk_count,
            "embedding_model": c.embedding_model,
            "dimensions": c.dimensions,
            "text_config": c.text_config,
        }
        for c in found
    ]
    if as_json:
        click.echo(json.dumps({"collections": rows}))
        return
    if not rows:
        click.echo("no collections yet: hybrid-rag ingest PATH --collection NAME")
    for row in rows:
        model = f"{row['embedding_model']} ({row['dimensions']}d, {row['text_config']})"
        click.echo(f"{row['name']:<24} {row['chunks']:>9} chunks  {model}")


@click.command("maintain")
@click.option("--collection", "-c", "names", multiple=True, help="Collection(s) to maintain (default: all).")
@click.option("--reindex", is_flag=True, help="Rebuild the HNSW and GIN indexes and the posting blocks.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@database_option
@cli_errors
def maintain_command(names: tuple[str, ...], reindex: bool, as_json: bool, database_url: str | None) -> None:
    """VACUUM ANALYZE, drop unused terms, build missing indexes, report sizes.

    Run it after large deletes: it also rebuilds the BM25 posting blocks once deleted
    chunks are over 10% of those they hold (ingest does so by itself). --reindex after heavy
    churn (deleted rows degrade an HNSW graph). Sizes tell whether the HNSW index
    still fits in RAM.

    \b
    Example:
        hybrid-rag maintain -c docs --reindex
    """
    from retriever.collections import get_collection
    from retriever.maintenance import maintain_collection

    report = []
    with map_errors(), open_primary(settings_from(database_url)) as conn:
        targets = [get_collection(conn, name) for name in names] or list_collections(conn)
        for collection in targets:
            stats = maintain_collection(conn, collection, reindex=reindex)
            report.append(dataclasses.asdict(stats) | {"total_bytes": stats.total_bytes()})
    if as_json:
        click.echo(json.dumps({"collections": report}))
        return
    for entry in report:
        indexes = ", ".join(f"{name} {size / 1e6:.1f} MB" for name, size in entry["indexes"].items())
        click.echo(
            f"{entry['name']}: {entry['chunks']} chunks, {entry['documents']} documents, {entry['terms']} terms, "
            f"{entry['postings']} postings ({entry['tombstones']} of deleted chunks), "
            f"{entry['total_bytes'] / 1e6:.1f} MB in all\n  indexes: {indexes}"
        )
