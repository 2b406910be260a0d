"""Fusion sweep: each leg runs once per depth in the database; every fusion setting is fused in Python.

`retriever.fusion.rrf_fuse` and `linear_fuse` are the pure functions the hybrid statement
implements (integration tests check they agree), so fusing the legs' chunk rankings here
and collapsing to documents gives exactly the ranking the database would, at no cost per
setting. Each leg is read alone with the "linear_max" fusion, so the vector leg's hits carry
its min-max normalised scores and the text leg's its scores over its best: normalising
those again, min-max or over the best, gives what each linear method gives the raw scores.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from eval.beir import BeirDataset
from eval.documents import chunks_to_documents
from eval.metrics import METRICS, score_run
from eval.runner import (
    DEFAULT_CHUNKING,
    Echo,
    Run,
    embed_queries,
    eval_settings,
    failed_queries,
    ingest_corpus,
    search_one,
    truncated_queries,
)
from ingest import ChunkingConfig
from retriever import Engine, SearchParams, Settings
from retriever.fusion import NORMALISERS, linear_fuse, rrf_fuse
from retriever.results import FUSIONS

__all__ = ["SweepGrid", "fuse_run", "run_legs", "run_sweep", "sweep_table", "write_sweep"]

LEGS = ("vector", "text")


@dataclass(frozen=True, slots=True)
class SweepGrid:
    """The fusion settings a sweep tries: each method with every combination of its parameters."""

    rrf_ks: tuple[int, ...] = (5, 10, 20, 40, 60, 100)
    """RRF's constant (the linear fusion has none)."""
    weights: tuple[tuple[float, float], ...] = (
        (1.0, 1.0),
        (1.0, 0.7),
        (0.7, 1.0),
        (1.0, 0.5),
        (0.5, 1.0),
        (1.0, 1.5),
        (1.5, 1.0),
        (1.0, 0.3),
        (0.3, 1.0),
    )
    """(vector, text) leg weights, for both methods."""
    candidates: tuple[int, ...] = (50, 100, 200)
    """Per-leg depth."""
    fusions: tuple[str, ...] = FUSIONS

    def settings(self) -> list[tuple[str, int | None, tuple[float, float]]]:
        """(fusion, rrf_k or None, weights) for every setting tried at one depth."""
        return [
            (fusion, rrf_k, weights)
            for fusion in self.fusions
            for rrf_k in (self.rrf_ks if fusion == "rrf" else (None,))
            for weights in self.weights
        ]


@dataclass
class Legs:
    """Each leg's chunk ids per query in rank order, and the document of every chunk seen."""

    rankings: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    """Query id -> {leg: chunk ids, best first}."""
    scores: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    """Query id -> {leg: the chunks' leg scores, in `rankings` order: min-max normalised (vector), over the best
    (text)}."""
    document_of: dict[str, str] = field(default_factory=dict)
    failed: dict[str, dict[str, str]] = field(default_factory=dict)
    """Leg -> {query id: why its search was refused}; such a query's ranking in that leg is empty."""


