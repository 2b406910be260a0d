"""`bench embed --sweep`: ONNX Runtime settings one at a time, against the torch anchor of the same run.

From the defaults (`retriever.onnx_embeddings`), each setting is varied alone: graph optimisation
level, intra-op threads, batch size. Every configuration is a fresh session timed on the same chunks
(ingest batches) and queries (one at a time) as `bench embed`; sentence-transformers is timed before
and after the sweep, and each configuration's ratio is taken against the mean of the two.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.embed import INGEST_BATCH
from retriever.local_model import LocalEmbeddings
from retriever.onnx_embeddings import DEFAULT_BATCH_SIZE, DEFAULT_THREADS, OPTIMIZATION_LEVELS, OnnxEmbeddings

__all__ = ["run_onnx_sweep", "sweep_configurations", "sweep_table"]


def sweep_configurations(
    levels: tuple[str, ...] = OPTIMIZATION_LEVELS,
    threads: tuple[int, ...] = (1, 2),
    batch_sizes: tuple[int, ...] = (8, 16, 32, 64, 128),
) -> list[dict[str, Any]]:
    """The defaults, then each setting varied alone (no configuration twice)."""
    base = {"optimization": "all", "threads": DEFAULT_THREADS, "batch_size": DEFAULT_BATCH_SIZE}
    varied = [
        *({**base, "optimization": level} for level in levels),
        *({**base, "threads": count} for count in threads),
        *({**base, "batch_size": size} for size in batch_sizes),
    ]
    unique: list[dict[str, Any]] = [base]
    for config in varied:
        if config not in unique:
            unique.append(config)
    return unique


def _measure(model: LocalEmbeddings, chunks: list[str], queries: list[str]) -> dict[str, float]:
    model.embed_array(chunks[:8])
    started = time.perf_counter()
    for at in range(0, len(chunks), INGEST_BATCH):
        model.embed_array(chunks[at : at + INGEST_BATCH])
    rate = len(chunks) / (time.perf_counter() - started)
    times = []
    for query in queries:
        began = time.perf_counter()
        model.embed_array([query])
        times.append((time.perf_counter() - began) * 1000)
    return {
        "chunks_per_s": rate,
        "query_p50_ms": float(np.percentile(times, 50)),
        "query_p95_ms": float(np.percentile(times, 95)),
    }


def run_onnx_sweep(
    torch_model: LocalEmbeddings,
    cache_folder: Path,
    chunks: list[str],
    queries: list[str],
    configurations: list[dict[str, Any]] | None = None,
    *,
    budget_s: float = 240.0,
) -> dict[str, Any]:
    """Each configuration's chunks/s, query p50/p95, session load time and load average; torch before and after.

    Configurations not started within `budget_s` seconds are listed under "skipped".
    """
    started = time.perf_counter()
    before = {**_measure(torch_model, chunks, queries), "load": os.getloadavg()[0]}
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    for config in configurations or sweep_configurations():
        if time.perf_counter() - started > budget_s:
            skipped.append(config)
            continue
        began = time.perf_counter()
        model = OnnxEmbeddings(cache_folder, **config)
        load_s = time.perf_counter() - began
        rows.append({**config, **_measure(model, chunks, queries), "load_s": load_s, "load": os.getloadavg()[0]})
        del model
    after = {**_measure(torch_model, chunks, queries), "load": os.getloadavg()[0]}
    anchor = (before["chunks_per_s"] + after["chunks_per_s"]) / 2
    for row in rows:
        row["ratio"] = row["chunks_per_s"] / anchor
    return {"chunks": len(chunks), "queries": len(queries), "torch": [before, after], "onnx": rows, "skipped": skipped}


def sweep_table(results: dict[str, Any]) -> str:
    """One line per configuration, torch first and last."""
    header = (
        f"{'backend':<9}{'optimization':<14}{'threads':>8}{'batch':>7}{'load s':>8}{'ch/s':>8}{'ratio':>8}"
        f"{'q p50 ms':>10}{'q p95 ms':>10}{'load 1m':>9}"
    )
    lines = [
        f"embed --sweep: {results['chunks']} chunks in ingest batches, {results['queries']} queries one at a time",
        header,
        "-" * len(header),
    ]

    def torch_line(row: dict[str, Any]) -> str:
        return (
            f"{'torch':<9}{'(anchor)':<14}{'':>8}{'':>7}{'':>8}{row['chunks_per_s']:>8.1f}{'':>8}"
            f"{row['query_p50_ms']:>10.2f}{row['query_p95_ms']:>10.2f}{row['load']:>9.2f}"
        )

    lines.append(torch_line(results["torch"][0]))
    for row in results["onnx"]:
        lines.append(
            f"{'onnx':<9}{row['optimization']:<14}{row['threads']:>8}{row['batch_size']:>7}{row['load_s']:>8.2f}"
            f"{row['chunks_per_s']:>8.1f}{row['ratio']:>7.2f}×{row['query_p50_ms']:>10.2f}{row['query_p95_ms']:>10.2f}"
            f"{row['load']:>9.2f}"
        )
    lines.append(torch_line(results["torch"][1]))
    if results["skipped"]:
        lines.append(f"not measured (time budget): {results['skipped']}")
    return "\n".join(lines)
