"""What `bench scale` prints and draws: a table per size, and latency against size (log-log)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["scale_table", "write_plot"]


def scale_table(results: dict[str, Any]) -> str:
    """One block per size: build, sizes, then a row per mode."""
    lines = [f"scale: {results['queries']} {results['split']} queries, database time, warm, one client"]
    for entry in results["sizes"]:
        build = entry["build"]
        lines.append("")
        lines.append(
            f"{entry['chunks']:,} chunks: built in {build['total_s']:.0f} s wall (loading {build['load_s']:.0f} s, "
            f"of which {build['generate_s']:.0f} s generating text and vectors; then postings and indexes "
            f"{build['indexes_s']:.0f} s, ANALYZE {build['analyze_s']:.0f} s), {entry['total_bytes'] / 1e9:.2f} GB: "
            + ", ".join(f"{k} {v / 1e6:.0f} MB" for k, v in {**entry["tables_bytes"], **entry["indexes_bytes"]}.items())
        )
        header = f"  {'mode':<36} {'nDCG@10':>8} {'p50 ms':>8} {'p95 ms':>8}"
        lines.append(header)
        for mode in entry["modes"].values():
            lines.append(f"  {mode['label']:<36} {mode['ndcg@10']:>8.4f} {mode['p50_ms']:>8.1f} {mode['p95_ms']:>8.1f}")
        lines.append(
            f"  HNSW recall@10 vs exact {entry['hnsw_recall@10']:.3f}; text vs exact BM25: "
            f"Δ nDCG@10 {entry['text_ndcg@10_minus_exact']:+.4f}, top-10 overlap "
            f"{entry['text_top10_overlap_with_exact']:.3f}; hybrid vs hybrid with exact BM25: "
            f"Δ nDCG@10 {entry['hybrid_ndcg@10_minus_exact_text']:+.4f}, top-10 overlap "
            f"{entry['hybrid_top10_overlap_with_exact_text']:.3f}"
        )
        for point in entry.get("ef_search_sweep", []):
            lines.append(
                f"  ef_search {point['ef_search']}: HNSW recall@10 {point['recall@10']:.3f}; p50 / p95 ms: "
                f"vector {point['vector_p50_ms']:.1f} / {point['vector_p95_ms']:.1f}, "
                f"hybrid {point['hybrid_p50_ms']:.1f} / {point['hybrid_p95_ms']:.1f}"
            )
        if "indexes" in entry:
            lines.extend(_index_rows(entry["indexes"]))
    return "\n".join(lines)


def _times(figures: dict[str, Any], ratios: dict[str, float], key: str) -> str:
    """`p50 / p95 (r50× / r95×)` of one mode, ratios to the anchor."""
    p50, p95 = figures[f"{key}_p50_ms"], figures[f"{key}_p95_ms"]
    return f"{p50:.1f} / {p95:.1f} ({ratios[f'{key}_p50_ms']:.2f}× / {ratios[f'{key}_p95_ms']:.2f}×)"


def _index_rows(variants: dict[str, dict[str, Any]]) -> list[str]:
    """The vector index variants side by side, ratios to the first (the anchor) in brackets."""
    anchor = next(iter(variants.values()))
    lines = [
        "  vector index variants, same chunks and vectors, at the default ef_search; (×) is the ratio to "
        + next(iter(variants)),
        f"  {'variant':<9} {'index':<44} {'index MB':>15} {'build s':>14} {'recall@10':>9}  "
        f"{'vector p50 / p95 ms':<27}  {'hybrid p50 / p95 ms':<29}",
    ]
    for variant, entry in variants.items():
        ratios = entry["ratios"]
        flat = {f"{key}_{stat}": mode[stat] for key, mode in entry["modes"].items() for stat in ("p50_ms", "p95_ms")}
        lines.append(
            f"  {variant:<9} {entry['label']:<44} "
            f"{entry['index']['bytes'] / 1e6:>6.1f} ({ratios['index_bytes']:.2f}×) "
            f"{entry['build_s']:>5.1f} ({ratios['build_s']:.2f}×) {entry['recall@10']:>9.3f}  "
            f"{_times(flat, ratios, 'vector'):<27}  {_times(flat, ratios, 'hybrid'):<29}"
        )
    at = {point["ef_search"]: point for point in anchor["ef_search_sweep"]}
    for variant, entry in variants.items():
        for point in entry["ef_search_sweep"]:
            base = at.get(point["ef_search"])
            if base is None:
                continue
            ratios = {k: point[k] / base[k] for k in point if k.endswith("_ms")}
            lines.append(
                f"  {variant:<9} ef_search {point['ef_search']}: recall@10 {point['recall@10']:.3f}; vector "
                f"{_times(point, ratios, 'vector')}, hybrid {_times(point, ratios, 'hybrid')}"
            )
    return lines


def write_plot(results: dict[str, Any], path: Path) -> Path:
    """p50 and p95 database time of each mode against collection size (log-log)."""
    figure = Figure(figsize=(8, 5))
    axes = figure.add_subplot()
    sizes = [entry["chunks"] for entry in results["sizes"]]
    for key, mode in results["sizes"][0]["modes"].items():
        label = mode["label"]
        p50 = [entry["modes"][key]["p50_ms"] for entry in results["sizes"]]
        p95 = [entry["modes"][key]["p95_ms"] for entry in results["sizes"]]
        (line,) = axes.plot(sizes, p50, marker="o", label=f"{label} p50")
        axes.plot(sizes, p95, marker="x", linestyle="--", color=line.get_color(), alpha=0.6)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("chunks in the collection")
    axes.set_ylabel("database time per query, ms (solid p50, dashed p95)")
    axes.set_title("hybrid-rag bench scale: latency vs collection size")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure).print_png(str(path))
    return path
