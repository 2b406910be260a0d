"""`hybrid-rag eval` refuses bad input with one line and exit code 2, before touching a database."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from hybrid_rag.cli import main

TINY = Path(__file__).parents[1] / "fixtures" / "tiny_beir"
# an unreachable database: none of these mistakes may get as far as connecting
NOWHERE = ("--database-url", "postgresql://nobody@127.0.0.1:1/none")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["/nonexistent/beir/scifact"], "dataset folder not found: /nonexistent/beir/scifact"),
        ([str(TINY), "--split", "dev"], "no qrels for split 'dev'"),
        ([str(TINY), "--modes", "hybrid,fuzzy"], "unknown mode fuzzy: use some of hybrid,vector,text,bm25"),
        ([str(TINY), "--modes", ","], "unknown mode ','"),
        ([str(TINY), "--weights", "1"], "--weights must be two numbers"),
        ([str(TINY), "--fusion", "borda"], "unknown fusion 'borda': use one of rrf, linear"),
        ([str(TINY), "--collection", "Bad-Name", "--modes", "text"], "invalid collection name 'Bad-Name'"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(arguments, message, tmp_path):
    result = CliRunner().invoke(main, ["eval", *arguments, *NOWHERE, "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("Error: ") and message in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_sweep_defaults_to_the_train_split(tmp_path):
    empty = tmp_path / "no_train"
    (empty / "qrels").mkdir(parents=True)
    for name in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv"):
        (empty / name).write_text((TINY / name).read_text(encoding="utf-8"), encoding="utf-8")
    result = CliRunner().invoke(main, ["eval", str(empty), "--sweep", *NOWHERE])
    assert result.exit_code == 2
    assert "no qrels for split 'train'" in result.stderr and "available splits: test" in result.stderr


def test_help_states_the_passage_chunking():
    result = CliRunner().invoke(main, ["eval", "--help"])
    assert result.exit_code == 0
    assert "4000 characters with 200" in " ".join(result.output.split())
