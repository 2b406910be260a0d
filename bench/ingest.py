"""`bench ingest`: our bulk writer vs `PGVectorStore.aadd_embeddings`, same embeddings, same final state.

Each round loads the same chunks and precomputed embeddings into a fresh collection
(ours) and a fresh PGVectorStore table, times each end to end (indexes and ANALYZE
included), checks that both hold the same rows, tsvectors, embeddings, GIN and HNSW
indexes, and drops them. Rounds alternate which store goes first; the median counts.
In each round, once both are loaded, every tenth document is written again into each as
a changed document of the same size would be (`replace_ours`, `replace_pgvectorstore`),
and the first round checks the stores still agree afterwards.

It also bounds what any writer could reach here: the work that the final state itself
requires (every `to_tsvector`, the GIN and HNSW builds; ours adds the posting blocks),
each timed alone, spread perfectly over this machine's cores, against the anchor.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import click
import numpy as np
from psycopg import sql

from bench._data import Corpus, PrecomputedEmbeddings, cached_embeddings, embedding_throughput, load_corpus
from bench._stores import (
    checkpoint,
    drop_ours,
    drop_pgvectorstore,
    final_state,
    load_ours,
    load_pgvectorstore,
    replace_ours,
    replace_pgvectorstore,
)
from retriever import Engine, Settings
from retriever.embeddings import EmbeddingModel
from retriever.store.collections import get_collection
from retriever.store.database import primary_dsn
from retriever.store.postings import refresh_postings
from retriever.store.writer import PreparedDocument

__all__ = ["run_ingest_bench"]


def run_ingest_bench(
    settings: Settings,
    corpus_path: Path,
    model: EmbeddingModel,
    *,
    rows: int | None = None,
    repeat: int = 1,
    embed_sample: int = 256,
) -> dict[str, Any]:
    """Run the ingest benchmark and return its JSON-ready results."""
    corpus = load_corpus(corpus_path, rows=rows)
    texts = corpus.texts
    if not texts:
        raise click.ClickException(f"{corpus_path} holds no documents")
    vectors = cached_embeddings(settings, model, texts)
    embeddings = PrecomputedEmbeddings(texts, vectors)
    dsn = primary_dsn(settings)
    changed, changed_vectors = _changed(corpus, vectors)
    runs: list[dict[str, Any]] = []
    replaced: list[dict[str, float]] = []
    state: dict[str, Any] | None = None
    work: dict[str, float] = {}
    for round_ in range(repeat):
        tag = uuid.uuid4().hex[:10]
        collection, table = f"bench_ingest_{tag}", f"bench_pgvs_{tag}"
        try:
            timings: dict[str, dict[str, float]] = {}
            order = ("ours", "pgvectorstore") if round_ % 2 == 0 else ("pgvectorstore", "ours")
            for which in order:
                click.echo(f"round {round_ + 1}/{repeat}: loading {len(texts)} rows with {which}", err=True)
                checkpoint(settings)
                if which == "ours":
                    timings[which] = load_ours(settings, collection, corpus, vectors, model.name)
                else:
                    timings[which] = asyncio.run(load_pgvectorstore(dsn, table, corpus, vectors, embeddings))
            if state is None:
                state = final_state(settings, collection, table)
                if not state["same"]:
                    raise click.ClickException(f"the two stores differ after loading: {state}")
                work = _work_alone(settings, collection)
            runs.append(timings)
            click.echo(f"round {round_ + 1}/{repeat}: writing {len(changed)} changed documents again", err=True)
            replaced.append(
                {
                    which: replace_ours(settings, collection, changed, changed_vectors)
                    if which == "ours"
                    else asyncio.run(replace_pgvectorstore(dsn, table, changed, changed_vectors, embeddings))
                    for which in order
                }
            )
            if round_ == 0:  # the same texts again: the same rows and postings
                after = final_state(settings, collection, table)
                if not after["same"] or after["ours"]["postings"] != state["ours"]["postings"]:
                    raise click.ClickException(f"the stores changed in writing documents again: {after}")
        finally:
            drop_ours(settings, collection)
            drop_pgvectorstore(settings, table)
    click.echo(f"measuring {model.name} on {min(embed_sample, len(texts))} chunks", err=True)
    throughput = embedding_throughput(model, texts, sample=embed_sample)
    results = _results(
        corpus_path, len(corpus.documents), len(texts), int(vectors.shape[1]), model, runs, state, throughput, work
    )
    return results | {"replace": _replace_summary(replaced, changed)}


_CHANGED_EVERY = 10  # every tenth document is written again


def _changed(corpus: Corpus, vectors: np.ndarray) -> tuple[list[PreparedDocument], np.ndarray]:
    """Every tenth document with its chunks' vectors (rows of `vectors`, in corpus order)."""
    starts = np.cumsum([0] + [len(document.chunks) for document in corpus.documents])
    picked = range(0, len(corpus.documents), _CHANGED_EVERY)
    rows = [row for i in picked for row in range(starts[i], starts[i + 1])]
    return [corpus.documents[i] for i in picked], vectors[rows]


