"""`bench embed`: the packaged model on sentence-transformers (torch, the anchor) vs ONNX Runtime, same texts.

Chunks are cut as `hybrid-rag ingest` cuts them by default (title heading each chunk, 1000 characters,
150 shared), an evenly spread sample of the corpus; they are embedded in slices of 256, the batches
the ingest pipeline hands the model. Queries are the dataset's judged questions, embedded one at a
time, all of one backend's then all of the other's (as a process running one backend embeds them).
Rounds alternate which backend goes first, so a busy machine slows both alike; ratios are taken per
round and their median reported, with the 1-minute load average (`os.getloadavg`) at the start and
end of every round. Rounds stop early once the run passes its time budget (at least one round always runs).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click
import numpy as np

from bench._data import corpus_file, load_corpus
from eval import load_beir
from ingest import ChunkingConfig
from retriever.local_model import LocalEmbeddings
from retriever.onnx_embeddings import OnnxEmbeddings
from retriever.settings import Settings
from retriever.torch_embeddings import SentenceTransformerEmbeddings

__all__ = ["INGEST_BATCH", "bench_texts", "embed_table", "load_backends", "run_embed_bench", "spread"]

INGEST_BATCH = 256  # chunks per `embed_documents` call in the ingest pipeline
BACKENDS = ("torch", "onnx")


def spread(items: Sequence[str], count: int) -> list[str]:
    """`count` items evenly spread over `items` (all of them when there are fewer)."""
    step = max(1, len(items) // max(count, 1))
    return list(items[::step][:count])


def bench_texts(dataset_dir: Path, chunks: int, queries: int, split: str = "test") -> tuple[list[str], list[str]]:
    """Chunks cut with ingest's default chunking and judged queries of `split`, each evenly spread.

    Raises `eval.DatasetError` when the folder lacks a corpus, queries or judgements.
    """
    dataset = load_beir(dataset_dir, split)
    texts = load_corpus(corpus_file(dataset_dir), chunking=ChunkingConfig()).texts
    return spread(texts, chunks), spread(list(dataset.queries.values()), queries)


def load_backends(settings: Settings) -> dict[str, LocalEmbeddings]:
    """Both backends, ONNX with its defaults (its graph cached in `settings.data_home`)."""
    return {
        "torch": SentenceTransformerEmbeddings(),
        "onnx": OnnxEmbeddings(settings.data_home / "cache" / "onnx"),
    }


def _ingest_rate(model: LocalEmbeddings, chunks: list[str]) -> tuple[float, np.ndarray]:
    started = time.perf_counter()
    parts = [model.embed_array(chunks[at : at + INGEST_BATCH]) for at in range(0, len(chunks), INGEST_BATCH)]
    return len(chunks) / (time.perf_counter() - started), np.concatenate(parts)


def _query_times(models: Mapping[str, LocalEmbeddings], queries: list[str], order: tuple[str, ...]) -> dict:
    """Milliseconds per query for each backend, each backend's queries in a block of their own.

    Not one query each in turn: then each call starts while the other library's worker threads are still
    spinning after their own call (torch's OpenMP pool, onnxruntime's), and the two share two cores.
    """
    times: dict[str, list[float]] = {name: [] for name in order}
    for name in order:
        for query in queries:
            started = time.perf_counter()
            models[name].embed_array([query])
            times[name].append((time.perf_counter() - started) * 1000)
    return times


def _percentiles(values: list[float]) -> dict[str, float]:
    return {"p50": float(np.percentile(values, 50)), "p95": float(np.percentile(values, 95))}


def run_embed_bench(
    models: Mapping[str, LocalEmbeddings],
    chunks: list[str],
    queries: list[str],
    *,
    rounds: int = 3,
    budget_s: float = 240.0,
) -> dict[str, Any]:
    """Chunks/s on ingest batches and single-query latency of "torch" and "onnx", per round and as medians.

    Also the cosine between the two backends' vectors of every chunk and query. Raises
    `click.ClickException` on an empty sample or fewer than one round.
    """
    if not chunks or not queries:
        raise click.ClickException("no chunks or no queries to embed")
    if rounds < 1:
        raise click.ClickException("rounds must be at least 1")
    for model in models.values():
        model.embed_array(chunks[:8])  # the first calls pay one-off costs
    started = time.perf_counter()
    runs: list[dict[str, Any]] = []
    vectors: dict[str, np.ndarray] = {}
    query_vectors = {name: model.embed_array(queries) for name, model in models.items()}
    for round_ in range(rounds):
        if runs and time.perf_counter() - started > budget_s:
            break
        order = BACKENDS if round_ % 2 == 0 else BACKENDS[::-1]
        run: dict[str, Any] = {"first": order[0], "load_start": os.getloadavg()[0]}
        for name in order:
            run[f"{name}_chunks_per_s"], vectors[name] = _ingest_rate(models[name], chunks)
        for name, values in _query_times(models, queries, order).items():
            run[f"{name}_query_ms"] = _percentiles(values)
        run["ratio"] = run["onnx_chunks_per_s"] / run["torch_chunks_per_s"]
        run["load_end"] = os.getloadavg()[0]
        runs.append(run)
    chunk_cosine = np.einsum("ij,ij->i", vectors["torch"], vectors["onnx"])
    query_cosine = np.einsum("ij,ij->i", query_vectors["torch"], query_vectors["onnx"])
    onnx = models["onnx"]
    return {
        "chunks": len(chunks),
        "queries": len(queries),
        "rounds": runs,
        "seconds": time.perf_counter() - started,
        "cpus": os.cpu_count(),
        "onnx_settings": {key: getattr(onnx, key, None) for key in ("batch_size", "threads", "optimization")},
        "median": {
            **{f"{name}_chunks_per_s": statistics.median(r[f"{name}_chunks_per_s"] for r in runs) for name in BACKENDS},
            **{
                f"{name}_query_p50_ms": statistics.median(r[f"{name}_query_ms"]["p50"] for r in runs)
                for name in BACKENDS
            },
            **{
                f"{name}_query_p95_ms": statistics.median(r[f"{name}_query_ms"]["p95"] for r in runs)
                for name in BACKENDS
            },
            "ratio": statistics.median(r["ratio"] for r in runs),
        },
        "cosine": {
            "chunks_min": float(chunk_cosine.min()),
            "chunks_mean": float(chunk_cosine.mean()),
            "queries_min": float(query_cosine.min()),
        },
    }


def embed_table(results: dict[str, Any]) -> str:
    """One line per round (chunks/s, ratio, query p50/p95, load), then the medians and the cosines."""
    header = (
        f"{'round':<7}{'first':<6}{'torch ch/s':>11}{'onnx ch/s':>10}{'ratio':>8}"
        f"{'torch q p50/p95 ms':>20}{'onnx q p50/p95 ms':>19}{'load 1m':>14}"
    )
    lines = [
        f"embed: {results['chunks']} chunks in ingest batches of {INGEST_BATCH}, {results['queries']} queries "
        f"one at a time; sentence-transformers (torch) vs ONNX Runtime {results['onnx_settings']}, "
        f"{results['cpus']} CPUs",
        header,
        "-" * len(header),
    ]

    def queries(ms: dict[str, float]) -> str:
        return f"{ms['p50']:.1f} / {ms['p95']:.1f}"

    for number, run in enumerate(results["rounds"], 1):
        lines.append(
            f"{number:<7}{run['first']:<6}{run['torch_chunks_per_s']:>11.1f}{run['onnx_chunks_per_s']:>10.1f}"
            f"{run['ratio']:>7.2f}×{queries(run['torch_query_ms']):>20}{queries(run['onnx_query_ms']):>19}"
            f"{run['load_start']:>7.2f}→{run['load_end']:.2f}"
        )
    median = results["median"]
    lines.append(
        f"{'median':<13}{median['torch_chunks_per_s']:>11.1f}{median['onnx_chunks_per_s']:>10.1f}"
        f"{median['ratio']:>7.2f}×"
        f"{queries({'p50': median['torch_query_p50_ms'], 'p95': median['torch_query_p95_ms']}):>20}"
        f"{queries({'p50': median['onnx_query_p50_ms'], 'p95': median['onnx_query_p95_ms']}):>19}"
    )
    cosine = results["cosine"]
    lines.append(
        f"cosine onnx vs torch: chunks min {cosine['chunks_min']:.6f} mean {cosine['chunks_mean']:.6f}, "
        f"queries min {cosine['queries_min']:.6f}; {results['seconds']:.0f} s"
    )
    return "\n".join(lines)
