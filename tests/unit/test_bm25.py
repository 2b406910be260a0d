"""BM25's Python reference: each repetition of a query term adds weight, less than linearly (Robertson's k3)."""

from __future__ import annotations

import pytest

from retriever.store.bm25 import K3, bm25, idf, query_weight, term_weight


def test_a_term_the_query_holds_three_times_weighs_more_than_once_and_less_than_three_times():
    once = bm25(idf(100, 7), 2, 40, 50.0)
    thrice = bm25(idf(100, 7), 2, 40, 50.0, qtf=3)
    assert thrice == pytest.approx((K3 + 1) * 3 / (K3 + 3) * once)
    assert once < thrice < 3 * once


def test_a_term_the_query_holds_once_keeps_the_plain_bm25_contribution():
    assert query_weight(1) == 1.0
    assert bm25(idf(100, 7), 2, 40, 50.0, qtf=1) == pytest.approx(idf(100, 7) * term_weight(2, 40, 50.0), rel=1e-15)


def test_the_query_weight_grows_with_every_repetition_towards_k3_plus_one():
    weights = [query_weight(qtf) for qtf in range(1, 50)]
    assert weights == sorted(set(weights))
    assert weights[-1] < K3 + 1
