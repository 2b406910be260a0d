"""`hybrid-rag eval`: measure every retrieval mode on a BEIR-format collection, or sweep the fusion."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from eval.beir import DatasetError, load_beir
from eval.report import console_table
from eval.runner import DEFAULT_CHUNKING, EVAL_MODES, EvalParams, default_collection_name, run_eval
from eval.sweep import run_sweep, sweep_table
from ingest import ChunkingConfig
from retriever import SearchParams, validate_name
from retriever.cli.options import CliError, cli_errors, settings_from
from retriever.results import FUSIONS

__all__ = ["eval_command"]

_DEFAULT_WEIGHTS = ",".join(f"{weight:g}" for weight in SearchParams().weights)


def _modes(raw: str) -> tuple[str, ...]:
    modes = tuple(dict.fromkeys(part.strip() for part in raw.split(",") if part.strip()))
    unknown = [mode for mode in modes if mode not in EVAL_MODES]
    if unknown or not modes:
        raise CliError(f"unknown mode {', '.join(unknown) or repr(raw)}: use some of {','.join(EVAL_MODES)}")
    return modes


def _weights(raw: str) -> tuple[float, float]:
    try:
        vector, text = (float(part) for part in raw.split(","))
    except ValueError:
        raise CliError(f"--weights must be two numbers like 1,0.7 (vector,text), got {raw!r}") from None
    return vector, text


def _fusion(raw: str) -> str:
    if raw not in FUSIONS:
        raise CliError(f"unknown fusion {raw!r}: use one of {', '.join(FUSIONS)}")
    return raw


def _queries(ids: list[str], shown: int = 10) -> str:
    """'2 judged queries (q1, q2)', naming the first `shown`."""
    more = f" and {len(ids) - shown} more" if len(ids) > shown else ""
    return f"{len(ids)} judged {'query' if len(ids) == 1 else 'queries'} ({', '.join(ids[:shown])}{more})"


def query_notes(results: Mapping[str, Any]) -> list[str]:
    """A line each on the judged queries that failed, and those longer than the model's window (when any)."""
    notes = []
    failed = results.get("failed_queries") or {}
    if failed.get("count"):
        first = failed["ids"][0]
        notes.append(
            f"warning: the search refused {_queries(failed['ids'])}, each scored as an empty ranking "
            f"({first}: {failed['reasons'][first]})"
        )
    truncated = results.get("truncated_queries") or {}
    if truncated.get("count"):
        limit = truncated["limit_tokens"]
        notes.append(f"note: the embedding model read only the first {limit} tokens of {_queries(truncated['ids'])}")
    return notes


