"""Metrics pinned on a hand-computed example."""

from __future__ import annotations

import pytest

from eval import METRICS, per_query, score_run

# Four judged queries; "n*" documents are not relevant.
QRELS = {
    "q1": {"d1": 1, "d2": 1},
    "q2": {"d3": 2, "d4": 1},
    "q3": {"d5": 1},
    "q4": {"d6": 1},
}


def descending(doc_ids: list[str]) -> dict[str, float]:
    return {doc_id: float(len(doc_ids) - rank) for rank, doc_id in enumerate(doc_ids)}


RUN = {
    # d1 at rank 2, d2 at rank 12.
    "q1": descending(["n0", "d1", *(f"n{i}" for i in range(1, 10)), "d2"]),
    # d4 at rank 1, d3 (grade 2) at rank 2.
    "q2": descending(["d4", "d3"]),
    # q3 is missing from the run.
    # d6 at rank 11, just past the cut-off of 10.
    "q4": descending([*(f"n{i}" for i in range(10)), "d6"]),
    # Unjudged queries are ignored.
    "q9": descending(["d1"]),
}

# By hand, with gain = grade and discount 1/log2(rank + 1); 1/log2(3) = 0.6309297535714575.
#   q1: DCG@10 = 1/log2(3); ideal = 1 + 1/log2(3)      -> nDCG@10 = 0.6309298/1.6309298 = 0.3868528
#       R@10 = 1/2, R@100 = 2/2, RR@10 = 1/2
#   q2: DCG@10 = 1 + 2/log2(3); ideal = 2 + 1/log2(3)  -> nDCG@10 = 2.2618595/2.6309298 = 0.8597187
#       R@10 = R@100 = RR@10 = 1
#   q3: not retrieved                                  -> every metric 0
#   q4: first relevant at rank 11                      -> nDCG@10 = R@10 = RR@10 = 0, R@100 = 1
# Means over the 4 judged queries:
#   nDCG@10 = (0.3868528 + 0.8597187) / 4 = 0.3116429
#   R@10    = (0.5 + 1) / 4               = 0.375
#   R@100   = (1 + 1 + 0 + 1) / 4         = 0.75
#   MRR@10  = (0.5 + 1) / 4               = 0.375
EXPECTED = {
    "ndcg@10": 0.3116429,
    "recall@10": 0.375,
    "recall@100": 0.75,
    "mrr@10": 0.375,
}


def test_metric_names() -> None:
    assert METRICS == ("ndcg@10", "recall@10", "recall@100", "mrr@10")


def test_score_run_matches_the_hand_computation() -> None:
    scores = score_run(QRELS, RUN)
    assert list(scores) == list(METRICS)
    assert scores == pytest.approx(EXPECTED, abs=1e-6)


def test_per_query_scores_missing_queries_zero_and_ignores_unjudged_ones() -> None:
    scores = per_query(QRELS, RUN)
    assert set(scores) == {"q1", "q2", "q3", "q4"}
    assert scores["q3"] == dict.fromkeys(METRICS, 0.0)
    assert scores["q1"]["ndcg@10"] == pytest.approx(0.3868528, abs=1e-6)
    assert scores["q4"] == pytest.approx({"ndcg@10": 0, "recall@10": 0, "recall@100": 1, "mrr@10": 0})


def test_empty_run_scores_zero() -> None:
    assert score_run(QRELS, {}) == dict.fromkeys(METRICS, 0.0)


def test_no_judged_queries_is_an_error() -> None:
    with pytest.raises(ValueError, match="without judged queries"):
        score_run({}, RUN)
