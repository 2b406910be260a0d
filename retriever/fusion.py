"""Reciprocal rank fusion, the maths the SQL statement implements, as a pure function."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = ["rrf_fuse"]


def rrf_fuse(
    rankings: Mapping[str, Sequence[str]],
    *,
    weights: Mapping[str, float] | None = None,
    rrf_k: int = 60,
) -> list[tuple[str, float, dict[str, int | None]]]:
    """Fuse rankings with weighted reciprocal rank fusion.

    score(d) = Σ_i w_i / (rrf_k + rank_i(d)), summed over the rankings i that contain d,
    with ranks counted from 1 (Cormack, Clarke & Büttcher, "Reciprocal rank fusion
    outperforms Condorcet and individual rank learning methods", SIGIR 2009).

    Returns (id, score, {ranking name: rank or None}) by score descending, ties broken by
    id (code-point order), exactly as the SQL statement orders its results. Legs are
    summed in the order of `rankings`, as in SQL, so float rounding matches too.
    """
    weights = weights or {}
    ranks: dict[str, dict[str, int | None]] = {}
    for name, ranking in rankings.items():
        for position, item in enumerate(ranking, start=1):
            ranks.setdefault(item, dict.fromkeys(rankings, None))[name] = position
    fused = []
    for item, by_leg in ranks.items():
        score = 0.0
        for name in rankings:
            rank = by_leg[name]
            score += weights.get(name, 1.0) / (rrf_k + rank) if rank is not None else 0.0
        fused.append((item, score, by_leg))
    fused.sort(key=lambda entry: (-entry[1], entry[0]))
    return fused
