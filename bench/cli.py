"""`hybrid-rag bench`: reproducible benchmarks against langchain-postgres."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from bench._data import corpus_file
from bench.ingest import ingest_table, run_ingest_bench
from bench.query import query_table, run_query_bench
from eval import DatasetError
from retriever.cli.options import CliError, cli_errors, database_option, settings_from
from retriever.embeddings import get_embedding_model

__all__ = ["bench"]

dataset_argument = click.argument(
    "dataset_dir", type=click.Path(exists=True, file_okay=False, dir_okay=True, path_type=Path)
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
out_option = click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), help="Also write the JSON results to this file."
)


def _emit(results: dict[str, Any], table: str, as_json: bool, out: Path | None) -> None:
    text = json.dumps(results, indent=2)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n", encoding="utf-8")
    click.echo(text if as_json else table)


@click.group("bench")
def bench() -> None:
    """Benchmarks against langchain-postgres on a BEIR collection (embedded Postgres unless DATABASE_URL).

    Embeddings are computed once with the configured model (EMBEDDINGS) and cached
    in HYBRID_RAG_HOME/cache; the timings never include the model.
    """


@bench.command("ingest")
@dataset_argument
@click.option("--rows", type=click.IntRange(min=1), help="Load only the first N chunks (whole documents).")
@click.option("--repeat", default=1, show_default=True, type=click.IntRange(min=1), help="Rounds; the median counts.")
@json_option
@out_option
@database_option
@cli_errors
def ingest_command(
    dataset_dir: Path, rows: int | None, repeat: int, as_json: bool, out: Path | None, database_url: str | None
) -> None:
    """Rows/s of our bulk writer vs PGVectorStore.aadd_embeddings, same embeddings, same final state.

    Both end with the same rows, tsvector, GIN and HNSW indexes (ours also with BM25
    postings), timed end to end in fresh tables that are dropped afterwards. Also
    prints the local embedding model's throughput.

    \b
    Example:
        HYBRID_RAG_HOME=/tmp/hr-bench hybrid-rag bench ingest ../shared/datasets/scifact
        hybrid-rag bench ingest ../shared/datasets/scifact --repeat 3 --json
    """
    settings = settings_from(database_url)
    try:
        path = corpus_file(dataset_dir)
    except DatasetError as exc:
        raise CliError(str(exc)) from None
    results = run_ingest_bench(settings, path, get_embedding_model(settings), rows=rows, repeat=repeat)
    _emit(results, ingest_table(results), as_json, out)


@bench.command("query")
@dataset_argument
@click.option("--split", default="test", show_default=True, help="Which qrels/<split>.tsv judges the queries.")
@click.option("--fresh", is_flag=True, help="Rebuild the benchmark collection and table even if present.")
@json_option
@out_option
@database_option
@cli_errors
def query_command(
    dataset_dir: Path, split: str, fresh: bool, as_json: bool, out: Path | None, database_url: str | None
) -> None:
    """nDCG@10 and p50/p95 database time: our hybrid/vector/text vs langchain-postgres hybrid.

    Same rows, same precomputed embeddings, 100 candidates per leg; langchain-postgres
    runs RRF at hnsw.ef_search 40 and 100. The collection and table are kept for reuse.

    \b
    Example:
        HYBRID_RAG_HOME=/tmp/hr-bench hybrid-rag bench query ../shared/datasets/scifact
        hybrid-rag bench query ../shared/datasets/scifact --json --out results/query.json
    """
    settings = settings_from(database_url)
    try:
        results = run_query_bench(settings, dataset_dir, get_embedding_model(settings), split=split, fresh=fresh)
    except DatasetError as exc:
        raise CliError(str(exc)) from None
    _emit(results, query_table(results), as_json, out)


def _sizes(_ctx: click.Context, _param: click.Parameter, value: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part.replace("_", "")) for part in value.split(","))
    except ValueError:
        raise click.BadParameter(f"{value!r}: use comma-separated chunk counts, e.g. 10000,100000") from None
    if not sizes or min(sizes) < 1:
        raise click.BadParameter("sizes must be positive")
    return sizes


def _ef_values(_ctx: click.Context, _param: click.Parameter, value: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r}: use comma-separated ef_search values, e.g. 100,200,400") from None
    if not values or any(not 100 <= v <= 1000 for v in values):
        raise click.BadParameter("ef_search values must be between 100 (the leg depth) and 1000")
    return values


def _indexes(_ctx: click.Context, _param: click.Parameter, value: str) -> tuple[str, ...]:
    from bench._scale_build import ANCHOR, INDEX_VARIANTS

    chosen = tuple(dict.fromkeys(part.strip() for part in value.split(",") if part.strip()))
    unknown = [name for name in chosen if name not in INDEX_VARIANTS]
    if unknown:
        raise click.BadParameter(f"unknown index variant {unknown[0]!r}: use some of {', '.join(INDEX_VARIANTS)}")
    return (ANCHOR, *(name for name in chosen if name != ANCHOR))  # the anchor is always measured


@bench.command("scale")
@dataset_argument
@click.option(
    "--sizes", default="10000,100000,1000000", show_default=True, callback=_sizes, help="Collection sizes, in chunks."
)
@click.option("--split", default="test", show_default=True, help="Which qrels/<split>.tsv judges the queries.")
@click.option("--fresh", is_flag=True, help="Rebuild the collections even if present.")
@click.option("--drop", is_flag=True, help="Drop each collection after measuring it (they are kept for reuse).")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), help="Write the latency-vs-size PNG here.")
@click.option(
    "--ef-search",
    "ef_values",
    default="100,200,400,800",
    show_default=True,
    callback=_ef_values,
    help="HNSW ef_search values at which recall@10 and vector and hybrid latency are measured per size.",
)
@click.option(
    "--indexes",
    default="default",
    show_default=True,
    callback=_indexes,
    help="Vector index variants to compare per size, each in a collection of its own built from the same "
    "chunks and vectors: default (HNSW m 16, ef_construction 64, vector), halfvec, hnsw-m32 "
    "(m 32, ef_construction 128), ivfflat (lists rows/1000).",
)
@json_option
@out_option
@database_option
@cli_errors
def scale_command(
    dataset_dir: Path,
    sizes: tuple[int, ...],
    split: str,
    fresh: bool,
    drop: bool,
    plot: Path | None,
    ef_values: tuple[int, ...],
    indexes: tuple[str, ...],
    as_json: bool,
    out: Path | None,
    database_url: str | None,
) -> None:
    """Build time, sizes, latency, HNSW recall and bounded-BM25 error at growing sizes.

    Each collection holds the real corpus plus synthetic chunks (sentences resampled
    from a few real documents, vectors mixed from their embeddings plus noise: see
    `bench/scale.py`), so the real queries still judge quality. Collections are kept
    (about 7 GB at 1M chunks) and reused unless --fresh. On a 2-core machine the
    three default sizes take about an hour, most of it building 1M.

    --indexes compares vector indexes: per size, one more collection per variant (same
    chunks, same vectors), each variant's index bytes, build time alone, recall@10 and
    vector and hybrid p50/p95 beside today's index (default), with their ratios to it.

    \b
    Example:
        hybrid-rag bench scale ../shared/datasets/scifact --sizes 10000,100000 --plot docs/scale.png
        hybrid-rag bench scale ../shared/datasets/scifact --sizes 100000 --indexes default,halfvec,hnsw-m32,ivfflat
    """
    from bench._scale_report import scale_table, write_plot
    from bench.scale import run_scale_bench

    settings = settings_from(database_url)
    try:
        results = run_scale_bench(
            settings,
            dataset_dir,
            get_embedding_model(settings),
            sizes=sizes,
            split=split,
            fresh=fresh,
            keep=not drop,
            ef_values=ef_values,
            indexes=indexes,
        )
    except DatasetError as exc:
        raise CliError(str(exc)) from None
    if plot is not None:
        write_plot(results, plot)
    _emit(results, scale_table(results), as_json, out)


@bench.command("citus")
@dataset_argument
@click.option(
    "--cluster", metavar="URL", envvar="DATABASE_URL", show_envvar=True, required=True, help="Citus coordinator."
)
@click.option("--single", metavar="URL", help="Single node to compare with  [default: the embedded server]")
@click.option("--split", default="test", show_default=True, help="Which qrels/<split>.tsv judges the queries.")
@json_option
@out_option
@cli_errors
def citus_command(
    dataset_dir: Path, cluster: str, single: str | None, split: str, as_json: bool, out: Path | None
) -> None:
    """Ingest chunks/s, nDCG@10, top-10 overlap and p50/p95 database time: a Citus cluster vs a single node.

    The same chunks and embeddings go into a fresh collection on each (dropped afterwards);
    every query runs in each mode on both, in turns. Ratios are cluster/single, same run.

    \b
    Example:
        CITUS_PORT=9800 CITUS_SHARD_COUNT=8 bash tools/citus-cluster.sh start /tmp/bench-citus
        hybrid-rag bench citus ../shared/datasets/scifact --cluster postgresql://postgres@127.0.0.1:9800/hybrid_rag
    """
    from bench.citus import citus_table, run_citus_bench, server_settings

    anchor = server_settings(single)
    model = get_embedding_model(anchor)
    try:
        results = run_citus_bench(anchor, server_settings(cluster), dataset_dir, model, split=split)
    except DatasetError as exc:
        raise CliError(str(exc)) from None
    _emit(results, citus_table(results), as_json, out)


@bench.command("embed")
@dataset_argument
@click.option("--chunks", default=256, show_default=True, type=click.IntRange(min=1), help="Chunks per round.")
@click.option("--queries", default=100, show_default=True, type=click.IntRange(min=1), help="Queries per round.")
@click.option("--rounds", default=3, show_default=True, type=click.IntRange(min=1), help="Interleaved rounds.")
@click.option(
    "--budget", default=240, show_default=True, type=click.IntRange(min=1), help="Start no round after this (s)."
)
@click.option("--sweep", is_flag=True, help="Time ONNX Runtime settings one at a time instead (torch as anchor).")
@json_option
@out_option
@cli_errors
def embed_command(
    dataset_dir: Path,
    chunks: int,
    queries: int,
    rounds: int,
    budget: int,
    sweep: bool,
    as_json: bool,
    out: Path | None,
) -> None:
    """Chunks/s and query latency of the packaged model: sentence-transformers (torch) vs ONNX Runtime.

    Same chunks (cut as `hybrid-rag ingest` cuts them, embedded in its batches of 256) and the
    dataset's test queries one at a time, in rounds alternating which backend goes first; prints each
    round's figures with the machine's load average, the medians, and the cosine between the two
    backends' vectors. --sweep times ONNX Runtime's optimisation levels, threads and batch sizes.

    \b
    Example:
        hybrid-rag bench embed ../shared/datasets/scifact --rounds 3
        hybrid-rag bench embed ../shared/datasets/scifact --sweep --chunks 128 --queries 50
    """
    from bench.embed import bench_texts, embed_table, load_backends, run_embed_bench
    from bench.embed_sweep import run_onnx_sweep, sweep_table

    settings = settings_from(None)
    try:
        chunk_texts, query_texts = bench_texts(dataset_dir, chunks, queries)
    except DatasetError as exc:
        raise CliError(str(exc)) from None
    models = load_backends(settings)
    if sweep:
        cache = settings.data_home / "cache" / "onnx"
        results = run_onnx_sweep(models["torch"], cache, chunk_texts, query_texts, budget_s=budget)
        _emit(results, sweep_table(results), as_json, out)
        return
    results = run_embed_bench(models, chunk_texts, query_texts, rounds=rounds, budget_s=budget)
    _emit(results, embed_table(results), as_json, out)


@bench.command("cli")
@click.option("--collection", "-c", default="demo", show_default=True, help="Collection to search (see `make demo`).")
@click.option(
    "--query", default="how long do beans stay fresh", show_default=True, help="The question each run searches for."
)
@click.option("--repeat", default=5, show_default=True, type=click.IntRange(min=1), help="Timed runs per variant.")
@json_option
@out_option
@cli_errors
def cli_command(collection: str, query: str, repeat: int, as_json: bool, out: Path | None) -> None:
    """Wall time of the real `hybrid-rag search` from a cold process: hybrid on ONNX Runtime and on torch, and text.

    Every run is a fresh process of the installed command (after one untimed run of each
    variant); the variants take turns, and the load average is printed beside the medians.
    Settings (HYBRID_RAG_HOME, DATABASE_URL) come from the environment, as for any command.

    \b
    Example:
        hybrid-rag bench cli -c demo --repeat 7
    """
    from bench.startup import run_startup_bench, startup_table

    results = run_startup_bench(collection, query, repeat=repeat)
    _emit(results, startup_table(results), as_json, out)