def _replace_summary(replaced: list[dict[str, float]], changed: list[PreparedDocument]) -> dict[str, Any]:
    ours, theirs = (statistics.median(run[which] for run in replaced) for which in ("ours", "pgvectorstore"))
    return {
        "documents": len(changed),
        "chunks": sum(len(document.chunks) for document in changed),
        "ours_s": ours,
        "pgvectorstore_s": theirs,
        "ratio": theirs / ours,
        "runs_s": replaced,
    }


_TSVECTORS = "SELECT count(to_tsvector(%(config)s::regconfig, content)) FROM {chunks}"


def _work_alone(settings: Settings, name: str) -> dict[str, float]:
    """Seconds of the loaded collection's CPU-bound steps, each alone on one backend: the tsvectors, the postings."""
    with Engine(settings).connection() as conn:
        collection = get_collection(conn, name)
        conn.execute("SET max_parallel_workers_per_gather = 0")
        started = time.perf_counter()
        conn.execute(sql.SQL(_TSVECTORS).format(chunks=collection.table()), {"config": collection.text_config})
        tsvectors = time.perf_counter() - started
        with conn.transaction(force_rollback=True):  # the same blocks again, then put back as they were
            started = time.perf_counter()
            refresh_postings(conn, collection)
            postings = time.perf_counter() - started
    return {"tsvector_s": tsvectors, "postings_s": postings}


def _cores() -> int:
    """The cores this process may use (where the embedded server runs too)."""
    if hasattr(os, "sched_getaffinity"):  # Linux: honours CPU affinity, as containers set it
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _ceiling(work: dict[str, float], anchor: dict[str, Any], cores: int) -> dict[str, Any]:
    """The best ratio any writer could reach on `cores` cores, with and without building posting blocks.

    Generous on purpose: it assumes every step spreads over all cores with nothing else
    to do (no COPY, no writes of the chunks or their b-trees), though the GIN build runs
    on one and the HNSW build's time is already its parallel time. The postings' time is
    a whole rebuild: blocks written, indexed and analyzed.
    """
    required = work["tsvector_s"] + anchor["phases_s"]["gin"] + anchor["phases_s"]["hnsw"]
    floor = (required + work["postings_s"]) / cores
    return {
        "cores": cores,
        **work,
        "gin_s": anchor["phases_s"]["gin"],
        "hnsw_s": anchor["phases_s"]["hnsw"],
        "floor_s": floor,
        "max_ratio": anchor["seconds"] / floor,
        "floor_without_postings_s": required / cores,
        "max_ratio_without_postings": anchor["seconds"] / (required / cores),
    }


def _summary(runs: list[dict[str, dict[str, float]]], which: str, rows: int) -> dict[str, Any]:
    totals = [run[which]["total"] for run in runs]
    seconds = statistics.median(totals)
    phases = {name: statistics.median(run[which][name] for run in runs) for name in runs[0][which]}
    return {"seconds": seconds, "rows_per_s": rows / seconds, "phases_s": phases, "runs_s": totals}


