"""Evaluation outputs: ``results.json``, TREC run files, a markdown table, a chart, a console table.

``results.json`` has this shape (other keys are allowed and kept)::

    {"dataset": str, "split": str, "queries": int,
     "modes": {MODE: {"ndcg@10": float, "recall@10": float, "recall@100": float, "mrr@10": float,
                      "latency_ms": {"p50": float, "p95": float},
                      "db_latency_ms": {"p50": float, "p95": float}}}}   # db_latency_ms optional

The chart needs ``matplotlib``, from the optional 'eval' extra: it is imported when a chart is
drawn, not when this module is imported.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eval.metrics import METRICS
from retriever import ConfigurationError

if TYPE_CHECKING:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

_LATENCY_KEYS = ("p50", "p95")
_CHART_METRICS = {"ndcg@10": "nDCG@10", "recall@10": "R@10", "recall@100": "R@100"}
# A log latency axis once the slowest bar is this many times the fastest one.
_LOG_SCALE_SPREAD = 20
_HEADERS = (
    "mode",
    "nDCG@10",
    "R@10",
    "R@100",
    "MRR@10",
    "p50 ms",
    "p95 ms",
    "db p50 ms",
)


def _matplotlib() -> tuple[type[Figure], type[FigureCanvasAgg]]:
    """matplotlib's ``Figure`` and Agg canvas, or a ``ConfigurationError`` naming the extra that provides them."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ConfigurationError(
            "hybrid-rag eval needs the 'eval' extra: pip install 'hybrid-rag[eval]' (missing: matplotlib)"
        ) from exc
    return Figure, FigureCanvasAgg


