"""`hybrid-rag bench ingest` runs end to end on a tiny collection and prints the promised JSON."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from bench.cli import bench as bench_group
from retriever.connections import open_primary
from retriever.store.collections import list_collections

TINY_BEIR = Path(__file__).parent.parent / "fixtures" / "tiny_beir"


def test_bench_ingest_prints_rows_per_second_for_both_stores(settings, fake_embeddings):
    result = CliRunner().invoke(bench_group, ["ingest", str(TINY_BEIR), "--json"])

    assert result.exit_code == 0, result.output + result.stderr
    report = json.loads(result.stdout)
    for key in ("ours_rows_per_s", "pgvectorstore_rows_per_s", "ratio", "embed_chunks_per_s"):
        assert report[key] > 0, key
    assert report["rows"] == 13
    assert report["same_final_state"] is True
    assert report["final_state"]["ours"]["postings"] > 0
    replace = report["replace"]  # every tenth document written again into both, the stores still the same
    assert replace["documents"] == 2 and replace["chunks"] >= 2
    assert replace["ours_s"] > 0 and replace["pgvectorstore_s"] > 0 and replace["ratio"] > 0


def test_bench_ingest_bounds_the_ratio_by_the_work_the_final_state_needs(settings, fake_embeddings):
    result = CliRunner().invoke(bench_group, ["ingest", str(TINY_BEIR), "--json"])

    assert result.exit_code == 0, result.output + result.stderr
    report = json.loads(result.stdout)
    ceiling = report["ceiling"]
    for key in ("tsvector_s", "postings_s", "gin_s", "hnsw_s"):
        assert ceiling[key] > 0, key
    assert ceiling["floor_s"] <= report["ours"]["seconds"]  # a floor: no run beats it


def test_bench_ingest_drops_its_tables(settings, fake_embeddings):
    result = CliRunner().invoke(bench_group, ["ingest", str(TINY_BEIR), "--rows", "5"])

    assert result.exit_code == 0, result.output + result.stderr
    assert "rows/s" in result.stdout and "anchor" in result.stdout
    with open_primary(settings) as conn:
        assert not [c.name for c in list_collections(conn) if c.name.startswith("bench_ingest_")]
        leftover = conn.execute(
            "SELECT count(*) FROM pg_tables "
            "WHERE tablename LIKE 'bench_pgvs_%%' AND tablename NOT LIKE 'bench_pgvs_q_%%'"
        ).fetchone()
    assert leftover[0] == 0


def test_bench_ingest_rejects_a_folder_without_a_corpus(settings, fake_embeddings, tmp_path):
    result = CliRunner().invoke(bench_group, ["ingest", str(tmp_path)])

    assert result.exit_code == 2
    assert "corpus file not found" in result.stderr
