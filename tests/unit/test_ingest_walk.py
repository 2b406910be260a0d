"""Document ids of files: one file is one document, however its path is spelled; two files never share one."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest

from ingest import SkippedSource, SourceDocument, iter_documents
from ingest._walk import file_document_id


def load(*paths: str | Path) -> tuple[list[SourceDocument], list[SkippedSource]]:
    skipped: list[SkippedSource] = []
    return list(iter_documents(list(paths), skipped.append)), skipped


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def kb(tmp_path: Path) -> Path:
    """tmp/data/kb with ferns.md and sub/moss.md; the working directory is tmp/data."""
    root = tmp_path / "data" / "kb"
    write(root / "ferns.md", "# Ferns\n\nFerns reproduce by spores.")
    write(root / "sub" / "moss.md", "Moss likes shade.")
    return root


def real(path: Path) -> str:
    return Path(os.path.realpath(path)).as_posix()


def test_a_files_id_is_its_real_absolute_posix_path(kb: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(kb.parent)
    [doc], _ = load("kb/ferns.md")
    assert doc.document_id == real(kb / "ferns.md")
    assert doc.document_id.startswith("/") and "\\" not in doc.document_id


def test_every_spelling_of_a_files_path_gives_one_id(kb: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (kb.parent / "link.md").symlink_to(kb / "ferns.md")
    (kb.parent / "kb-link").symlink_to(kb, target_is_directory=True)
    monkeypatch.chdir(kb.parent)
    spellings = [
        "kb/ferns.md",
        "./kb/ferns.md",
        "kb/sub/../ferns.md",
        "kb//ferns.md",
        str(kb / "ferns.md"),
        "link.md",
        "kb-link/ferns.md",
    ]
    ids = {spelling: load(spelling)[0][0].document_id for spelling in spellings}
    assert ids == dict.fromkeys(spellings, real(kb / "ferns.md"))


def test_a_file_found_in_a_folder_has_the_id_it_has_when_named_directly(
    kb: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(kb.parent)
    from_folder = {doc.document_id for doc in load("kb")[0]}
    assert real(kb / "ferns.md") in from_folder
    assert from_folder == {real(kb / "ferns.md"), real(kb / "sub" / "moss.md")}


def test_ids_do_not_depend_on_the_working_directory(kb: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(kb.parent)
    from_parent = [doc.document_id for doc in load("kb")[0]]
    monkeypatch.chdir(kb / "sub")
    from_inside = [doc.document_id for doc in load("..")[0]]
    from_absolute = [doc.document_id for doc in load(kb)[0]]
    assert from_parent == from_inside == from_absolute == [real(kb / "ferns.md"), real(kb / "sub" / "moss.md")]


def test_two_folders_of_the_same_name_never_share_an_id(tmp_path: Path) -> None:
    one = write(tmp_path / "a" / "kb" / "notes.md", "first")
    two = write(tmp_path / "b" / "kb" / "notes.md", "second")
    docs, skipped = load(tmp_path / "a" / "kb", tmp_path / "b" / "kb")
    assert skipped == []
    assert [doc.document_id for doc in docs] == [real(one), real(two)]


def test_a_files_source_is_its_id_while_a_skipped_file_is_named_as_given(
    kb: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(kb / "empty.md", "")
    monkeypatch.chdir(kb.parent)
    docs, skipped = load("./kb")
    assert (
        [doc.source for doc in docs]
        == [doc.document_id for doc in docs]
        == [
            real(kb / "ferns.md"),
            real(kb / "sub" / "moss.md"),
        ]
    )
    assert skipped == [SkippedSource("kb/empty.md", "empty file")]


def test_jsonl_records_keep_their_ids_with_the_corpus_real_path_as_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = tmp_path / "corpus.jsonl.gz"
    with gzip.open(corpus, "wt", encoding="utf-8") as stream:
        stream.write(json.dumps({"_id": "7", "text": "seven"}) + "\n")
    monkeypatch.chdir(tmp_path)
    [doc], _ = load("./corpus.jsonl.gz")
    assert (doc.document_id, doc.source) == ("7", real(corpus))


def test_file_document_id_is_the_rule_ingest_applies(kb: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(kb)
    [doc], _ = load("ferns.md")
    assert file_document_id("ferns.md") == file_document_id(kb / "sub" / ".." / "ferns.md") == doc.document_id
    assert file_document_id("gone.md") == real(kb) + "/gone.md"  # a file that no longer exists still has its id