def validate_results(results: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` naming the first place where ``results`` breaks the documented shape."""
    _require(results, "dataset", str, "results")
    _require(results, "split", str, "results")
    _require(results, "queries", int, "results")
    modes = _require(results, "modes", dict, "results")
    if not modes:
        raise ValueError("results.modes: expected at least one mode")
    for mode in modes:
        scores = _require(modes, mode, dict, "results.modes")
        where = f"results.modes.{mode}"
        for metric in METRICS:
            _require(scores, metric, float, where)
        _require_latency(scores, "latency_ms", where)
        if "db_latency_ms" in scores:
            _require_latency(scores, "db_latency_ms", where)


def write_results(out_dir: Path, results: Mapping[str, Any]) -> None:
    """Validate ``results`` and write them to ``out_dir/results.json``."""
    validate_results(results)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


def write_trec_run(path: Path, run: Mapping[str, Mapping[str, float]], tag: str) -> None:
    """Write ``run`` as a TREC run file: ``qid Q0 docid rank score tag``, ranks from 1 by descending score."""
    _check_trec_field(tag, "tag")
    lines = []
    for qid, docs in run.items():
        _check_trec_field(qid, "query id")
        # sorted() is stable: equal scores keep the run's own order.
        ranked = sorted(docs.items(), key=lambda item: -item[1])
        for rank, (doc_id, score) in enumerate(ranked, start=1):
            _check_trec_field(doc_id, "document id")
            # repr() round-trips the float exactly, so no two scores collapse into a tie.
            lines.append(f"{qid} Q0 {doc_id} {rank} {float(score)!r} {tag}\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(lines), encoding="utf-8")


def write_markdown(out_dir: Path, results: Mapping[str, Any]) -> Path:
    """Write ``out_dir/report.md``: what was evaluated, then one table row per mode."""
    validate_results(results)
    rows = _rows(results)
    lines = [
        f"# Retrieval evaluation: {results['dataset']} ({results['split']})",
        "",
        f"Dataset `{results['dataset']}`, split `{results['split']}`, {results['queries']} queries.",
        "",
        "| " + " | ".join(_HEADERS) + " |",
        "|---|" + "---:|" * (len(_HEADERS) - 1),
        *("| " + " | ".join(row) + " |" for row in rows),
        "",
    ]
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def write_chart(out_dir: Path, results: Mapping[str, Any]) -> Path:
    """Write ``out_dir/chart.png``: effectiveness per mode on the left, latency per mode on the right."""
    validate_results(results)
    figure_class, canvas_class = _matplotlib()
    modes = list(results["modes"])
    figure = figure_class(figsize=(max(10.0, 2.2 * len(modes) + 6), 5.0), layout="constrained")
    canvas_class(figure)
    quality, latency = figure.subplots(1, 2)
    figure.suptitle(
        f"{results['dataset']} · {results['split']} split · {results['queries']} queries",
        fontweight="bold",
    )

    _grouped_bars(
        quality,
        modes,
        {label: [results["modes"][m][metric] for m in modes] for metric, label in _CHART_METRICS.items()},
        "{:.3f}",
    )
    quality.set_ylim(0, 1.2)
    quality.set_ylabel("score")
    quality.set_title("Effectiveness (higher is better)")

    percentiles = {key: [results["modes"][m]["latency_ms"][key] for m in modes] for key in _LATENCY_KEYS}
    _grouped_bars(latency, modes, percentiles, "{:.1f}")
    values = [v for series in percentiles.values() for v in series]
    if min(values) > 0 and max(values) / min(values) >= _LOG_SCALE_SPREAD:
        latency.set_yscale("log")
        latency.set_ylim(min(values) / 2, max(values) * 4)
        latency.set_ylabel("milliseconds per query (log scale)")
    else:
        latency.set_ylim(0, max(max(values), 1e-9) * 1.25)
        latency.set_ylabel("milliseconds per query")
    latency.set_title("Latency, end to end (lower is better)")

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "chart.png"
    figure.savefig(path, dpi=150)
    return path


def console_table(results: Mapping[str, Any]) -> str:
    """Render ``results`` as an aligned plain-text table for a terminal."""
    validate_results(results)
    table = [_HEADERS, *_rows(results)]
    widths = [max(len(row[i]) for row in table) for i in range(len(_HEADERS))]

    def line(row: tuple[str, ...]) -> str:
        cells = [
            row[0].ljust(widths[0]),
            *(cell.rjust(w) for cell, w in zip(row[1:], widths[1:], strict=True)),
        ]
        return "  ".join(cells).rstrip()

    title = f"{results['dataset']} ({results['split']}), {results['queries']} queries"
    rule = "-" * len(line(_HEADERS))
    return "\n".join([title, line(_HEADERS), rule, *(line(row) for row in table[1:])])


def _rows(results: Mapping[str, Any]) -> list[tuple[str, ...]]:
    rows = []
    for mode, scores in results["modes"].items():
        db = scores.get("db_latency_ms")
        rows.append(
            (
                str(mode),
                *(f"{scores[metric]:.3f}" for metric in METRICS),
                f"{scores['latency_ms']['p50']:.1f}",
                f"{scores['latency_ms']['p95']:.1f}",
                f"{db['p50']:.1f}" if db else "–",
            )
        )
    return rows


def _grouped_bars(axes: Any, modes: list[str], series: dict[str, list[float]], fmt: str) -> None:
    width = 0.8 / len(series)
    for i, (label, values) in enumerate(series.items()):
        positions = [m + (i - (len(series) - 1) / 2) * width for m in range(len(modes))]
        bars = axes.bar(positions, values, width, label=label)
        axes.bar_label(bars, fmt=fmt, fontsize=8, padding=2)
    axes.set_xticks(range(len(modes)), modes)
    axes.legend(loc="upper center", ncols=len(series), frameon=False)
    axes.grid(axis="y", alpha=0.3)
    axes.set_axisbelow(True)


def _require(obj: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in obj:
        raise ValueError(f"{where}: missing {key!r}")
    value = obj[key]
    # A float field also takes an int (0 latency, a perfect 1); bool is an int but never meant.
    kinds = (int, float) if kind is float else (kind,)
    if isinstance(value, bool) or not isinstance(value, kinds):
        message = f"{where}.{key}: expected {kind.__name__}, got {type(value).__name__}"
        raise ValueError(message)  # a ValueError by contract, even for a wrong type
    return value


def _require_latency(scores: Mapping[str, Any], key: str, where: str) -> None:
    latency = _require(scores, key, dict, where)
    for percentile in _LATENCY_KEYS:
        _require(latency, percentile, float, f"{where}.{key}")


def _check_trec_field(value: str, name: str) -> None:
    if not value or any(char.isspace() for char in value):
        raise ValueError(f"TREC run {name} must be non-empty and free of whitespace, got {value!r}")