def _results(
    corpus_path: Path,
    documents: int,
    rows: int,
    dimensions: int,
    model: EmbeddingModel,
    runs: list[dict[str, dict[str, float]]],
    state: dict[str, Any] | None,
    throughput: float,
    work: dict[str, float],
) -> dict[str, Any]:
    ours = _summary(runs, "ours", rows)
    theirs = _summary(runs, "pgvectorstore", rows)
    return {
        "corpus": str(corpus_path),
        "documents": documents,
        "rows": rows,
        "dimensions": dimensions,
        "model": model.name,
        "repeat": len(runs),
        "ours_rows_per_s": ours["rows_per_s"],
        "pgvectorstore_rows_per_s": theirs["rows_per_s"],
        "ratio": ours["rows_per_s"] / theirs["rows_per_s"],
        "ratio_per_round": [run["pgvectorstore"]["total"] / run["ours"]["total"] for run in runs],
        "embed_chunks_per_s": throughput,
        "ours": ours,
        "pgvectorstore": theirs,
        "ceiling": _ceiling(work, theirs, _cores()),
        "same_final_state": bool(state and state["same"]),
        "final_state": state,
    }


def ingest_table(results: dict[str, Any]) -> str:
    """The results as a table people read, PGVectorStore as the anchor."""
    anchor = results["pgvectorstore_rows_per_s"]
    header = f"{'method':<58} {'seconds':>8} {'rows/s':>9} {'vs anchor':>10}"
    lines = [
        f"ingest: {results['rows']} rows ({results['documents']} documents, {results['dimensions']}-d "
        f"{results['model']}), precomputed embeddings, median of {results['repeat']} run(s)",
        header,
        "-" * len(header),
    ]
    ours, theirs = results["ours"], results["pgvectorstore"]
    for label, block in (
        ("PGVectorStore.aadd_embeddings + GIN + HNSW (anchor)", theirs),
        ("hybrid-rag write_documents (COPY + postings) + indexes", ours),
    ):
        lines.append(
            f"{label:<58} {block['seconds']:>8.2f} {block['rows_per_s']:>9,.0f} {block['rows_per_s'] / anchor:>9.2f}×"
        )
    lines.append("")
    lines.append("phases, seconds: ours " + _phases(ours) + "; PGVectorStore " + _phases(theirs))
    lines.append(f"same final state (rows, tsvector, embeddings, GIN, HNSW): {results['same_final_state']}")
    replace = results["replace"]
    lines.append(
        f"changed documents written again: {replace['documents']} ({replace['chunks']} chunks): PGVectorStore "
        f"adelete + aadd_embeddings {replace['pgvectorstore_s']:.2f} s, hybrid-rag ingest's replace "
        f"{replace['ours_s']:.2f} s: {replace['ratio']:.2f}× (the same state after)"
    )
    ceiling = results["ceiling"]
    lines.append(
        f"ceiling on {ceiling['cores']} core(s), each step timed alone: to_tsvector {ceiling['tsvector_s']:.2f} s + "
        f"GIN {ceiling['gin_s']:.2f} s + HNSW {ceiling['hnsw_s']:.2f} s (PGVectorStore's builds) needs "
        f"≥ {ceiling['floor_without_postings_s']:.2f} s: at most {ceiling['max_ratio_without_postings']:.2f}×; "
        f"with our posting blocks ({ceiling['postings_s']:.2f} s) ≥ {ceiling['floor_s']:.2f} s: "
        f"at most {ceiling['max_ratio']:.2f}×"
    )
    lines.append(f"local embedding model: {results['embed_chunks_per_s']:.1f} chunks/s")
    return "\n".join(lines)


def _phases(block: dict[str, Any]) -> str:
    return ", ".join(f"{name} {value:.2f}" for name, value in block["phases_s"].items() if name != "total")