def run_legs(
    settings: Settings,
    collection: str,
    queries: Mapping[str, str],
    embedded: Mapping[str, tuple[np.ndarray, float]],
    candidates: int,
    *,
    progress: bool = False,
) -> Legs:
    """Run the vector and the text leg alone, `candidates` chunks deep, exactly as the hybrid statement would.

    A query the search refuses as its own fault (e.g. an empty one) ranks nothing and is listed in `failed`.
    """
    legs = Legs({qid: {} for qid in queries}, {qid: {} for qid in queries})
    engine = Engine(settings)
    with engine.reader() as conn:
        for leg in LEGS:
            # one leg at weight 1 through linear_max: a hit's score is `norm` (vector) or `scaled` (text)
            params = SearchParams(
                k=candidates,
                mode=leg,  # type: ignore[arg-type]
                candidates=candidates,
                fusion="linear_max",
                weights=(1.0, 1.0),
            )
            params.validate(settings)  # a bad parameter is the run's fault, not each query's
            rank_of = "vector_rank" if leg == "vector" else "text_rank"
            failed = legs.failed.setdefault(leg, {})
            for qid, text in tqdm(queries.items(), desc=f"{leg} leg @{candidates}", unit=" q", disable=not progress):
                vector = embedded[qid][0] if leg == "vector" and qid in embedded else None
                found = search_one(engine, collection, qid, text, params, failed, embedding=vector, conn=conn)
                hits = sorted(found.hits if found is not None else [], key=lambda hit: getattr(hit, rank_of))
                legs.rankings[qid][leg] = [hit.id for hit in hits]
                legs.scores[qid][leg] = [hit.score for hit in hits]
                legs.document_of.update((hit.id, hit.document_id) for hit in hits)
    return legs


def fuse_run(legs: Legs, *, rrf_k: int | None, weights: tuple[float, float], k: int, fusion: str = "rrf") -> Run:
    """The document ranking the hybrid statement (collapse on) returns for these legs and settings."""
    run: Run = {}
    by_leg = dict(zip(LEGS, weights, strict=True))
    for qid, rankings in legs.rankings.items():
        if fusion in NORMALISERS:
            scored = {leg: list(zip(ids, legs.scores[qid][leg], strict=True)) for leg, ids in rankings.items()}
            fused = linear_fuse(scored, weights=by_leg, normalisers=NORMALISERS[fusion])
        else:
            fused = rrf_fuse(rankings, weights=by_leg, rrf_k=60 if rrf_k is None else rrf_k)
        hits = ((legs.document_of[chunk], score) for chunk, score, _ in fused)
        run[qid] = chunks_to_documents(hits, k) if fused else {}
    return run


def leg_run(legs: Legs, leg: str, k: int) -> Run:
    """The document ranking of one leg alone."""
    run: Run = {}
    for qid, rankings in legs.rankings.items():
        chunks = rankings[leg]
        hits = ((legs.document_of[chunk], 1.0 / rank) for rank, chunk in enumerate(chunks, start=1))
        run[qid] = chunks_to_documents(hits, k) if chunks else {}
    return run


def run_sweep(
    dataset: BeirDataset,
    settings: Settings,
    collection: str,
    out_dir: Path,
    *,
    grid: SweepGrid = SweepGrid(),
    k: int = 100,
    chunking: ChunkingConfig = DEFAULT_CHUNKING,
    progress: bool = False,
    echo: Echo = lambda _: None,
) -> dict[str, Any]:
    """Score every grid setting of the hybrid fusion on one split; write sweep.json and sweep.md."""
    started = time.perf_counter()
    settings = eval_settings(settings, max((k, *grid.candidates)), dataset.queries.values())
    model = Engine(settings).model
    ingest_corpus(settings, collection, dataset, chunking, progress=progress, echo=echo)
    embedded = embed_queries(model, dataset.queries, progress=progress)
    truncated = truncated_queries(model, dataset.queries)
    failed: dict[str, dict[str, str]] = {leg: {} for leg in LEGS}
    rows: list[dict[str, Any]] = []
    legs_alone: dict[str, dict[str, dict[str, float]]] = {}
    database_s = 0.0
    for candidates in grid.candidates:
        begin = time.perf_counter()
        legs = run_legs(settings, collection, dataset.queries, embedded, candidates, progress=progress)
        database_s += time.perf_counter() - begin
        for leg, refused in legs.failed.items():
            failed[leg].update(refused)
        legs_alone[str(candidates)] = {leg: score_run(dataset.qrels, leg_run(legs, leg, k)) for leg in LEGS}
        for fusion, rrf_k, weights in grid.settings():
            run = fuse_run(legs, fusion=fusion, rrf_k=rrf_k, weights=weights, k=k)
            rows.append(
                {
                    "fusion": fusion,
                    "candidates": candidates,
                    "rrf_k": rrf_k,
                    "weights": {"vector": weights[0], "text": weights[1]},
                    **score_run(dataset.qrels, run),
                }
            )
    rows.sort(key=lambda row: tuple(-row[metric] for metric in ("ndcg@10", "recall@100", "mrr@10")))
    sweep = {
        "dataset": dataset.root.resolve().name,
        "split": dataset.split,
        "queries": len(dataset.queries),
        "failed_queries": failed_queries(failed),
        **({"truncated_queries": truncated} if truncated is not None else {}),
        "collection": collection,
        "parameters": {
            "k": k,
            "chunk_size": chunking.chunk_size,
            "chunk_overlap": chunking.chunk_overlap,
            "embeddings": model.name,
        },
        "grid": {
            "fusion": list(grid.fusions),
            "rrf_k": list(grid.rrf_ks),
            "weights": [{"vector": v, "text": t} for v, t in grid.weights],
            "candidates": list(grid.candidates),
        },
        "best": rows[0],
        "settings": rows,
        "legs": legs_alone,
        "wall_s": round(time.perf_counter() - started, 1),
        "legs_s": round(database_s, 1),
    }
    write_sweep(out_dir, sweep)
    return sweep


