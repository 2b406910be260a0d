"""Choose fusion defaults across collections from their sweeps, and estimate how the choice transfers.

Each `sweep.json` (written by `hybrid-rag eval DIR --sweep`) scores every fusion setting on
one collection's split. A setting is (fusion, candidates, rrf_k, weights); its *margin* on a
collection is its nDCG@10 minus that of the better leg alone at the same depth. The chosen
setting has the best mean nDCG@10 among those whose margin is ≥ 0 on every collection
(among all, when none is). Leave-one-collection-out repeats the choice on the other
collections only and reports the held-out collection's figure under it: what a collection
the defaults never saw can expect. Options narrow the settings compared (e.g. one depth).

    python -m eval.choose --candidates 100 results/scifact-train/sweep.json results/cranfield-test/sweep.json ...
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from retriever.results import FUSIONS

__all__ = ["Setting", "choose", "leave_one_out", "load_sweeps", "main", "narrow"]

Setting = tuple[str, int, int | None, float, float]
"""(fusion, candidates, rrf_k or None, vector weight, text weight)."""
Table = dict[str, dict[Setting, tuple[float, float]]]
"""Collection -> setting -> (nDCG@10, margin over the better leg)."""


def _setting(row: Mapping[str, Any]) -> Setting:
    weights = row["weights"]
    return (row.get("fusion", "rrf"), row["candidates"], row["rrf_k"], weights["vector"], weights["text"])


def load_sweeps(paths: Sequence[Path]) -> Table:
    """Each sweep's settings with their nDCG@10 and margin, keyed by '<dataset> (<split>)'."""
    table: Table = {}
    for path in paths:
        sweep = json.loads(path.read_text(encoding="utf-8"))
        legs = {depth: max(scores["ndcg@10"] for scores in by_leg.values()) for depth, by_leg in sweep["legs"].items()}
        table[f"{sweep['dataset']} ({sweep['split']})"] = {
            _setting(row): (row["ndcg@10"], row["ndcg@10"] - legs[str(row["candidates"])]) for row in sweep["settings"]
        }
    return table


def narrow(
    table: Table,
    *,
    fusion: str | None = None,
    candidates: int | None = None,
    weights: tuple[float, float] | None = None,
) -> Table:
    """Only the settings with this fusion, depth and (vector, text) weights (None: any)."""
    return {
        name: {
            s: scores
            for s, scores in by_setting.items()
            if fusion in (None, s[0]) and candidates in (None, s[1]) and weights in (None, s[3:])
        }
        for name, by_setting in table.items()
    }


def choose(table: Table, collections: Sequence[str] | None = None) -> Setting:
    """The setting with the best mean nDCG@10 over `collections` (default: all), never below a leg if possible."""
    names = list(collections or table)
    common = set.intersection(*(set(table[name]) for name in names))
    safe = [s for s in common if all(table[name][s][1] >= 0 for name in names)] or list(common)
    return max(sorted(safe, key=str), key=lambda s: sum(table[name][s][0] for name in names) / len(names))


def leave_one_out(table: Table) -> dict[str, tuple[Setting, float, float]]:
    """Held-out collection -> (setting chosen on the others, its nDCG@10 and margin on the held-out one)."""
    held = {}
    for name in table:
        chosen = choose(table, [other for other in table if other != name])
        held[name] = (chosen, *table[name][chosen])
    return held


def _describe(setting: Setting) -> str:
    fusion, candidates, rrf_k, vector, text = setting
    return (
        f"{fusion}"
        + (f" rrf_k {rrf_k}" if rrf_k is not None else "")
        + (f", weights {vector:g}/{text:g}, candidates {candidates}")
    )


@click.command()
@click.argument("sweeps", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--fusion", type=click.Choice(FUSIONS), help="Compare this fusion's settings only.")
@click.option("--candidates", type=int, help="Compare settings of this per-leg depth only.")
@click.option("--weights", help="Compare settings with these vector,text weights only, e.g. 1,1.")
def main(sweeps: tuple[Path, ...], fusion: str | None, candidates: int | None, weights: str | None) -> None:
    """Print the setting chosen across SWEEPS (sweep.json files) with its figure on each, then leave-one-out."""
    pair = tuple(float(part) for part in weights.split(",")) if weights else None
    table = narrow(load_sweeps(list(sweeps)), fusion=fusion, candidates=candidates, weights=pair)  # type: ignore[arg-type]
    chosen = choose(table)
    print(f"chosen on all: {_describe(chosen)}")
    for name, by_setting in table.items():
        ndcg, margin = by_setting[chosen]
        print(f"  {name}: nDCG@10 {ndcg:.4f}, margin over the better leg {margin:+.4f}")
    print("leave one collection out (chosen on the others, scored on it):")
    for name, (setting, ndcg, margin) in leave_one_out(table).items():
        print(f"  {name}: {_describe(setting)}: nDCG@10 {ndcg:.4f}, margin {margin:+.4f}")


if __name__ == "__main__":
    main()
