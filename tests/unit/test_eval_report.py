"""results.json, TREC runs, the markdown report, the chart and the console table."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from eval import (
    console_table,
    validate_results,
    write_chart,
    write_markdown,
    write_results,
    write_trec_run,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def scores(ndcg: float, p50: float, p95: float, db_p50: float | None = None) -> dict[str, Any]:
    mode: dict[str, Any] = {
        "ndcg@10": ndcg,
        "recall@10": 0.8,
        "recall@100": 0.9,
        "mrr@10": 0.6,
        "latency_ms": {"p50": p50, "p95": p95},
    }
    if db_p50 is not None:
        mode["db_latency_ms"] = {"p50": db_p50, "p95": db_p50 * 2}
    return mode


RESULTS: dict[str, Any] = {
    "dataset": "tiny_beir",
    "split": "test",
    "queries": 4,
    "modes": {
        "hybrid": scores(0.712, 14.2, 30.5, db_p50=9.75),
        "vector": scores(0.651, 8.1, 12.0, db_p50=5.0),
        "text": scores(0.655, 4.4, 9.9, db_p50=2.5),
        "bm25": scores(0.668, 250.0, 900.0),
    },
}


def test_valid_results_pass_validation() -> None:
    validate_results(RESULTS)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (("dataset",), "missing 'dataset'"),
        (("queries",), "missing 'queries'"),
        (("modes", "hybrid", "mrr@10"), r"results\.modes\.hybrid: missing 'mrr@10'"),
        (("modes", "bm25", "latency_ms", "p95"), r"latency_ms: missing 'p95'"),
        (("modes", "text", "db_latency_ms", "p50"), r"db_latency_ms: missing 'p50'"),
    ],
)
def test_missing_key_fails_validation(path: tuple[str, ...], message: str) -> None:
    broken = copy.deepcopy(RESULTS)
    parent = broken
    for key in path[:-1]:
        parent = parent[key]
    del parent[path[-1]]
    with pytest.raises(ValueError, match=message):
        validate_results(broken)


@pytest.mark.parametrize(
    ("key", "value"),
    [("queries", "4"), ("queries", True), ("modes", {}), ("split", None)],
)
def test_wrong_top_level_type_fails_validation(key: str, value: object) -> None:
    with pytest.raises(ValueError, match=key):
        validate_results({**RESULTS, key: value})


def test_non_numeric_metric_fails_validation() -> None:
    broken = copy.deepcopy(RESULTS)
    broken["modes"]["vector"]["ndcg@10"] = "0.65"
    with pytest.raises(ValueError, match=r"vector\.ndcg@10: expected float"):
        validate_results(broken)


def test_write_results_round_trips_and_keeps_extra_keys(tmp_path: Path) -> None:
    results = {**RESULTS, "collection": "tiny"}
    write_results(tmp_path / "out", results)
    assert json.loads((tmp_path / "out" / "results.json").read_text()) == results


def test_write_results_refuses_a_bad_shape(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_results(tmp_path, {"dataset": "x"})
    assert not (tmp_path / "results.json").exists()


def test_trec_run_lines_rank_from_one_by_descending_score(tmp_path: Path) -> None:
    path = tmp_path / "runs" / "hybrid.trec"
    write_trec_run(path, {"q1": {"d2": 0.5, "d1": 0.9}, "q2": {"0042": 1.0}}, tag="hybrid")
    assert path.read_text().splitlines() == [
        "q1 Q0 d1 1 0.9 hybrid",
        "q1 Q0 d2 2 0.5 hybrid",
        "q2 Q0 0042 1 1.0 hybrid",
    ]


def test_trec_run_keeps_scores_that_differ_in_the_last_bit(tmp_path: Path) -> None:
    path = tmp_path / "run.trec"
    write_trec_run(path, {"q": {"a": 1.0, "b": 0.9999999999999999}}, tag="t")
    written = [float(line.split()[4]) for line in path.read_text().splitlines()]
    assert written[0] > written[1]


def test_trec_run_rejects_whitespace_in_fields(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="tag"):
        write_trec_run(tmp_path / "run.trec", {"q": {"a": 1.0}}, tag="my run")
    with pytest.raises(ValueError, match="document id"):
        write_trec_run(tmp_path / "run.trec", {"q": {"a b": 1.0}}, tag="t")


def test_markdown_has_one_row_per_mode_and_the_dataset_line(tmp_path: Path) -> None:
    path = write_markdown(tmp_path, RESULTS)
    text = path.read_text()
    assert path == tmp_path / "report.md"
    assert "Dataset `tiny_beir`, split `test`, 4 queries." in text
    assert "| mode | nDCG@10 | R@10 | R@100 | MRR@10 | p50 ms | p95 ms | db p50 ms |" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and "nDCG" not in line]
    assert [row.split("|")[1].strip() for row in rows] == [
        "hybrid",
        "vector",
        "text",
        "bm25",
    ]
    assert "| hybrid | 0.712 | 0.800 | 0.900 | 0.600 | 14.2 | 30.5 | 9.8 |" in text
    assert "| bm25 | 0.668 | 0.800 | 0.900 | 0.600 | 250.0 | 900.0 | – |" in text


def test_chart_is_a_png(tmp_path: Path) -> None:
    path = write_chart(tmp_path, RESULTS)
    assert path == tmp_path / "chart.png"
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 10_000


def test_chart_copes_with_one_mode_and_zero_latency(tmp_path: Path) -> None:
    results = {**RESULTS, "modes": {"text": scores(0.5, 0.0, 0.0)}}
    assert write_chart(tmp_path, results).read_bytes()[:8] == PNG_MAGIC


def test_console_table_aligns_one_line_per_mode() -> None:
    table = console_table(RESULTS)
    lines = table.splitlines()
    assert lines[0] == "tiny_beir (test), 4 queries"
    assert lines[1].split() == [
        "mode",
        "nDCG@10",
        "R@10",
        "R@100",
        "MRR@10",
        "p50",
        "ms",
        "p95",
        "ms",
        "db",
        "p50",
        "ms",
    ]
    assert [line.split()[0] for line in lines[3:]] == [
        "hybrid",
        "vector",
        "text",
        "bm25",
    ]
    assert len({len(line) for line in lines[1:3]}) == 1
    assert lines[3].split()[1:] == [
        "0.712",
        "0.800",
        "0.900",
        "0.600",
        "14.2",
        "30.5",
        "9.8",
    ]