@click.command("eval")
@click.argument("dataset_dir", type=click.Path(path_type=Path))
@click.option("--split", help="Which qrels/<split>.tsv to score.  [default: test; train with --sweep]")
@click.option("--collection", "-c", help="Collection to ingest into and search.  [default: beir_<folder name>]")
@click.option("--modes", default=",".join(EVAL_MODES), show_default=True, help="Comma-separated modes to run.")
@click.option("-k", default=100, show_default=True, help="Documents ranked per query.")
@click.option("--out", type=click.Path(path_type=Path), help="Output folder.  [default: results/<folder>-<split>]")
@click.option("--chunk-size", default=DEFAULT_CHUNKING.chunk_size, show_default=True, help="Characters per chunk.")
@click.option(
    "--chunk-overlap", default=DEFAULT_CHUNKING.chunk_overlap, show_default=True, help="Characters neighbours share."
)
@click.option("--candidates", default=SearchParams().candidates, show_default=True, help="Per-leg depth of hybrid.")
@click.option(
    "--fusion",
    default=SearchParams().fusion,
    show_default=True,
    help="How hybrid combines its legs: rrf (reciprocal ranks), linear (min-max normalised scores) or linear_max "
    "(the vector leg's min-max normalised, the text leg's over its best).",
)
@click.option("--rrf-k", default=SearchParams().rrf_k, show_default=True, help="RRF constant of hybrid (rrf only).")
@click.option("--weights", default=_DEFAULT_WEIGHTS, show_default=True, help="Vector,text leg weights of hybrid.")
@click.option("--sweep", is_flag=True, help="Score a grid of fusion settings instead (see above).")
@click.option("--database-url", envvar="DATABASE_URL", help="PostgreSQL DSN (default: embedded in HYBRID_RAG_HOME).")
@cli_errors
def eval_command(
    dataset_dir: Path,
    split: str | None,
    collection: str | None,
    modes: str,
    k: int,
    out: Path | None,
    chunk_size: int,
    chunk_overlap: int,
    candidates: int,
    fusion: str,
    rrf_k: int,
    weights: str,
    sweep: bool,
    database_url: str | None,
) -> None:
    """Evaluate retrieval on a BEIR-format collection (corpus.jsonl[.gz], queries.jsonl, qrels/).

    Ingests the corpus through the normal ingest path (an unchanged collection is
    reused: 0 new chunks), runs every judged query through each mode, and scores
    nDCG@10, Recall@10, Recall@100 and MRR@10 with ir-measures. `bm25` is an
    in-memory rank-bm25 baseline over the same documents. Latency per query is end
    to end (query embedding + search) and database time, p50 and p95.

    BEIR documents are passages, so chunks default to 4000 characters with 200 of
    overlap: about one chunk per abstract, as in BEIR's protocol (the title is
    prefixed to each chunk). A document's score is its best chunk's.

    Writes results.json, <mode>.trec (TREC run files), report.md and chart.png into
    --out, and prints the table.

    Every judged query is searched whole (MAX_QUERY_CHARS guards requests only).
    A query the search refuses (e.g. an empty one) scores as an empty ranking, and
    one longer than the local model's token window is embedded from its start:
    both are listed in results.json (failed_queries, truncated_queries) and here.

    --sweep instead scores, for the hybrid mode on one split (train by default:
    tune on train, report on test), every fusion at candidates 50, 100 and 200
    with weights vector,text 1,1 1,0.7 0.7,1 1,0.5 0.5,1 1,1.5 1.5,1 1,0.3 0.3,1:
    rrf with every rrf_k of 5 10 20 40 60 100, linear and linear_max; it writes
    sweep.json and sweep.md.

    \b
    Example:
        hybrid-rag eval ../shared/datasets/scifact --sweep --out results/sweep
        hybrid-rag eval ../shared/datasets/scifact --weights 0.7,1
        hybrid-rag eval ../shared/datasets/scifact --fusion rrf --rrf-k 20 --weights 1,1.5
    """
    split = split or ("train" if sweep else "test")
    chosen_modes = _modes(modes)
    weight_pair = _weights(weights)
    fusion = _fusion(fusion)
    try:
        dataset = load_beir(dataset_dir, split)
    except DatasetError as exc:
        raise CliError(str(exc)) from None
    name = validate_name(collection or default_collection_name(dataset_dir))
    out = out or Path("results") / f"{dataset_dir.resolve().name}-{split}"
    chunking = ChunkingConfig(chunk_size, chunk_overlap)
    settings = settings_from(database_url)
    progress = sys.stderr.isatty()

    def echo(line: str) -> None:
        click.echo(line, err=True)

    echo(f"{dataset.root.resolve().name} ({split}): {len(dataset.queries)} judged queries, collection {name!r}")
    if sweep:
        swept = run_sweep(dataset, settings, name, out, k=k, chunking=chunking, progress=progress, echo=echo)
        click.echo(sweep_table(swept))
        for note in query_notes(swept):
            echo(note)
        click.echo(
            f"wrote {out / 'sweep.json'} and {out / 'sweep.md'} in {swept['wall_s']:.0f}s "
            f"(the legs in the database: {swept['legs_s']:.0f}s)"
        )
        return
    params = EvalParams(chosen_modes, k, candidates, rrf_k, weight_pair, chunking, fusion)
    results = run_eval(dataset, settings, name, params, out, progress=progress, echo=echo)
    click.echo(console_table(results))
    for note in query_notes(results):
        echo(note)
    click.echo(f"wrote results.json, report.md, chart.png and TREC runs to {out} in {results['wall_s']:.0f}s")
