"""Reciprocal rank fusion: score(d) = Σ_i w_i / (rrf_k + rank_i(d)), ranks from 1."""

from __future__ import annotations

import pytest

from retriever.fusion import rrf_fuse


def test_scores_match_a_hand_computed_example():
    fused = rrf_fuse({"vector": ["a", "b", "c"], "text": ["c", "a", "d"]}, rrf_k=60)
    assert [(item, score) for item, score, _ in fused] == [
        ("a", pytest.approx(1 / 61 + 1 / 62)),
        ("c", pytest.approx(1 / 63 + 1 / 61)),
        ("b", pytest.approx(1 / 62)),
        ("d", pytest.approx(1 / 63)),
    ]


def test_ranks_count_from_one_and_are_none_for_a_leg_that_missed():
    fused = {item: ranks for item, _, ranks in rrf_fuse({"vector": ["a", "b"], "text": ["b"]})}
    assert fused == {"a": {"vector": 1, "text": None}, "b": {"vector": 2, "text": 1}}


def test_top_item_scores_one_when_rrf_k_is_zero():
    ((item, score, _),) = rrf_fuse({"only": ["x"]}, rrf_k=0)
    assert (item, score) == ("x", 1.0)


def test_weights_scale_each_leg():
    fused = rrf_fuse({"vector": ["a"], "text": ["b"]}, weights={"vector": 2.0, "text": 0.5}, rrf_k=10)
    assert [(item, score) for item, score, _ in fused] == [("a", pytest.approx(2 / 11)), ("b", pytest.approx(0.5 / 11))]


def test_a_weight_can_reverse_the_order():
    rankings = {"vector": ["a", "b"], "text": ["b", "c", "a"]}
    assert rrf_fuse(rankings)[0][0] == "b"  # b: 1/62 + 1/61 beats a: 1/61 + 1/63
    assert rrf_fuse(rankings, weights={"vector": 3.0})[0][0] == "a"
    assert rrf_fuse(rankings, weights={"text": 3.0})[0][0] == "b"


def test_missing_weights_default_to_one():
    assert rrf_fuse({"vector": ["a"], "text": ["a"]}, weights={"vector": 1.0}) == rrf_fuse(
        {"vector": ["a"], "text": ["a"]}
    )


def test_ties_are_broken_by_id_in_code_point_order():
    fused = rrf_fuse({"vector": ["b", "a", "B"], "text": ["a", "b", "B"]}, rrf_k=60)
    assert [item for item, _, _ in fused] == ["a", "b", "B"]
    tie = rrf_fuse({"vector": ["b"], "text": ["a"], "other": ["B"]})
    assert [item for item, _, _ in tie] == ["B", "a", "b"]


def test_empty_rankings_fuse_to_nothing():
    assert rrf_fuse({"vector": [], "text": []}) == []
