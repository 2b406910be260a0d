"""The runner's and the sweep's pure parts: names, parameters, percentiles, fusion, tables."""

from __future__ import annotations

import numpy as np
import pytest

from eval import METRICS, EvalParams, default_collection_name, fuse_run, runner, sweep_table
from eval.runner import eval_settings, percentiles
from eval.sweep import Legs, SweepGrid, leg_run
from retriever import DatabaseUnavailable, EmbeddingMismatch, EmbeddingModel, InputError, LimitExceeded
from retriever.embeddings import LocalEmbeddings
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
    params = EvalParams(k=100, candidates=50, rrf_k=20, weights=(1.0, 1.5), fusion="linear")
    hybrid, vector = params.search_params("hybrid"), params.search_params("vector")
    assert (hybrid.candidates, hybrid.rrf_k, hybrid.weights, hybrid.collapse) == (50, 20, (1.0, 1.5), True)
    assert hybrid.fusion == "linear" and params.describe(None)["fusion"] == "linear"
    assert (vector.candidates, vector.k, vector.collapse) == (100, 100, True)


def test_eval_settings_raise_the_limits_only_upwards():
    raised = eval_settings(Settings(max_k=100, max_candidates=1000), 200)
    assert (raised.max_k, raised.max_candidates) == (200, 1000)
    assert eval_settings(Settings(max_k=500), 100).max_k == 500


def test_eval_settings_raise_the_query_limit_to_the_longest_judged_query():
    limits = Settings(max_k=100, max_candidates=1000, max_query_chars=2000)
    raised = eval_settings(limits, 200, ["a short one", "x" * 2083, ""])
    assert (raised.max_k, raised.max_candidates, raised.max_query_chars) == (200, 1000, 2083)
    assert eval_settings(Settings(max_query_chars=5000), 10, ["x" * 2083]).max_query_chars == 5000
    assert eval_settings(limits, 10, iter(["x" * 2100])).max_query_chars == 2100  # any iterable, read once
    assert eval_settings(limits, 10).max_query_chars == 2000


class _WindowedEmbeddings(LocalEmbeddings):
    """A local model with a 5-token window, whitespace tokens between [CLS] and [SEP]."""

    max_seq_length = 5

    def embed_array(self, texts):
        return np.ones((len(texts), 1), dtype=np.float32)

    def token_count(self, text: str) -> int:
        return len(["[CLS]", *text.split(), "[SEP]"])


def test_queries_over_the_models_window_are_counted_special_tokens_included(fake_model):
    model = EmbeddingModel("test:window-5", _WindowedEmbeddings())
    queries = {"fits": "one two three", "over": "one two three four", "blank": "  "}
    assert runner.truncated_queries(model, queries) == {"count": 1, "limit_tokens": 5, "ids": ["over"]}
    assert runner.truncated_queries(fake_model, queries) is None  # no window exposed: nothing to say


class _Engine:
    def __init__(self, error: Exception | None) -> None:
        self.error = error

    def search(self, collection, text, params, **kwargs):
        if self.error is not None:
            raise self.error
        return "found"


def test_an_input_error_fails_one_query_but_an_outage_or_a_model_mismatch_ends_the_run():
    failed: dict[str, str] = {}
    search = runner.search_one
    assert search(_Engine(None), "c", "q1", "text", None, failed) == "found"
    assert search(_Engine(InputError("the query is empty")), "c", "q2", " ", None, failed) is None
    assert search(_Engine(LimitExceeded("over a PostgreSQL limit")), "c", "q3", "x", None, failed) is None
    assert failed == {"q2": "the query is empty", "q3": "over a PostgreSQL limit"}
    for fatal in (DatabaseUnavailable("database unreachable"), EmbeddingMismatch("built with another model")):
        with pytest.raises(type(fatal)):
            search(_Engine(fatal), "c", "q4", "text", None, failed)
    assert "q4" not in failed


def test_failed_queries_list_each_query_once_with_its_reason_and_modes():
    failed = runner.failed_queries({"hybrid": {"q2": "empty"}, "text": {"q2": "empty", "q9": "NUL"}, "bm25": {}})
    assert failed == {
        "count": 2,
        "ids": ["q2", "q9"],
        "reasons": {"q2": "empty", "q9": "NUL"},
        "modes": {"hybrid": ["q2"], "text": ["q2", "q9"]},
    }


