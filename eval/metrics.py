"""Ranking metrics, computed by ``ir_measures`` (pytrec_eval under the hood).

``ir_measures`` belongs to the optional 'eval' extra: it is imported the first time a run is
scored, not when this module is imported.
"""

from __future__ import annotations

import functools
from statistics import fmean
from types import ModuleType
from typing import Any

from retriever import ConfigurationError

METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10")


def _ir_measures() -> ModuleType:
    """``ir_measures``, or a ``ConfigurationError`` naming the extra that provides it."""
    try:
        import ir_measures
    except ImportError as exc:
        raise ConfigurationError(
            "hybrid-rag eval needs the 'eval' extra: pip install 'hybrid-rag[eval]' (missing: ir_measures)"
        ) from exc
    return ir_measures


@functools.cache
def _measures() -> dict[str, Any]:
    """The ``ir_measures`` measure behind each name in ``METRICS``."""
    ir_measures = _ir_measures()
    # RR@10 is the reciprocal rank of the first relevant document in the top 10,
    # i.e. MRR@10 once averaged over queries.
    return {
        "ndcg@10": ir_measures.nDCG @ 10,
        "recall@10": ir_measures.R @ 10,
        "recall@100": ir_measures.R @ 100,
        "mrr@10": ir_measures.RR @ 10,
    }


def per_query(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Score every judged query; a query the run does not answer scores 0 on every metric."""
    measures = _measures()
    by_name = {measure: name for name, measure in measures.items()}
    scores = {qid: dict.fromkeys(METRICS, 0.0) for qid in qrels}
    judged_run = {
        qid: {doc_id: float(score) for doc_id, score in docs.items()}
        for qid, docs in run.items()
        if qid in qrels and docs
    }
    for metric in _ir_measures().iter_calc(list(measures.values()), qrels, judged_run):
        scores[metric.query_id][by_name[metric.measure]] = float(metric.value)
    return scores


def score_run(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]]) -> dict[str, float]:
    """Mean of each metric in ``METRICS`` over all judged queries."""
    if not qrels:
        raise ValueError("cannot score a run without judged queries")
    scores = per_query(qrels, run).values()
    return {name: fmean(query[name] for query in scores) for name in METRICS}
