"""`bench embed`: the packaged model in float32 (plain) vs int8 dynamic quantisation, on the same texts.

Both models embed the same evenly spread sample in every round; rounds alternate which
model goes first, so a busy machine slows both alike. The ratio is taken per round and
its median reported, with the cosine between the two models' vectors of each text.

The int8 candidate quantises every Linear layer per output channel at load time, in
memory, except each block's feed-forward output projection, whose inputs (GELU outputs) carry
outliers: on SciFact abstracts its cosine to plain is about 0.99, against 0.98 with
those layers quantised too and 0.92 with torch's default per-tensor scheme.
"""

from __future__ import annotations

import statistics
import time
import warnings
from collections.abc import Sequence
from typing import Any

import click
import numpy as np

from retriever.embeddings import LocalEmbeddings

__all__ = ["Int8LocalEmbeddings", "embed_table", "run_embed_bench"]


class Int8LocalEmbeddings(LocalEmbeddings):
    """The packaged model with int8 dynamic quantisation: the candidate the benchmark weighs against plain."""

    def __init__(self, batch_size: int = 64) -> None:
        super().__init__(batch_size)
        import torch
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        chosen = {
            name: per_channel_dynamic_qconfig
            for name, module in self._model.named_modules()
            if isinstance(module, torch.nn.Linear) and not _feed_forward_output(name)
        }
        with warnings.catch_warnings():  # torch.ao.quantization's deprecation notices, once per tensor
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", UserWarning)
            quantize_dynamic(self._model, chosen, inplace=True)


def _feed_forward_output(name: str) -> bool:
    return name.endswith("output.dense") and ".attention." not in name


def _sample(texts: Sequence[str], size: int) -> list[str]:
    step = max(1, len(texts) // size)
    return list(texts[::step][:size])


def _timed(model: LocalEmbeddings, texts: list[str]) -> tuple[float, np.ndarray]:
    started = time.perf_counter()
    vectors = model.embed_array(texts)
    return len(texts) / (time.perf_counter() - started), vectors


def run_embed_bench(texts: list[str], *, rounds: int = 3, sample: int = 256) -> dict[str, Any]:
    """Chunks/s of plain and int8 in interleaved rounds, their ratio, and how close their vectors are."""
    if not texts:
        raise click.ClickException("no texts to embed")
    if rounds < 1 or sample < 1:
        raise click.ClickException("rounds and sample must be at least 1")
    import torch

    chosen = _sample(texts, sample)
    models: dict[str, LocalEmbeddings] = {"plain": LocalEmbeddings(), "int8": Int8LocalEmbeddings()}
    for model in models.values():
        model.embed_array(chosen[:8])  # the first encode pays one-off costs
    runs: list[dict[str, Any]] = []
    vectors: dict[str, np.ndarray] = {}
    for round_ in range(rounds):
        order = ("plain", "int8") if round_ % 2 == 0 else ("int8", "plain")
        speed: dict[str, float] = {}
        for which in order:
            speed[which], vectors[which] = _timed(models[which], chosen)
        runs.append({"first": order[0], **speed, "ratio": speed["int8"] / speed["plain"]})
    cosine = np.einsum("ij,ij->i", vectors["plain"], vectors["int8"])
    return {
        "texts": len(chosen),
        "rounds": runs,
        "threads": torch.get_num_threads(),
        "plain_chunks_per_s": statistics.median(run["plain"] for run in runs),
        "int8_chunks_per_s": statistics.median(run["int8"] for run in runs),
        "ratio_median": statistics.median(run["ratio"] for run in runs),
        "cosine_mean": float(cosine.mean()),
        "cosine_min": float(cosine.min()),
    }


def embed_table(results: dict[str, Any]) -> str:
    """The results as a table people read: one line per round, then the medians and the cosine."""
    header = f"{'round':<8} {'first':<6} {'plain/s':>9} {'int8/s':>9} {'int8 vs plain':>14}"
    lines = [
        f"embed: {results['texts']} texts, packaged all-MiniLM-L6-v2 on CPU ({results['threads']} threads), "
        "plain float32 vs int8 dynamic quantisation",
        header,
        "-" * len(header),
    ]
    for number, run in enumerate(results["rounds"], 1):
        lines.append(f"{number:<8} {run['first']:<6} {run['plain']:>9.1f} {run['int8']:>9.1f} {run['ratio']:>13.2f}×")
    lines.append(
        f"{'median':<15} {results['plain_chunks_per_s']:>9.1f} {results['int8_chunks_per_s']:>9.1f} "
        f"{results['ratio_median']:>13.2f}×"
    )
    lines.append(f"cosine int8 vs plain: mean {results['cosine_mean']:.4f}, min {results['cosine_min']:.4f}")
    return "\n".join(lines)
