"""`bench cli`: wall time of the real `hybrid-rag search` command, each run a fresh process.

Three variants of one query against one collection: hybrid on the ONNX Runtime backend, hybrid on
sentence-transformers (`EMBEDDINGS=local:torch`, the anchor), and text mode (which embeds nothing).
Each variant runs once untimed first, so the embedded server is up and the ONNX graph exported; then
`repeat` rounds run every variant once, in turn, each from a cold interpreter (`python -X importtime`
would change it: the figure is what a user waits for, from exec to exit). Reports the median and spread
of each variant's wall times and its median CPU time (user + system: what the process needed, whatever
the machine's load), with the 1-minute load average (`os.getloadavg`, what `uptime` prints)
before and after.
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click

__all__ = ["VARIANTS", "cli_command_line", "run_startup_bench", "startup_table"]

# label → (extra search options, EMBEDDINGS)
VARIANTS: dict[str, tuple[tuple[str, ...], str]] = {
    "hybrid, onnx": ((), "local:onnx"),
    "hybrid, torch": ((), "local:torch"),
    "text": (("--mode", "text"), "local:onnx"),
}


def cli_command_line() -> list[str]:
    """The installed `hybrid-rag` script beside this interpreter, else `python -m hybrid_rag`."""
    script = Path(sys.executable).parent / "hybrid-rag"
    if script.is_file():
        return [str(script)]
    found = shutil.which("hybrid-rag")
    return [found] if found else [sys.executable, "-m", "hybrid_rag"]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run_once(argv: Sequence[str], env: Mapping[str, str]) -> tuple[float, float]:
    """(wall seconds from start to exit, CPU seconds) of one process; `click.ClickException` if it fails."""
    cpu = _children_cpu()
    started = time.perf_counter()
    done = subprocess.run(list(argv), env=dict(env), capture_output=True, text=True, timeout=600, check=False)
    elapsed = time.perf_counter() - started, _children_cpu() - cpu
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise click.ClickException(f"{' '.join(argv[-6:])} exited with {done.returncode}: {last}")
    return elapsed


def run_startup_bench(
    collection: str,
    query: str,
    *,
    repeat: int = 5,
    variants: Mapping[str, tuple[tuple[str, ...], str]] = VARIANTS,
    command: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Median, min and max wall seconds of `hybrid-rag search QUERY -c COLLECTION` per variant.

    Raises `click.ClickException` when a run fails (an unknown collection, say) or `repeat` < 1.
    """
    if repeat < 1:
        raise click.ClickException("repeat must be at least 1")
    program = list(command or cli_command_line())
    base = [*program, "search", query, "-c", collection, "-k", "10"]
    environment = {**(env if env is not None else os.environ), "HF_HUB_OFFLINE": "1"}
    runs = {
        label: ([*base, *options], {**environment, "EMBEDDINGS": embeddings})
        for label, (options, embeddings) in variants.items()
    }
    for argv, child_env in runs.values():
        _run_once(argv, child_env)  # warm: the server started, the graph exported, the OS's file cache filled
    load_start = os.getloadavg()[0]
    times: dict[str, list[tuple[float, float]]] = {label: [] for label in runs}
    for _ in range(repeat):
        for label, (argv, child_env) in runs.items():
            times[label].append(_run_once(argv, child_env))
    return {
        "collection": collection,
        "query": query,
        "repeat": repeat,
        "command": program,
        "load_start": load_start,
        "load_end": os.getloadavg()[0],
        "variants": {
            label: {
                "median_s": statistics.median(wall for wall, _ in values),
                "min_s": min(wall for wall, _ in values),
                "max_s": max(wall for wall, _ in values),
                "cpu_median_s": statistics.median(cpu for _, cpu in values),
                "runs_s": [wall for wall, _ in values],
            }
            for label, values in times.items()
        },
    }


def startup_table(results: Mapping[str, Any]) -> str:
    """One line per variant: median, min and max wall seconds, median CPU seconds; then the load average."""
    header = f"{'variant':<16}{'median s':>10}{'min s':>8}{'max s':>8}{'CPU s':>8}"
    lines = [
        f"bench cli: `hybrid-rag search {results['query']!r} -c {results['collection']}`, "
        f"{results['repeat']} fresh processes per variant, taking turns",
        header,
        "-" * len(header),
    ]
    for label, row in results["variants"].items():
        lines.append(
            f"{label:<16}{row['median_s']:>10.2f}{row['min_s']:>8.2f}{row['max_s']:>8.2f}{row['cpu_median_s']:>8.2f}"
        )
    lines.append(f"load 1m {results['load_start']:.2f} → {results['load_end']:.2f} on {os.cpu_count()} CPUs")
    return "\n".join(lines)
