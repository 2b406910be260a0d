"""The `hybrid-rag` subcommands over the engine: ingest, search, collections, maintain."""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import Any

import click
from tqdm import tqdm

from ingest import ChunkingConfig, IngestInputError, SkippedSource
from retriever.cli.options import (
    CliError,
    cli_errors,
    collection_option,
    database_option,
    document_id,
    engine_from,
    index_options,
    vector_index_from,
)
from retriever.errors import InvalidFilter
from retriever.results import DEFAULTS, MODES, SearchParams, SearchResult

__all__ = ["collections_command", "ingest_command", "maintain_command", "parse_filter", "search_command"]

SKIPPED_EXIT = 3
"""`ingest` finished, but skipped inputs (each named in a warning)."""


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
@click.option("--prune", is_flag=True, help="Delete the documents under PATHS whose files are gone.")
@click.option(
    "--language",
    metavar="CONFIG",
    help="Text search configuration of a new collection (german, french, simple, ...)  [default: english]",
)
@click.option("--accent-insensitive", is_flag=True, help="A new collection matches cafe and café alike (unaccent).")
@index_options
@database_option
@cli_errors
def ingest_command(
    paths: tuple[str, ...],
    collection: str,
    chunk_size: int,
    chunk_overlap: int,
    prune: bool,
    language: str | None,
    accent_insensitive: bool,
    index_kind: str | None,
    storage: str | None,
    hnsw_m: int | None,
    ef_construction: int | None,
    lists: int | None,
    database_url: str | None,
) -> None:
    """Ingest files and folders (.txt .md .html .pdf .jsonl .jsonl.gz) into a collection.

    Re-ingesting unchanged input embeds and writes nothing; a changed document's
    chunks are replaced atomically. A file's document id is its real path, so a file
    is one document however its path is spelled. --prune deletes the documents under
    PATHS whose files are gone (and a JSONL corpus's records whose lines are gone).

    \b
    Example:
        hybrid-rag ingest docs/ notes.md --collection docs
        hybrid-rag ingest docs/ --collection docs --prune
        hybrid-rag ingest corpus.jsonl.gz --collection scifact
        hybrid-rag ingest vertraege/ --collection vertraege --language german
        hybrid-rag ingest big/ --collection big --index ivfflat --lists 1000 --storage halfvec

    A new collection's vector index (--index hnsw with --hnsw-m and --ef-construction, or
    --index ivfflat with --lists; --storage vector or halfvec) is fixed at creation.

    \b
    Exit codes: 0 every input ingested (or unchanged), 3 finished but skipped inputs
    (each named in a warning), 2 a mistake that stopped it (nothing written).
    """

    def warn(item: SkippedSource) -> None:
        tqdm.write(f"warning: skipped {item.path}: {item.reason}", file=sys.stderr)  # never on the bar's line

    try:
        chunking = ChunkingConfig(chunk_size, chunk_overlap)
    except IngestInputError as exc:
        raise CliError(str(exc)) from None
    index = vector_index_from(index_kind, storage, hnsw_m, ef_construction, lists)
    report = engine_from(database_url).ingest_paths(
        collection,
        list(paths),
        chunking,
        on_skip=warn,
        progress=True,
        prune=prune,
        language=language,
        accent_insensitive=accent_insensitive,
        index=index,
    )
    click.echo(report.summary())
    click.echo(report.timing())
    if report.skipped:
        sys.exit(SKIPPED_EXIT)


def parse_filter(raw: str | None) -> dict[str, Any] | None:
    """The --filter option's JSON object; `InvalidFilter` for anything else."""
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
@click.option(
    "--like",
    metavar="DOCUMENT_ID",
    help="Rank by similarity to this stored document (an id, or the path of an ingested file) instead of QUERY.",
)
@click.option("-k", default=10, show_default=True, help="Number of results.")
@click.option("--mode", type=click.Choice(MODES), default="hybrid", show_default=True)
@click.option("--filter", "filter_json", help='Metadata filter, e.g. \'{"year": {"$gte": 2023}}\'.')
@click.option("--candidates", default=DEFAULTS["candidates"], show_default=True, help="Depth of each leg.")
@click.option(
    "--fusion",
    default=DEFAULTS["fusion"],
    show_default=True,
    help="How hybrid combines its legs: linear_max (vector min-max, text over its best; weighted sum), "
    "linear (min-max normalised scores) or rrf (reciprocal ranks).",
)
@click.option("--rrf-k", default=DEFAULTS["rrf_k"], show_default=True, help="RRF constant (--fusion rrf only).")
@click.option(
    "--weights",
    default=",".join(f"{w:g}" for w in DEFAULTS["weights"]),
    show_default=True,
    help="Vector,text weights of the fusion.",
)
@click.option("--collapse", is_flag=True, help="Best chunk per document only.")
@click.option("--probes", type=int, help="IVFFlat lists read (default: √lists, more for deep --candidates).")
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
    fusion: str,
    rrf_k: int,
    weights: str,
    collapse: bool,
    probes: int | None,
    as_json: bool,
    database_url: str | None,
) -> None:
    """Search a collection with one SQL statement (vector + BM25, fused by a linear combination or RRF).

    \b
    Example:
        hybrid-rag search "how do I adjust a rear derailleur" -c demo -k 5
        hybrid-rag search "coffee" -c demo --filter '{"year": {"$gte": 2023}}' --json
        hybrid-rag search --like docs/brakes.md -c demo     # more like this ingested file
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
        filter=parse_filter(filter_json),
        candidates=candidates,
        fusion=fusion,  # type: ignore[arg-type]
        rrf_k=rrf_k,
        weights=weight_pair,  # type: ignore[arg-type]
        collapse=collapse,
        probes=probes,
    )
    like = document_id(like) if like is not None else None
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
            "language": c.language,
            "accent_insensitive": c.accent_insensitive,
            "vector_index": c.vector_index.to_json(),
            "complete": c.complete,
        }
        for c in found
    ]
    if as_json:
        click.echo(json.dumps({"collections": rows}))
        return
    if not rows:
        click.echo("no collections yet: hybrid-rag ingest PATH --collection NAME")
    for row, c in zip(rows, found, strict=True):
        model = f"{row['embedding_model']} ({row['dimensions']}d, {c.language_label})  {c.vector_index.label}"
        state = "" if row["complete"] else f"  INCOMPLETE (a load did not finish): hybrid-rag maintain -c {row['name']}"
        click.echo(f"{row['name']:<24} {row['chunks']:>9} chunks  {model}{state}")


@click.command("maintain")
@click.option("--collection", "-c", "names", multiple=True, help="Collection(s) to maintain (default: all).")
@click.option("--reindex", is_flag=True, help="Rebuild the vector and GIN indexes and the posting blocks.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@database_option
@cli_errors
def maintain_command(names: tuple[str, ...], reindex: bool, as_json: bool, database_url: str | None) -> None:
    """VACUUM ANALYZE, drop unused terms, build missing indexes, report sizes.

    Run it after large deletes: it also cuts the BM25 posting blocks anew once deletes
    have trimmed over 10% of them. --reindex after heavy churn (deleted rows degrade an
    HNSW graph) or after an IVFFlat collection grew well past its first load (its lists
    are k-means cells of the rows there when it was built); it rebuilds with the
    collection's own index settings, and the posting blocks too. Sizes tell whether the vector
    index still fits in RAM.

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
            f"{entry['postings']} postings ({entry['trimmed_blocks']} blocks trimmed by deletes), "
            f"{entry['total_bytes'] / 1e6:.1f} MB in all\n  indexes: {indexes}"
        )
