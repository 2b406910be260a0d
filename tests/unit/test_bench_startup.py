"""`hybrid-rag bench cli` runs the command in fresh processes, variants taking turns, and names a failing run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import pytest

from bench.startup import VARIANTS, run_startup_bench, startup_table

# Stands in for `hybrid-rag`: appends its arguments and EMBEDDINGS to a log, or fails like the CLI does.
FAKE_CLI = """
import json, os, sys
with open(sys.argv[1], "a", encoding="utf-8") as log:
    log.write(json.dumps([sys.argv[2:], os.environ["EMBEDDINGS"]]) + "\\n")
if sys.argv[5] == "missing":
    sys.exit("error: collection 'missing' does not exist")
"""


def fake_cli(tmp_path: Path) -> tuple[list[str], Path]:
    script, log = tmp_path / "fake_cli.py", tmp_path / "calls.jsonl"
    script.write_text(FAKE_CLI, encoding="utf-8")
    return [sys.executable, str(script), str(log)], log


def test_each_variant_runs_once_untimed_then_in_turns_in_fresh_processes(tmp_path: Path) -> None:
    command, log = fake_cli(tmp_path)

    results = run_startup_bench("demo", "how long do beans stay fresh", repeat=2, command=command, env={})

    calls = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    per_variant = [(options, embeddings) for options, embeddings in VARIANTS.values()]
    expected = [
        (["search", "how long do beans stay fresh", "-c", "demo", "-k", "10", *options], embeddings)
        for options, embeddings in per_variant
    ]
    assert [tuple(call) for call in calls] == [tuple(call) for call in expected * 3]  # warm-up, then 2 rounds
    assert list(results["variants"]) == list(VARIANTS)
    for row in results["variants"].values():
        assert len(row["runs_s"]) == 2 and row["min_s"] <= row["median_s"] <= row["max_s"]
        assert row["cpu_median_s"] > 0
    lines = startup_table(results).splitlines()
    assert lines[3].startswith("hybrid, onnx") and lines[-1].startswith("load 1m ")


def test_a_failing_run_is_one_line_naming_its_error(tmp_path: Path) -> None:
    command, _ = fake_cli(tmp_path)

    with pytest.raises(click.ClickException, match="collection 'missing' does not exist"):
        run_startup_bench("missing", "q", repeat=1, command=command, env={})
