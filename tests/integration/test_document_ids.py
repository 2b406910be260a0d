"""Through the command line: one file is one document, whatever the spelling of its path or the working directory."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import Result
from test_cli import run  # the CLI in-process against the test database, with the packaged model


def real(path: Path) -> str:
    return Path(os.path.realpath(path)).as_posix()


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tmp/data/kb with two notes; the working directory is tmp (so `data/kb` is relative)."""
    kb = tmp_path / "data" / "kb"
    kb.mkdir(parents=True)
    (kb / "ferns.md").write_text("# Ferns\n\nFerns reproduce by spores released from sori.\n", encoding="utf-8")
    (kb / "lichen.md").write_text("# Lichen\n\nA lichen is a fungus living with an alga.\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path / "data"


def ingest(*args: str) -> Result:
    result = run("ingest", *args)
    assert result.exit_code == 0, result.output
    return result


def search_ids(collection: str, *args: str) -> list[str]:
    result = run("search", *args, "--collection", collection, "--json", "-k", "10")
    assert result.exit_code == 0, result.output
    return [hit["document_id"] for hit in json.loads(result.stdout)["results"]]


def test_a_file_ingested_by_folder_then_by_absolute_path_is_one_document(data, collection_name):
    ingest("data/kb", "-c", collection_name)
    again = ingest(str(data / "kb" / "ferns.md"), "-c", collection_name)
    assert "(0 new, 0 changed, 1 unchanged)" in again.stdout
    assert search_ids(collection_name, "spores", "--mode", "text") == [real(data / "kb" / "ferns.md")]


def test_reingesting_from_another_working_directory_changes_nothing(data, collection_name, monkeypatch):
    ingest(str(data / "kb"), "-c", collection_name)
    monkeypatch.chdir(data)
    again = ingest("kb", "-c", collection_name)
    assert again.stdout.startswith("0 new, 2 unchanged chunks from 2 documents (0 new, 0 changed, 2 unchanged)")
    monkeypatch.chdir(data / "kb")
    assert "(0 new, 0 changed, 2 unchanged)" in ingest(".", "./ferns.md", "-c", collection_name).stdout


def test_a_symlink_to_an_ingested_file_is_the_same_document(data, collection_name):
    ingest("data/kb", "-c", collection_name)
    (data / "ferns-link.md").symlink_to(data / "kb" / "ferns.md")
    assert "(0 new, 0 changed, 1 unchanged)" in ingest("data/ferns-link.md", "-c", collection_name).stdout


def test_two_different_folders_of_the_same_name_do_not_collide(data, collection_name, tmp_path):
    other = tmp_path / "elsewhere" / "kb"
    other.mkdir(parents=True)
    (other / "ferns.md").write_text("# Ferns\n\nA different note about ferns and their spores.\n", encoding="utf-8")
    ingest("data/kb", "-c", collection_name)
    second = ingest("elsewhere/kb", "-c", collection_name)
    assert "(1 new, 0 changed, 0 unchanged)" in second.stdout
    ids = search_ids(collection_name, "ferns spores", "--mode", "text")
    assert sorted(ids) == sorted([real(data / "kb" / "ferns.md"), real(other / "ferns.md")])


def test_chunk_source_is_the_files_real_path(data, collection_name):
    ingest("./data/kb/", "-c", collection_name)
    result = run("search", "lichen fungus", "-c", collection_name, "--json", "-k", "1", "--mode", "text")
    [hit] = json.loads(result.stdout)["results"]
    assert hit["metadata"]["source"] == hit["document_id"] == real(data / "kb" / "lichen.md")


def test_search_like_takes_the_path_of_an_ingested_file(data, collection_name, monkeypatch):
    ingest("data/kb", "-c", collection_name)
    monkeypatch.chdir(data / "kb")
    by_path = search_ids(collection_name, "--like", "ferns.md")
    by_id = search_ids(collection_name, "--like", real(data / "kb" / "ferns.md"))
    assert by_path == by_id == [real(data / "kb" / "lichen.md")]