_HEADERS = ("#", "fusion", "candidates", "rrf_k", "w_vector", "w_text", "nDCG@10", "R@10", "R@100", "MRR@10")


def _rows(sweep: Mapping[str, Any], top: int | None) -> list[tuple[str, ...]]:
    return [
        (
            str(rank),
            row.get("fusion", "rrf"),
            str(row["candidates"]),
            "-" if row["rrf_k"] is None else str(row["rrf_k"]),
            f"{row['weights']['vector']:g}",
            f"{row['weights']['text']:g}",
            *(f"{row[metric]:.4f}" for metric in METRICS),
        )
        for rank, row in enumerate(sweep["settings"][:top], start=1)
    ]


def sweep_table(sweep: Mapping[str, Any], top: int | None = 10) -> str:
    """The best `top` settings (all when None) as an aligned plain-text table, best first."""
    table = [_HEADERS, *_rows(sweep, top)]
    widths = [max(len(row[i]) for row in table) for i in range(len(_HEADERS))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) for row in table]
    title = (
        f"fusion sweep: {sweep['dataset']} ({sweep['split']}), {sweep['queries']} queries, "
        f"{len(sweep['settings'])} settings, sorted by nDCG@10"
    )
    return "\n".join([title, lines[0], "-" * len(lines[0]), *lines[1:]])


def write_sweep(out_dir: Path, sweep: Mapping[str, Any]) -> None:
    """`sweep.json` and `sweep.md` (every setting, best first; the legs alone below)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "sweep.json").write_text(json.dumps(sweep, indent=2) + "\n", encoding="utf-8")
    lines = [
        f"# Fusion sweep: {sweep['dataset']} ({sweep['split']})",
        "",
        f"{sweep['queries']} queries; hybrid mode, one document per result; sorted by nDCG@10 (rrf_k is RRF's alone).",
        "",
        "| " + " | ".join(_HEADERS) + " |",
        "|" + "---:|" * len(_HEADERS),
        *("| " + " | ".join(row) + " |" for row in _rows(sweep, None)),
        "",
        "Each leg alone, for comparison:",
        "",
        "| candidates | leg | " + " | ".join(METRICS) + " |",
        "|---:|---|" + "---:|" * len(METRICS),
        *(
            f"| {candidates} | {leg} | " + " | ".join(f"{scores[m]:.4f}" for m in METRICS) + " |"
            for candidates, by_leg in sweep["legs"].items()
            for leg, scores in by_leg.items()
        ),
        "",
    ]
    (out_dir / "sweep.md").write_text("\n".join(lines), encoding="utf-8")
