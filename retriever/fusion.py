"""The fusion methods, RRF and linear combinations of normalised scores: pure functions, and the SQL they embed."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from psycopg import sql

__all__ = ["FUSION_SQL", "NORMALISERS", "linear_fuse", "max_scale", "min_max", "rrf_fuse"]

# The fused score of a chunk in the search statement, per method: over the vector leg `v`
# and the text leg `t` (each with `rank` from 1 and `norm`, its min-max normalised score;
# the text leg also with `scaled`, its score over the leg's best; NULL where the leg lacks
# the chunk), weighted by %(w_vector)s and %(w_text)s.
FUSION_SQL = {
    "rrf": sql.SQL(
        "coalesce(%(w_vector)s::float8 / (%(rrf_k)s + v.rank), 0)"
        " + coalesce(%(w_text)s::float8 / (%(rrf_k)s + t.rank), 0)"
    ),
    "linear": sql.SQL("coalesce(%(w_vector)s::float8 * v.norm, 0) + coalesce(%(w_text)s::float8 * t.norm, 0)"),
    "linear_max": sql.SQL("coalesce(%(w_vector)s::float8 * v.norm, 0) + coalesce(%(w_text)s::float8 * t.scaled, 0)"),
}

Fused = list[tuple[str, float, dict[str, int | None]]]


def _ranks(rankings: Mapping[str, Sequence[str]]) -> dict[str, dict[str, int | None]]:
    """Item -> {ranking name: its rank from 1, or None}, items in first-seen order."""
    ranks: dict[str, dict[str, int | None]] = {}
    for name, ranking in rankings.items():
        for position, item in enumerate(ranking, start=1):
            ranks.setdefault(item, dict.fromkeys(rankings, None))[name] = position
    return ranks


def _ordered(fused: Fused) -> Fused:
    fused.sort(key=lambda entry: (-entry[1], entry[0]))
    return fused


def rrf_fuse(
    rankings: Mapping[str, Sequence[str]],
    *,
    weights: Mapping[str, float] | None = None,
    rrf_k: int = 60,
) -> Fused:
    """Fuse rankings with weighted reciprocal rank fusion.

    score(d) = Σ_i w_i / (rrf_k + rank_i(d)), summed over the rankings i that contain d,
    with ranks counted from 1 (Cormack, Clarke & Büttcher, "Reciprocal rank fusion
    outperforms Condorcet and individual rank learning methods", SIGIR 2009).

    Returns (id, score, {ranking name: rank or None}) by score descending, ties broken by
    id (code-point order), exactly as the SQL statement orders its results. Legs are
    summed in the order of `rankings`, as in SQL, so float rounding matches too.
    """
    weights = weights or {}
    fused = []
    for item, by_leg in _ranks(rankings).items():
        score = 0.0
        for name in rankings:
            rank = by_leg[name]
            score += weights.get(name, 1.0) / (rrf_k + rank) if rank is not None else 0.0
        fused.append((item, score, by_leg))
    return _ordered(fused)


def min_max(scores: Sequence[float]) -> list[float]:
    """(s − min) / (max − min) for each score: the best 1, the worst 0; all 1 when they are equal."""
    low, high = min(scores, default=0.0), max(scores, default=0.0)
    if high == low:
        return [1.0] * len(scores)
    return [(score - low) / (high - low) for score in scores]


def max_scale(scores: Sequence[float]) -> list[float]:
    """s / max for each score: the best 1, a score of 0 still 0; all 1 when the best is not above 0."""
    high = max(scores, default=0.0)
    if high <= 0:
        return [1.0] * len(scores)
    return [score / high for score in scores]


Normaliser = Callable[[Sequence[float]], list[float]]

# Each linear method's normaliser per leg (`min_max` where none is named). "linear_max" keeps
# BM25's own zero: a chunk without the query's terms scores 0, as fusion scores a chunk the
# text leg lacks, and the leg's candidates keep their ratios to its best. Min-max instead
# maps the weakest candidate to 0, a non-match's score, however close it is to the best.
# Cosine similarity has no such zero among the candidates (its floor, -1, lies far below
# them): the vector leg is min-max normalised in both.
NORMALISERS: dict[str, dict[str, Normaliser]] = {"linear": {}, "linear_max": {"text": max_scale}}


def linear_fuse(
    scored: Mapping[str, Sequence[tuple[str, float]]],
    *,
    weights: Mapping[str, float] | None = None,
    normalisers: Mapping[str, Normaliser] | None = None,
) -> Fused:
    """Fuse scored rankings with a weighted sum of min-max normalised scores.

    score(d) = Σ_i w_i · (s_i(d) − min_i) / (max_i − min_i), over the rankings i that
    contain d; min_i and max_i are ranking i's lowest and highest score, and a ranking
    whose scores are all equal gives each of its items 1 (as OpenSearch's min_max
    normalization gives a single result). An item a ranking lacks gets 0 from it, as
    much as that ranking's weakest item. This is the "minmax" linear combination of
    Elasticsearch's linear retriever and Weaviate's relative score fusion; Pyserini
    reports it beside RRF for BM25 + dense retrieval on BEIR.

    `normalisers` replaces min-max for the rankings it names: with
    `NORMALISERS["linear_max"]` ({"text": max_scale}) the text ranking's scores are divided
    by its best, w · s(d) / max, the "linear_max" fusion.

    `scored` maps each ranking's name to its (id, score) pairs, best first (higher scores
    better: pass negated distances). Returns what `rrf_fuse` returns, ranks being the
    positions in `scored`, in the same order.
    """
    weights = weights or {}
    normalisers = normalisers or {}
    normalised = {
        name: dict(
            zip(
                (item for item, _ in pairs),
                normalisers.get(name, min_max)([score for _, score in pairs]),
                strict=True,
            )
        )
        for name, pairs in scored.items()
    }
    fused = []
    for item, by_leg in _ranks({name: [item for item, _ in pairs] for name, pairs in scored.items()}).items():
        score = 0.0
        for name in scored:
            norm = normalised[name].get(item)
            score += weights.get(name, 1.0) * norm if norm is not None else 0.0
        fused.append((item, score, by_leg))
    return _ordered(fused)
