"""Fusion: reciprocal ranks, score(d) = Σ_i w_i / (rrf_k + rank_i(d)) with ranks from 1; or min-max
normalised scores, score(d) = Σ_i w_i · (s_i(d) − min_i) / (max_i − min_i), 0 from a leg that lacks d;
or ("linear_max", the default) the same with the text leg's scores over its best, s(d) / max."""

from __future__ import annotations

import pytest

from retriever.errors import InputError
from retriever.fusion import FUSION_SQL, NORMALISERS, linear_fuse, max_scale, min_max, rrf_fuse
from retriever.results import DEFAULTS, FUSIONS, SearchParams
from retriever.settings import Settings


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


def test_min_max_maps_the_best_score_to_one_and_the_worst_to_zero():
    assert min_max([3.0, 2.0, 1.0, 2.5]) == [1.0, 0.5, 0.0, 0.75]


def test_min_max_gives_one_to_scores_that_are_all_equal():
    assert min_max([0.4]) == [1.0]
    assert min_max([2.0, 2.0]) == [1.0, 1.0]
    assert min_max([]) == []


def test_linear_fusion_matches_a_hand_computed_example():
    scored = {"vector": [("a", -0.1), ("b", -0.3), ("c", -0.5)], "text": [("c", 12.0), ("d", 9.0), ("a", 4.0)]}
    fused = linear_fuse(scored, weights={"vector": 0.5, "text": 1.0})
    assert [(item, score) for item, score, _ in fused] == [
        ("c", pytest.approx(0.5 * 0.0 + 1.0 * 1.0)),
        ("d", pytest.approx(1.0 * 5 / 8)),
        ("a", pytest.approx(0.5 * 1.0 + 1.0 * 0.0)),
        ("b", pytest.approx(0.5 * 0.5)),
    ]
    assert {item: ranks for item, _, ranks in fused}["d"] == {"vector": None, "text": 2}


def test_linear_fusion_ignores_each_legs_scale():
    small = {"vector": [("a", 0.9), ("b", 0.8)], "text": [("b", 20.0), ("a", 10.0)]}
    scaled = {"vector": [("a", 90.0), ("b", 80.0)], "text": [("b", 0.2), ("a", 0.1)]}
    assert linear_fuse(small) == linear_fuse(scaled)


def test_linear_fusion_weights_can_reverse_the_order():
    scored = {"vector": [("a", 1.0), ("b", 0.0)], "text": [("b", 1.0), ("a", 0.5)]}
    assert linear_fuse(scored, weights={"vector": 2.0})[0][0] == "a"
    assert linear_fuse(scored, weights={"text": 3.0})[0][0] == "b"


def test_max_scale_divides_by_the_best_score_so_zero_stays_zero():
    assert max_scale([8.0, 6.0, 2.0, 0.0]) == [1.0, 0.75, 0.25, 0.0]


def test_max_scale_gives_one_to_every_score_when_the_best_is_not_above_zero():
    assert max_scale([0.0, 0.0]) == [1.0, 1.0]
    assert max_scale([]) == []


def test_linear_max_fusion_scales_the_text_leg_by_its_best_and_min_maxes_the_vector_leg():
    scored = {"vector": [("a", -0.1), ("b", -0.3), ("c", -0.5)], "text": [("c", 12.0), ("d", 9.0), ("a", 3.0)]}
    fused = linear_fuse(scored, weights={"vector": 1.0, "text": 1.5}, normalisers=NORMALISERS["linear_max"])
    assert [(item, score) for item, score, _ in fused] == [
        ("c", pytest.approx(1.0 * 0.0 + 1.5 * 1.0)),
        ("a", pytest.approx(1.0 * 1.0 + 1.5 * 3 / 12)),
        ("d", pytest.approx(1.5 * 9 / 12)),
        ("b", pytest.approx(1.0 * 0.5)),
    ]


def test_linear_max_keeps_a_close_text_candidate_close_where_min_max_drops_it_to_a_non_match():
    # text scores 10 and 9.5: min-max gives b 0, as if it held no query term; over the best, 0.95
    scored = {"vector": [("b", -0.1), ("a", -0.2), ("c", -0.3)], "text": [("a", 10.0), ("b", 9.5)]}
    by_fusion = {
        fusion: [item for item, _, _ in linear_fuse(scored, normalisers=NORMALISERS[fusion])]
        for fusion in ("linear", "linear_max")
    }
    assert by_fusion == {"linear": ["a", "b", "c"], "linear_max": ["b", "a", "c"]}


def test_the_default_fusion_is_linear_max_weighing_the_text_leg_one_and_a_half_times():
    assert (DEFAULTS["fusion"], DEFAULTS["weights"], DEFAULTS["candidates"]) == ("linear_max", (1.0, 1.5), 100)
    assert (SearchParams().fusion, SearchParams().weights) == ("linear_max", (1.0, 1.5))


def test_every_linear_fusion_names_its_normalisers():
    assert set(NORMALISERS) == set(FUSIONS) - {"rrf"}


def test_linear_fusion_breaks_ties_by_id_and_fuses_nothing_to_nothing():
    assert [item for item, _, _ in linear_fuse({"vector": [("b", 1.0)], "text": [("a", 7.0)]})] == ["a", "b"]
    assert linear_fuse({"vector": [], "text": []}) == []


def test_search_params_name_a_known_fusion_or_are_refused():
    assert SearchParams(fusion="rrf").validate(Settings()).fusion == "rrf"
    assert SearchParams(fusion="linear_max").validate(Settings()).fusion == "linear_max"
    with pytest.raises(InputError, match=r"unknown fusion 'borda': use one of rrf, linear, linear_max$"):
        SearchParams(fusion="borda").validate(Settings())  # type: ignore[arg-type]


def test_every_fusion_method_has_its_sql():
    assert set(FUSION_SQL) == set(FUSIONS)
