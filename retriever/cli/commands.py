"""The `hybrid-rag` subcommands over the engine: ingest, search, collections, maintain."""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import Any

import click

from ingest import ChunkingConfig, SkippedSource
from retriever.cli.options import CliError, cli_errors, collection_option, database_option, engine_from
from retriever.errors import InvalidFilter
from retriever.results import DEFAULTS, MODES, SearchParams, SearchResult

__all__ = ["collections_command", "ingest_command", "maintain_command", "search_command"]


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

    report = engine_from(database_url).ingest_paths(
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
    result = engine_from(database_url).search(collection, query, params, like=like)
    click.echo(json.dumps(result.to_json(), ensure_ascii=False) if as_json else _table(result))


@click.command("collections")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@database_option
@cli_errors
def collections_command(as_json: bool, database_url: str | None) -> None:
    """List collections with their sizes and embedding model."""
    found = engine_from(database_url).collections()
    rows = [
        {
            "name": c.name,
            "chunks": c.chunk_count,
            "embedding_model": c.embedding_model,
            "dimensions": c.dimensions,
            "text_config": c.text_config,
            "complete": c.complete,
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
        state = "" if row["complete"] else f"  INCOMPLETE (a load did not finish): hybrid-rag maintain -c {row['name']}"
        click.echo(f"{row['name']:<24} {row['chunks']:>9} chunks  {model}{state}")


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
    maintained = engine_from(database_url).maintain(names, reindex=reindex)
    report = [dataclasses.asdict(stats) | {"total_bytes": stats.total_bytes()} for stats in maintained]
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
