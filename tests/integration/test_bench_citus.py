"""`hybrid-rag bench citus` loads a tiny BEIR collection on a Citus cluster and on a single node and compares them.

The cluster is the session's (`tests/citus.py`); the single node is the session's server (the
embedded PostgreSQL unless TEST_SERVER or DATABASE_URL say otherwise). The embeddings are the
deterministic fake: the report's shape and sanity are checked, never its timings.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench.cli import bench as bench_group
from retriever.connections import open_primary
from retriever.store.database import primary_dsn

pytest_plugins = ["citus"]

TINY_BEIR = Path(__file__).parent.parent / "fixtures" / "tiny_beir"
MODES = {"hybrid", "vector", "text"}


def _single(settings) -> list[str]:
    """--single for the session's server; none for the embedded one, which is the command's default."""
    return ["--single", settings.database_url] if settings.database_url else []


@pytest.fixture(scope="module")
def report(citus, settings, fake_embeddings_module) -> dict:
    args = ["citus", str(TINY_BEIR), "--cluster", citus.settings.database_url, *_single(settings), "--json"]
    result = CliRunner().invoke(bench_group, args)

    assert result.exit_code == 0, result.output + result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def fake_embeddings_module(fake_model):
    """`fake_embeddings` for the whole module: the bench is run once and its report read by every test."""
    import bench.cli

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(bench.cli, "get_embedding_model", lambda settings: fake_model)
        yield fake_model


def test_bench_citus_reports_both_servers_in_every_mode(report):
    assert report["queries"] == 4 and report["chunks"] > 0
    assert set(report["modes"]) == MODES
    single, cluster = report["servers"]["single"], report["servers"]["cluster"]
    assert single["citus"] is None and not single["distributed"] and single["nodes"] == 1
    assert cluster["citus"] and cluster["distributed"] and cluster["nodes"] == 3 and cluster["shards"] > 1
    for mode in report["modes"].values():
        for server in ("single", "cluster"):
            assert 0 <= mode[server]["ndcg@10"] <= 1
            assert 0 < mode[server]["p50_ms"] <= mode[server]["p95_ms"]
        assert mode["p50_ms_cluster_over_single"] == mode["cluster"]["p50_ms"] / mode["single"]["p50_ms"]


def test_bench_citus_ingest_figures_are_rates_of_the_same_chunks(report):
    ingest = report["ingest"]
    for server in ("single", "cluster"):
        assert ingest[server]["chunks_per_s"] > 0
        assert ingest[server]["chunks_per_s"] == pytest.approx(report["chunks"] / ingest[server]["seconds"])
    ratio = ingest["cluster"]["chunks_per_s"] / ingest["single"]["chunks_per_s"]
    assert ingest["chunks_per_s_cluster_over_single"] == pytest.approx(ratio)


def test_identical_collections_rank_text_alike_on_the_cluster_and_the_single_node(report):
    text = report["modes"]["text"]
    assert 0 < text["single"]["ndcg@10"] == text["cluster"]["ndcg@10"]  # global BM25 statistics on every shard
    assert text["top10_overlap"] == 1
    assert all(0 <= mode["top10_overlap"] <= 1 for mode in report["modes"].values())


def test_bench_citus_drops_the_collections_it_built(report, citus, settings):
    for server in (citus.settings, settings):
        with open_primary(server) as conn:
            left = conn.execute("SELECT count(*) FROM hybrid_rag.collections WHERE name LIKE 'bench_citus_%'")
            assert left.fetchone()[0] == 0


def test_bench_citus_prints_a_table_with_both_servers(citus, settings, fake_embeddings):
    args = ["citus", str(TINY_BEIR), "--cluster", citus.settings.database_url, *_single(settings)]
    result = CliRunner().invoke(bench_group, args)

    assert result.exit_code == 0, result.output + result.stderr
    assert "cluster/single" in result.stdout and "+ Citus" in result.stdout
    rows = [line.split()[0] for line in result.stdout.splitlines() if line.split()[:1] and line.split()[0] in MODES]
    assert rows == ["hybrid", "vector", "text"]


def test_a_cluster_that_is_not_a_citus_coordinator_is_one_line_and_exit_2(settings, fake_embeddings):
    result = CliRunner().invoke(bench_group, ["citus", str(TINY_BEIR), "--cluster", primary_dsn(settings)])

    assert result.exit_code == 2
    assert "not a Citus coordinator" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_an_unreachable_cluster_is_one_line_and_exit_2(settings, fake_embeddings):
    cluster = "postgresql://postgres@127.0.0.1:1/hybrid_rag"
    result = CliRunner().invoke(bench_group, ["citus", str(TINY_BEIR), "--cluster", cluster, *_single(settings)])

    assert result.exit_code == 2
    assert result.stderr.startswith("Error: the cluster server 127.0.0.1:1/hybrid_rag")
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_citus_coordinator_as_the_single_node_is_refused(citus, fake_embeddings):
    url = citus.settings.database_url
    result = CliRunner().invoke(bench_group, ["citus", str(TINY_BEIR), "--cluster", url, "--single", url])

    assert result.exit_code == 2
    assert "is a Citus coordinator" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_folder_without_the_split_is_one_line_and_exit_2(citus, settings, fake_embeddings):
    args = ["citus", str(TINY_BEIR), "--cluster", citus.settings.database_url, *_single(settings), "--split", "dev"]
    result = CliRunner().invoke(bench_group, args)

    assert result.exit_code == 2
    assert "no qrels for split 'dev'" in result.stderr and len(result.stderr.strip().splitlines()) == 1