def test_percentiles_interpolate_like_numpy():
    assert percentiles([float(i) for i in range(1, 101)]) == {"p50": 50.5, "p95": 95.05}


def test_percentiles_of_a_mode_where_no_query_ran_are_zero():
    assert percentiles([]) == {"p50": 0.0, "p95": 0.0}


LEGS = Legs(
    rankings={
        "q1": {"vector": ["a:0", "b:0", "a:1"], "text": ["c:0", "a:1", "b:0"]},
        "q2": {"vector": [], "text": []},
    },
    scores={  # normalised, as each leg alone returns them
        "q1": {"vector": [1.0, 0.9, 0.0], "text": [1.0, 0.2, 0.0]},
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


def test_linear_fusion_of_the_legs_sums_their_weighted_normalised_scores():
    run = fuse_run(LEGS, fusion="linear", rrf_k=None, weights=(1.0, 0.5), k=10)
    # a:0 1.0 + 0; b:0 0.9 + 0.5·0.0; a:1 0.0 + 0.5·0.2; c:0 0.5·1.0: a keeps its best chunk
    assert run["q1"] == {"a": pytest.approx(1.0), "b": pytest.approx(0.9), "c": pytest.approx(0.5)}
    assert run["q2"] == {}
    assert list(fuse_run(LEGS, fusion="linear", rrf_k=None, weights=(0.1, 1.0), k=10)["q1"]) == ["c", "a", "b"]


def test_linear_max_fusion_of_the_legs_keeps_the_text_scores_over_the_best_where_linear_stretches_them():
    # each leg alone returns the text leg's scores over its best: 0.6 and 0.5 here
    legs = Legs(
        rankings={"q1": {"vector": ["a:0", "b:0"], "text": ["c:0", "a:0", "b:0"]}},
        scores={"q1": {"vector": [1.0, 0.0], "text": [1.0, 0.6, 0.5]}},
        document_of={"a:0": "a", "b:0": "b", "c:0": "c"},
    )
    kept = fuse_run(legs, fusion="linear_max", rrf_k=None, weights=(1.0, 1.0), k=10)
    assert kept["q1"] == {"a": pytest.approx(1.6), "c": pytest.approx(1.0), "b": pytest.approx(0.5)}
    stretched = fuse_run(legs, fusion="linear", rrf_k=None, weights=(1.0, 1.0), k=10)
    assert stretched["q1"] == {"a": pytest.approx(1.2), "c": pytest.approx(1.0), "b": pytest.approx(0.0)}


def test_every_grid_setting_names_its_fusion_and_only_rrf_has_an_rrf_k():
    grid = SweepGrid(rrf_ks=(10, 60), weights=((1.0, 1.0), (0.5, 1.0)), candidates=(100,))
    assert grid.settings() == [
        ("rrf", 10, (1.0, 1.0)),
        ("rrf", 10, (0.5, 1.0)),
        ("rrf", 60, (1.0, 1.0)),
        ("rrf", 60, (0.5, 1.0)),
        ("linear", None, (1.0, 1.0)),
        ("linear", None, (0.5, 1.0)),
        ("linear_max", None, (1.0, 1.0)),
        ("linear_max", None, (0.5, 1.0)),
    ]


def test_one_leg_alone_ranks_its_documents_in_leg_order():
    assert list(leg_run(LEGS, "text", 2)["q1"]) == ["c", "a"]


def test_sweep_table_lists_the_top_settings_best_first():
    rows = [
        {
            "fusion": f,
            "candidates": 100,
            "rrf_k": k,
            "weights": {"vector": 1.0, "text": 0.7},
            **dict.fromkeys(METRICS, s),
        }
        for f, k, s in (("rrf", 10, 0.72), ("linear", None, 0.70), ("rrf", 100, 0.69))
    ]
    table = sweep_table({"dataset": "scifact", "split": "train", "queries": 809, "settings": rows}, top=2)
    lines = table.splitlines()
    assert "scifact (train), 809 queries, 3 settings" in lines[0]
    assert lines[1].split() == [
        "#",
        "fusion",
        "candidates",
        "rrf_k",
        "w_vector",
        "w_text",
        "nDCG@10",
        "R@10",
        "R@100",
        "MRR@10",
    ]
    assert [line.split()[:4] for line in lines[3:]] == [["1", "rrf", "100", "10"], ["2", "linear", "100", "-"]]
    assert lines[3].split()[5:7] == ["0.7", "0.7200"]
