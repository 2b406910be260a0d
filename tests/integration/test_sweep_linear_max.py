"""The sweep's Python `linear_max` fusion ranks the legs as the hybrid statement does (tiny BEIR fixture, real model).

Specification: each leg read alone (`eval.sweep.run_legs`) and fused by `fuse_run` gives the
same documents, in the same order and with the same scores, as the hybrid statement with
`fusion="linear_max"`; legs cut shallow (3) and deep (13).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from eval import EvalParams, embed_queries, fuse_run, load_beir, run_eval, run_legs
from eval.runner import eval_settings, run_database_mode
from retriever.embeddings import get_embedding_model

TINY = Path(__file__).parents[1] / "fixtures" / "tiny_beir"


@pytest.mark.parametrize(("candidates", "weights"), [(3, (1.0, 1.5)), (13, (0.5, 1.0)), (13, (1.0, 0.3))])
def test_sweep_linear_max_in_python_ranks_as_the_hybrid_statement(
    settings, collection_name, tmp_path, candidates, weights
):
    dataset = load_beir(TINY, "test")
    run_eval(dataset, settings, collection_name, EvalParams(modes=("text",), k=10), tmp_path)
    embedded = embed_queries(get_embedding_model(settings), dataset.queries, progress=False)
    legs = run_legs(settings, collection_name, dataset.queries, embedded, candidates)
    params = EvalParams(k=10, candidates=candidates, weights=weights, fusion="linear_max").search_params("hybrid")
    in_sql = run_database_mode(
        eval_settings(settings, 13), collection_name, dataset.queries, params, embedded, progress=False
    ).run
    in_python = fuse_run(legs, fusion="linear_max", rrf_k=None, weights=weights, k=10)
    assert any(in_sql.values())
    assert {qid: list(docs) for qid, docs in in_python.items()} == {qid: list(docs) for qid, docs in in_sql.items()}
    for qid, docs in in_sql.items():
        assert list(in_python[qid].values()) == pytest.approx(list(docs.values()), rel=1e-12)
