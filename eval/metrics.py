"""Ranking metrics, computed by ``ir_measures`` (pytrec_eval under the hood)."""

from __future__ import annotations

from statistics import fmean

import ir_measures
from ir_measures import RR, R, nDCG

METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10")

# RR@10 is the reciprocal rank of the first relevant document in the top 10,
# i.e. MRR@10 once averaged over queries.
_MEASURES = {
    "ndcg@10": nDCG @ 10,
    "recall@10": R @ 10,
    "recall@100": R @ 100,
    "mrr@10": RR @ 10,
}


def per_query(
    qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]]
) -> dict[str, dict[str, float]]:
    """Score every judged query; a query the run does not answer scores 0 on every metric."""
    by_name = {measure: name for name, measure in _MEASURES.items()}
    scores = {qid: dict.fromkeys(METRICS, 0.0) for qid in qrels}
    judged_run = {
        qid: {doc_id: float(score) for doc_id, score in docs.items()}
        for qid, docs in run.items()
        if qid in qrels and docs
    }
    for metric in ir_measures.iter_calc(list(_MEASURES.values()), qrels, judged_run):
        scores[metric.query_id][by_name[metric.measure]] = float(metric.value)
    return scores


def score_run(
    qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]]
) -> dict[str, float]:
    """Mean of each metric in ``METRICS`` over all judged queries."""
    if not qrels:
        raise ValueError("cannot score a run without judged queries")
    scores = per_query(qrels, run).values()
    return {name: fmean(query[name] for query in scores) for name in METRICS}
