"""`hybrid-rag eval` end to end on the tiny BEIR fixture, with the real model (plumbing, not quality)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from eval import (
    EVAL_MODES,
    EvalParams,
    SweepGrid,
    embed_queries,
    fuse_run,
    load_beir,
    run_eval,
    run_legs,
    run_sweep,
    validate_results,
)
from eval.runner import eval_settings, run_database_mode
from hybrid_rag.cli import main
from retriever.embeddings import get_embedding_model

TINY = Path(__file__).parents[1] / "fixtures" / "tiny_beir"
# 4 judged queries: q-long (2,088 characters; its question starts after character 2000), q-blank (whitespace)
LONG = Path(__file__).parents[1] / "fixtures" / "long_query_beir"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SMALL = EvalParams(k=10, candidates=10)


def trec_lines(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text(encoding="utf-8").splitlines()]


def test_eval_writes_results_trec_runs_report_and_chart(settings, collection_name, tmp_path):
    dataset = load_beir(TINY, "test")
    results = run_eval(dataset, settings, collection_name, SMALL, tmp_path)

    written = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    validate_results(written)
    assert written == results
    assert (written["dataset"], written["split"], written["queries"]) == ("tiny_beir", "test", 4)
    assert list(written["modes"]) == list(EVAL_MODES)
    assert written["parameters"]["chunk_size"] == 4000 and written["parameters"]["k"] == 10
    assert written["parameters"]["embeddings"] == "local:all-MiniLM-L6-v2"
    assert {mode for mode, scores in written["modes"].items() if "db_latency_ms" in scores} == {
        "hybrid",
        "vector",
        "text",
    }
    for mode in EVAL_MODES:
        rows = trec_lines(tmp_path / f"{mode}.trec")
        assert rows and all(len(row) == 6 and row[1] == "Q0" and row[5] == f"hybrid-rag-{mode}" for row in rows)
        assert {row[0] for row in rows} <= set(dataset.queries)
        first = [row for row in rows if row[0] == "q1"]
        assert [int(row[3]) for row in first] == list(range(1, len(first) + 1))
    # every document of the corpus is one chunk, so the dense modes rank all 13 for every query
    assert len(trec_lines(tmp_path / "vector.trec")) == 4 * 10
    report = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "| hybrid |" in report and "|\n\nParameters: k 10, candidates 10, fusion linear_max, weights " in report
    assert (tmp_path / "chart.png").read_bytes().startswith(PNG_MAGIC)


def test_unchanged_collection_is_reused(settings, collection_name, tmp_path):
    dataset = load_beir(TINY, "test")
    params = EvalParams(modes=("text",), k=10)
    first = run_eval(dataset, settings, collection_name, params, tmp_path / "first")
    again = run_eval(dataset, settings, collection_name, params, tmp_path / "again")
    assert first["ingest"]["new_chunks"] == 13
    assert again["ingest"]["new_chunks"] == 0
    assert again["ingest"]["summary"].startswith("0 new, 13 unchanged")
    assert again["modes"]["text"]["ndcg@10"] == first["modes"]["text"]["ndcg@10"]


def test_sweep_writes_every_setting_best_first(settings, collection_name, tmp_path):
    grid = SweepGrid(rrf_ks=(10, 60), weights=((1.0, 1.0), (1.0, 0.7)), candidates=(5, 10))
    sweep = run_sweep(load_beir(TINY, "test"), settings, collection_name, tmp_path, grid=grid, k=10)

    assert json.loads((tmp_path / "sweep.json").read_text(encoding="utf-8")) == sweep
    assert len(sweep["settings"]) == 16  # per depth: rrf 2 rrf_k × 2 weights, linear and linear_max 2 weights each
    assert {row["fusion"] for row in sweep["settings"]} == {"rrf", "linear", "linear_max"}
    assert {row["rrf_k"] for row in sweep["settings"] if row["fusion"] != "rrf"} == {None}
    ndcg = [row["ndcg@10"] for row in sweep["settings"]]
    assert ndcg == sorted(ndcg, reverse=True)
    assert sweep["best"] == sweep["settings"][0]
    assert set(sweep["best"]) == {
        "fusion",
        "candidates",
        "rrf_k",
        "weights",
        "ndcg@10",
        "recall@10",
        "recall@100",
        "mrr@10",
    }
    assert set(sweep["legs"]) == {"5", "10"} and set(sweep["legs"]["5"]) == {"vector", "text"}
    table_rows = (tmp_path / "sweep.md").read_text(encoding="utf-8").count("\n| ")
    assert table_rows == 1 + 16 + 1 + 4  # header and settings, header and legs


@pytest.mark.parametrize(
    ("fusion", "candidates", "rrf_k", "weights"),
    [
        ("rrf", 3, 10, (1.0, 0.7)),
        ("rrf", 13, 60, (1.0, 1.5)),
        ("linear", 3, 10, (0.5, 1.0)),
        ("linear", 13, 10, (1.0, 0.3)),
    ],
)
def test_sweep_fusion_in_python_ranks_as_the_hybrid_statement(
    settings, collection_name, tmp_path, fusion, candidates, rrf_k, weights
):
    dataset = load_beir(TINY, "test")
    run_eval(dataset, settings, collection_name, EvalParams(modes=("text",), k=10), tmp_path)
    embedded = embed_queries(get_embedding_model(settings), dataset.queries, progress=False)
    legs = run_legs(settings, collection_name, dataset.queries, embedded, candidates)
    params = EvalParams(k=10, candidates=candidates, rrf_k=rrf_k, weights=weights, fusion=fusion).search_params(
        "hybrid"
    )
    in_sql = run_database_mode(
        eval_settings(settings, 13), collection_name, dataset.queries, params, embedded, progress=False
    ).run
    in_python = fuse_run(legs, fusion=fusion, rrf_k=rrf_k, weights=weights, k=10)
    assert {qid: list(docs) for qid, docs in in_python.items()} == {qid: list(docs) for qid, docs in in_sql.items()}
    for qid, docs in in_sql.items():
        assert list(in_python[qid].values()) == pytest.approx(list(docs.values()), rel=1e-12)


def test_cli_prints_the_table_and_writes_outputs(settings, collection_name, tmp_path):
    result = CliRunner().invoke(
        main, ["eval", str(TINY), "-c", collection_name, "--modes", "text,bm25", "-k", "10", "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert "tiny_beir (test), 4 queries" in result.stdout
    assert [line.split()[0] for line in result.stdout.splitlines()[3:5]] == ["text", "bm25"]
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "bm25.trec",
        "chart.png",
        "report.md",
        "results.json",
        "text.trec",
    ]


def test_every_judged_query_is_scored_a_long_one_whole_and_a_blank_one_as_failed(settings, collection_name, tmp_path):
    dataset = load_beir(LONG, "test")
    assert len(dataset.queries["q-long"]) > settings.max_query_chars  # over the limit requests are held to
    results = run_eval(dataset, settings, collection_name, EvalParams(modes=("text", "bm25"), k=10), tmp_path)

    assert json.loads((tmp_path / "results.json").read_text(encoding="utf-8")) == results
    assert results["queries"] == 4
    assert results["failed_queries"] == {
        "count": 1,
        "ids": ["q-blank"],
        "reasons": {"q-blank": "the query is empty"},
        "modes": {"text": ["q-blank"]},  # bm25 ranks nothing for it without complaint
    }
    assert "truncated_queries" not in results  # no model read these queries
    for mode in ("text", "bm25"):
        # the long query's words that match its document come after character 2000: it was searched whole
        first = next(row for row in trec_lines(tmp_path / f"{mode}.trec") if row[0] == "q-long")
        assert first[2:4] == ["light-1", "1"]
        assert results["modes"][mode]["recall@10"] == 0.75  # the blank query counts, as zero
    assert "q-blank" not in {row[0] for row in trec_lines(tmp_path / "text.trec")}


def test_every_mode_searches_the_long_query_and_reports_the_models_truncation(settings, collection_name, tmp_path):
    results = run_eval(load_beir(LONG, "test"), settings, collection_name, SMALL, tmp_path)

    assert results["truncated_queries"] == {"count": 1, "limit_tokens": 256, "ids": ["q-long"]}
    assert results["failed_queries"]["ids"] == ["q-blank"]
    assert results["failed_queries"]["modes"] == {mode: ["q-blank"] for mode in ("hybrid", "vector", "text")}
    for mode in EVAL_MODES:
        assert "q-long" in {row[0] for row in trec_lines(tmp_path / f"{mode}.trec")}
    assert json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))["truncated_queries"]["ids"] == ["q-long"]


def test_sweep_scores_a_long_and_a_blank_query_and_reports_both(settings, collection_name, tmp_path):
    grid = SweepGrid(rrf_ks=(10,), weights=((1.0, 1.0),), candidates=(5,))
    sweep = run_sweep(load_beir(LONG, "test"), settings, collection_name, tmp_path, grid=grid, k=10)

    assert sweep["failed_queries"]["ids"] == ["q-blank"]
    assert sweep["failed_queries"]["modes"] == {"vector": ["q-blank"], "text": ["q-blank"]}
    assert sweep["truncated_queries"] == {"count": 1, "limit_tokens": 256, "ids": ["q-long"]}
    assert sweep["legs"]["5"]["text"]["recall@10"] == 0.75


def test_cli_reports_the_failed_query_and_still_writes_results(settings, collection_name, tmp_path):
    result = CliRunner().invoke(
        main, ["eval", str(LONG), "-c", collection_name, "--modes", "text,bm25", "-k", "10", "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert "long_query_beir (test), 4 queries" in result.stdout
    assert (
        "warning: the search refused 1 judged query (q-blank), each scored as an empty ranking "
        "(q-blank: the query is empty)" in result.stderr
    )
    assert json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))["failed_queries"]["count"] == 1
