"""`hybrid-rag bench query` runs end to end on a tiny collection and prints the promised JSON."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from bench.cli import bench as bench_group

TINY_BEIR = Path(__file__).parent.parent / "fixtures" / "tiny_beir"


def test_bench_query_prints_quality_and_latency_of_both_systems(settings, fake_embeddings):
    result = CliRunner().invoke(bench_group, ["query", str(TINY_BEIR), "--json"])

    assert result.exit_code == 0, result.output + result.stderr
    report = json.loads(result.stdout)
    assert set(report["ours"]) >= {"ndcg@10", "p50_ms", "p95_ms"}
    assert set(report["langchain_postgres"]) >= {"ndcg@10", "p50_ms", "p95_ms", "p50_ms_ef100"}
    assert set(report["ours"]["modes"]) == {"hybrid", "vector", "text"}
    assert report["queries"] == 4
    assert 0 < report["ours"]["modes"]["text"]["ndcg@10"] <= 1  # the BM25 leg finds the judged documents
    assert report["ours"]["p50_ms"] > 0 and report["langchain_postgres"]["p50_ms_ef100"] > 0


def test_bench_query_reuses_the_stores_it_built(settings, fake_embeddings):
    first = CliRunner().invoke(bench_group, ["query", str(TINY_BEIR)])
    again = CliRunner().invoke(bench_group, ["query", str(TINY_BEIR)])

    assert first.exit_code == 0 and again.exit_code == 0, first.stderr + again.stderr
    assert "loading" not in again.stderr
    assert "anchor" in again.stdout


def test_bench_query_rejects_an_unknown_split(settings, fake_embeddings):
    result = CliRunner().invoke(bench_group, ["query", str(TINY_BEIR), "--split", "dev"])

    assert result.exit_code == 2
    assert "no qrels for split 'dev'" in result.stderr
