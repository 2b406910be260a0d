"""The runner's and the sweep's pure parts: names, parameters, percentiles, fusion, tables."""

from __future__ import annotations

import pytest

from eval import METRICS, EvalParams, default_collection_name, fuse_run, sweep_table
from eval.runner import eval_settings, percentiles
from eval.sweep import Legs, leg_run
from retriever.fusion import rrf_fuse
from retriever.settings import Settings
from retriever.store.tables import validate_name


@pytest.mark.parametrize(
    ("folder", "expected"),
    [
        ("scifact", "beir_scifact"),
        ("NFCorpus", "beir_nfcorpus"),
        ("cqadupstack-Android.v2", "beir_cqadupstack_android_v2"),
        ("--weird__name--", "beir_weird_name"),
    ],
)
def test_default_collection_name_is_beir_and_the_sanitised_folder(folder, expected, tmp_path):
    assert default_collection_name(tmp_path / folder) == expected


def test_default_collection_name_of_a_long_folder_is_still_a_valid_name(tmp_path):
    name = default_collection_name(tmp_path / ("a" * 35 + "_b" * 10))
    assert validate_name(name) == name and len(name) <= 40


def test_hybrid_keeps_its_depth_and_single_legs_run_at_least_k_deep():
    params = EvalParams(k=100, candidates=50, rrf_k=20, weights=(1.0, 1.5))
    hybrid, vector = params.search_params("hybrid"), params.search_params("vector")
    assert (hybrid.candidates, hybrid.rrf_k, hybrid.weights, hybrid.collapse) == (50, 20, (1.0, 1.5), True)
    assert (vector.candidates, vector.k, vector.collapse) == (100, 100, True)


def test_eval_settings_raise_the_limits_only_upwards():
    raised = eval_settings(Settings(max_k=100, max_candidates=1000), 200)
    assert (raised.max_k, raised.max_candidates) == (200, 1000)
    assert eval_settings(Settings(max_k=500), 100).max_k == 500


def test_percentiles_interpolate_like_numpy():
    assert percentiles([float(i) for i in range(1, 101)]) == {"p50": 50.5, "p95": 95.05}


LEGS = Legs(
    rankings={
        "q1": {"vector": ["a:0", "b:0", "a:1"], "text": ["c:0", "a:1", "b:0"]},
        "q2": {"vector": [], "text": []},
    },
    document_of={"a:0": "a", "a:1": "a", "b:0": "b", "c:0": "c"},
)


def test_fused_chunks_collapse_to_documents_in_fused_order():
    run = fuse_run(LEGS, rrf_k=10, weights=(1.0, 1.0), k=10)
    fused = rrf_fuse(LEGS.rankings["q1"], rrf_k=10)
    assert [chunk for chunk, _, _ in fused] == ["a:1", "b:0", "a:0", "c:0"]
    assert list(run["q1"]) == ["a", "b", "c"]
    assert run["q1"]["a"] == fused[0][1]
    assert run["q2"] == {}


def test_leg_weights_change_the_fused_order():
    text_heavy = fuse_run(LEGS, rrf_k=1, weights=(0.1, 1.0), k=10)
    assert list(text_heavy["q1"]) == ["c", "a", "b"]


def test_one_leg_alone_ranks_its_documents_in_leg_order():
    assert list(leg_run(LEGS, "text", 2)["q1"]) == ["c", "a"]


def test_sweep_table_lists_the_top_settings_best_first():
    rows = [
        {"candidates": 100, "rrf_k": k, "weights": {"vector": 1.0, "text": 0.7}, **dict.fromkeys(METRICS, s)}
        for k, s in ((10, 0.72), (60, 0.70), (100, 0.69))
    ]
    table = sweep_table({"dataset": "scifact", "split": "train", "queries": 809, "settings": rows}, top=2)
    lines = table.splitlines()
    assert "scifact (train), 809 queries, 3 settings" in lines[0]
    assert lines[1].split() == ["#", "candidates", "rrf_k", "w_vector", "w_text", "nDCG@10", "R@10", "R@100", "MRR@10"]
    assert [line.split()[:3] for line in lines[3:]] == [["1", "100", "10"], ["2", "100", "60"]]
    assert lines[3].split()[4:6] == ["0.7", "0.7200"]
