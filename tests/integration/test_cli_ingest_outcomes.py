"""What `hybrid-rag ingest` tells the shell: exit 0 all ingested, 3 finished with skips, 2 a mistake;
and a new collection's language chosen on the command line."""

from __future__ import annotations

from pathlib import Path

from test_cli import assert_user_error, run


def test_a_run_that_skipped_inputs_exits_3_after_storing_the_good_ones(tmp_path: Path, collection_name: str) -> None:
    (tmp_path / "good.md").write_text("# Ferns\nFerns grow in shade.", encoding="utf-8")
    (tmp_path / "bad.jsonl").write_text('{"id": "x", "text": "ferns", "metadata": {"a": "b\\u0000"}}\n')

    result = run("ingest", str(tmp_path), "-c", collection_name)

    assert result.exit_code == 3, result.output
    assert "warning: skipped" in result.stderr and "bad.jsonl: line 1: metadata.a contains a NUL" in result.stderr
    assert "1 new" in result.stdout and "1 skipped" in result.stdout
    assert "Traceback" not in result.output
    again = run("ingest", str(tmp_path / "good.md"), "-c", collection_name)
    assert again.exit_code == 0 and "0 new" in again.stdout


def test_without_a_terminal_progress_is_a_log_line_with_the_total(tmp_path: Path, collection_name: str) -> None:
    for n in range(3):
        (tmp_path / f"note{n}.txt").write_text(f"note {n} about ferns", encoding="utf-8")

    result = run("ingest", str(tmp_path), "-c", collection_name)

    assert result.exit_code == 0, result.output
    assert f"{collection_name}: 100% 3/3 [" in result.stderr


def test_a_collection_is_created_in_the_language_asked_for(tmp_path: Path, collection_name: str) -> None:
    (tmp_path / "vertrag.txt").write_text("Die Kündigungsfristen stehen im Vertrag.", encoding="utf-8")

    assert run("ingest", str(tmp_path), "-c", collection_name, "--language", "german").exit_code == 0
    found = run("search", "Kündigungsfrist", "-c", collection_name, "--mode", "text")
    listed = run("collections")

    assert "vertrag.txt" in found.stdout
    assert any(line.startswith(collection_name) and "german" in line for line in listed.stdout.splitlines())
    assert_user_error(run("ingest", str(tmp_path), "-c", collection_name, "--language", "french"), "language")


def test_an_unknown_language_or_a_bad_option_is_one_line_exit_2(tmp_path: Path, collection_name: str) -> None:
    (tmp_path / "a.txt").write_text("café", encoding="utf-8")
    assert_user_error(run("ingest", str(tmp_path), "-c", collection_name, "--language", "klingon"), "klingon")
    assert_user_error(run("ingest", str(tmp_path), "-c", collection_name, "--chunk-size", "0"), "chunk_size")


def test_ignoring_accents_on_a_server_without_unaccent_is_one_line_exit_2(
    tmp_path: Path, collection_name: str, without_unaccent: None
) -> None:
    (tmp_path / "a.txt").write_text("café", encoding="utf-8")
    assert_user_error(run("ingest", str(tmp_path), "-c", collection_name, "--accent-insensitive"), "unaccent")
