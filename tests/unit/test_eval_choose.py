"""Defaults chosen across collections: best mean nDCG@10 among settings never below a leg; held-out estimates."""

from __future__ import annotations

import json

import pytest

from eval.choose import choose, leave_one_out, load_sweeps, narrow

RRF = ("rrf", 100, 10, 1.0, 1.0)
LINEAR = ("linear", 100, None, 0.7, 1.0)


def _sweep(tmp_path, dataset: str, legs: dict[str, float], scores: dict[tuple, float]):
    rows = [
        {
            "fusion": fusion,
            "candidates": candidates,
            "rrf_k": rrf_k,
            "weights": {"vector": vector, "text": text},
            "ndcg@10": ndcg,
        }
        for (fusion, candidates, rrf_k, vector, text), ndcg in scores.items()
    ]
    sweep = {
        "dataset": dataset,
        "split": "test",
        "settings": rows,
        "legs": {depth: {k: {"ndcg@10": v} for k, v in legs.items()} for depth in ("100", "200")},
    }
    path = tmp_path / f"{dataset}.json"
    path.write_text(json.dumps(sweep), encoding="utf-8")
    return path


def test_margins_are_over_the_better_leg_at_the_same_depth(tmp_path):
    table = load_sweeps([_sweep(tmp_path, "a", {"vector": 0.5, "text": 0.6}, {RRF: 0.65, LINEAR: 0.55})])
    assert table["a (test)"][RRF] == (0.65, pytest.approx(0.05))
    assert table["a (test)"][LINEAR] == (0.55, pytest.approx(-0.05))


def test_a_setting_below_a_leg_anywhere_loses_to_one_that_never_is(tmp_path):
    table = load_sweeps(
        [
            _sweep(tmp_path, "a", {"vector": 0.5, "text": 0.6}, {RRF: 0.61, LINEAR: 0.90}),
            _sweep(tmp_path, "b", {"vector": 0.5, "text": 0.4}, {RRF: 0.52, LINEAR: 0.49}),
        ]
    )
    assert choose(table) == RRF  # LINEAR has the better mean but falls below b's vector leg
    assert choose(table, ["a (test)"]) == LINEAR


def test_leave_one_out_scores_each_collection_under_the_choice_of_the_others(tmp_path):
    table = load_sweeps(
        [
            _sweep(tmp_path, "a", {"vector": 0.1, "text": 0.1}, {RRF: 0.3, LINEAR: 0.2}),
            _sweep(tmp_path, "b", {"vector": 0.1, "text": 0.1}, {RRF: 0.2, LINEAR: 0.4}),
        ]
    )
    held = leave_one_out(table)
    assert held["a (test)"][0] == LINEAR and held["a (test)"][1] == 0.2
    assert held["b (test)"][0] == RRF and held["b (test)"][1] == 0.2


def test_narrowing_keeps_only_the_settings_asked_for(tmp_path):
    other_depth = ("linear", 200, None, 0.7, 1.0)
    table = load_sweeps([_sweep(tmp_path, "a", {"vector": 0.1}, {RRF: 0.3, LINEAR: 0.2, other_depth: 0.9})])
    assert set(narrow(table, candidates=100)["a (test)"]) == {RRF, LINEAR}
    assert set(narrow(table, fusion="linear", weights=(0.7, 1.0))["a (test)"]) == {LINEAR, other_depth}
    assert choose(narrow(table, candidates=100)) == RRF
