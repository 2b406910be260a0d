"""Loading sources: file types, folders and ids, JSONL, posted records, skips."""

import gzip
import json
import os
from pathlib import Path

import pytest

import ingest
from ingest import (
    IngestInputError,
    SkippedSource,
    SourceDocument,
    iter_documents,
    iter_records,
)


def load(*paths: str | Path) -> tuple[list[SourceDocument], list[SkippedSource]]:
    skipped: list[SkippedSource] = []
    return list(iter_documents(paths, skipped.append)), skipped


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return path


def test_public_names_are_pinned() -> None:
    assert set(ingest.__all__) == {
        "SourceDocument", "Chunk", "ChunkingConfig", "SkippedSource", "iter_documents",
        "iter_records", "split_document", "document_hash", "IngestInputError", "sha256_hex",
        "clean_text", "document_problem", "text_problem", "value_problem", "count_documents", "file_document_id",
    }  # fmt: skip


# --- file types --------------------------------------------------------------


def test_text_file_is_read_as_is_without_title(tmp_path: Path) -> None:
    path = write(tmp_path / "note.txt", "\ufeffline one\r\nline two\n")
    [doc], skipped = load(path)
    assert skipped == []
    assert doc.title is None
    assert doc.text == "line one\nline two\n"  # BOM stripped, newlines normalised
    assert doc.source == path.as_posix()
    assert doc.metadata == {}


def test_control_characters_are_dropped_from_text_and_markdown(tmp_path: Path) -> None:
    [log], _ = load(write(tmp_path / "run.txt", "\x1b[31mfailed\x1b[0m\x07 at step 3\n"))
    assert log.text == "[31mfailed[0m at step 3\n"
    [note], _ = load(write(tmp_path / "note.md", "# Bell\x07 Title\n\nBody\x7f text\n"))
    assert (note.title, note.text) == ("Bell Title", "\nBody text\n")


def test_markdown_title_is_the_first_h1_and_leaves_the_body(tmp_path: Path) -> None:
    path = write(
        tmp_path / "guide.md",
        "Intro line\n\n# Brewing  Coffee #\n\nGrind the beans.\n\n# Second\n",
    )
    [doc], _ = load(path)
    assert doc.title == "Brewing Coffee"
    assert doc.text == "Intro line\n\n\nGrind the beans.\n\n# Second\n"


def test_markdown_without_h1_has_no_title(tmp_path: Path) -> None:
    path = write(tmp_path / "notes.markdown", "## Only a subheading\n\nBody.\n")
    [doc], _ = load(path)
    assert doc.title is None
    assert doc.text == "## Only a subheading\n\nBody.\n"


def test_markdown_comment_in_code_fence_is_not_a_title(tmp_path: Path) -> None:
    path = write(
        tmp_path / "script.md",
        "```bash\n# install it\npip install x\n```\n\n# Real Title\nBody\n",
    )
    [doc], _ = load(path)
    assert doc.title == "Real Title"
    assert "# install it" in doc.text


def test_markdown_with_only_a_title_is_skipped(tmp_path: Path) -> None:
    path = write(tmp_path / "stub.md", "# Just a title\n\n")
    docs, skipped = load(path)
    assert docs == []
    assert skipped == [SkippedSource(path.as_posix(), "no text besides the title")]


def test_html_keeps_visible_text_and_takes_title_from_title_tag(tmp_path: Path) -> None:
    markup = """<!DOCTYPE html><html><head><title>Pruning
      Roses</title><style>p { color: red }</style></head>
      <body><nav>Home | About</nav><!-- a comment -->
      <h1>Pruning Roses</h1><p>Cut above an outward bud.</p>



      <p>Wear gloves.</p><script>track()</script></body></html>"""
    path = write(tmp_path / "roses.html", markup)
    [doc], _ = load(path)
    assert doc.title == "Pruning Roses"
    assert doc.text == "Cut above an outward bud.\nWear gloves."


def test_html_without_title_tag_takes_title_from_first_h1(tmp_path: Path) -> None:
    path = write(
        tmp_path / "page.htm",
        "<body><h1>Soil pH</h1><p>Lime raises it.</p><h2>Other soils</h2><p>Sand drains fast.</p></body>",
    )
    [doc], _ = load(path)
    assert doc.title == "Soil pH"
    assert doc.text == "Lime raises it.\nOther soils\nSand drains fast."


def test_html_with_no_visible_text_is_skipped(tmp_path: Path) -> None:
    path = write(
        tmp_path / "empty.html",
        "<html><head><script>x()</script></head><body> </body></html>",
    )
    docs, skipped = load(path)
    assert docs == []
    assert skipped == [SkippedSource(path.as_posix(), "no visible text")]


# --- folders and ids ---------------------------------------------------------


def real(path: Path) -> str:
    return Path(os.path.realpath(path)).as_posix()


def test_folder_is_walked_recursively_in_sorted_order_with_real_paths_as_ids(
    tmp_path: Path,
) -> None:
    docs_dir = tmp_path / "docs"
    write(docs_dir / "b.txt", "b")
    write(docs_dir / "a" / "z.md", "z")
    write(docs_dir / "a" / "b.md", "ab")
    docs, skipped = load(docs_dir)
    assert skipped == []
    assert [d.document_id for d in docs] == [real(docs_dir / name) for name in ("a/b.md", "a/z.md", "b.txt")]
    assert docs[0].source == docs[0].document_id


def test_file_named_directly_has_its_real_path_as_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "docs" / "a" / "b.md", "text")
    (tmp_path / "docs" / "x").mkdir()
    monkeypatch.chdir(tmp_path)
    [doc], _ = load("./docs/x/../a/b.md")
    assert doc.document_id == real(tmp_path / "docs" / "a" / "b.md")


def test_a_single_path_string_is_accepted(tmp_path: Path) -> None:
    path = write(tmp_path / "one.txt", "hello")
    skipped: list[SkippedSource] = []
    docs = list(iter_documents(str(path), skipped.append))  # type: ignore[arg-type]
    assert [d.text for d in docs] == ["hello"]


def test_hidden_files_and_folders_are_not_ingested(tmp_path: Path) -> None:
    write(tmp_path / "kb" / ".secret.txt", "no")
    write(tmp_path / "kb" / ".git" / "notes.txt", "no")
    write(tmp_path / "kb" / "visible.txt", "yes")
    docs, skipped = load(tmp_path / "kb")
    assert [d.document_id for d in docs] == [real(tmp_path / "kb" / "visible.txt")]
    assert skipped == []


def test_missing_path_raises_before_anything_is_read(tmp_path: Path) -> None:
    write(tmp_path / "exists.txt", "x")
    missing = str(tmp_path / "nope")
    with pytest.raises(IngestInputError, match=f"path does not exist: {missing}$"):
        iter_documents([tmp_path / "exists.txt", missing], lambda _: None)


def test_same_file_named_twice_is_read_once_and_nothing_is_skipped(tmp_path: Path) -> None:
    path = write(tmp_path / "docs" / "a.txt", "x")
    docs, skipped = load(path, tmp_path / "docs")
    assert len(docs) == 1
    assert skipped == []


# --- skip reasons ------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.txt", b"", "empty file"),
        ("blank.md", b"  \n\t\n", "empty file"),
        ("only-bom.txt", b"\xef\xbb\xbf\n", "empty file"),
        ("empty.pdf", b"", "empty file"),
        ("image.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary file"),
        ("late-nul.txt", b"a" * 10_000 + b"\x00", "binary file"),
        ("latin1.txt", "café".encode("latin-1"), "not valid UTF-8"),
        ("data.csv", b"a,b\n1,2\n", "unsupported file type .csv"),
        ("Makefile", b"all:\n", "unsupported file type (no extension)"),
        ("archive.tar.gz", b"\x1f\x8b", "unsupported file type .gz"),
    ],
)
def test_unusable_file_is_skipped_with_a_reason(tmp_path: Path, name: str, content: bytes, reason: str) -> None:
    path = write(tmp_path / name, content)
    docs, skipped = load(path)
    assert docs == []
    assert skipped == [SkippedSource(path.as_posix(), reason)]


def test_skipped_file_does_not_stop_the_folder(tmp_path: Path) -> None:
    write(tmp_path / "mix" / "a.bin", b"\x00")
    write(tmp_path / "mix" / "b.txt", b"\x00binary")
    write(tmp_path / "mix" / "c.txt", "good")
    docs, skipped = load(tmp_path / "mix")
    assert [d.document_id for d in docs] == [real(tmp_path / "mix" / "c.txt")]
    assert [s.reason for s in skipped] == ["unsupported file type .bin", "binary file"]


def test_unreadable_file_is_skipped_as_permission_denied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    locked = write(tmp_path / "locked.md", "secret")
    write(tmp_path / "open.md", "public")
    real_read_bytes = Path.read_bytes

    def read_bytes(self: Path) -> bytes:
        if self.name == "locked.md":
            raise PermissionError(13, "Permission denied", str(self))
        return real_read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    docs, skipped = load(locked, tmp_path / "open.md")
    assert [d.text for d in docs] == ["public"]
    assert skipped == [SkippedSource(locked.as_posix(), "permission denied")]


def test_unreadable_subfolder_is_reported_and_the_rest_is_walked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "kb" / "locked" / "a.txt", "x")
    write(tmp_path / "kb" / "b.txt", "y")
    real_scandir = os.scandir

    def scandir(path: str) -> object:
        if os.path.basename(path) == "locked":
            raise PermissionError(13, "Permission denied", path)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    docs, skipped = load(tmp_path / "kb")
    assert [d.document_id for d in docs] == [real(tmp_path / "kb" / "b.txt")]
    assert skipped == [SkippedSource((tmp_path / "kb" / "locked").as_posix(), "permission denied")]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_is_skipped_instead_of_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.txt")
    docs, skipped = load(tmp_path)
    assert docs == []
    assert [s.reason for s in skipped] == ["not a regular file"]


# --- JSONL corpora -----------------------------------------------------------


def jsonl(*lines: object) -> str:
    return "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)


def test_beir_corpus_line_keeps_its_id_as_document_id(tmp_path: Path) -> None:
    line = {
        "_id": "4983",
        "title": "Microstructural development",
        "text": "Alterations of the ...",
        "metadata": {},
    }
    path = write(tmp_path / "corpus.jsonl", jsonl(line))
    [doc], skipped = load(path)
    assert skipped == []
    assert doc == SourceDocument(
        "4983",
        "Alterations of the ...",
        "Microstructural development",
        path.as_posix(),
        {},
    )


def test_jsonl_id_may_be_an_integer_and_metadata_is_kept(tmp_path: Path) -> None:
    path = write(
        tmp_path / "c.jsonl",
        jsonl({"id": 7, "text": "seven", "metadata": {"lang": "en"}}),
    )
    [doc], _ = load(path)
    assert doc.document_id == "7"
    assert doc.metadata == {"lang": "en"}


def test_jsonl_empty_title_means_no_title(tmp_path: Path) -> None:
    [doc], _ = load(write(tmp_path / "c.jsonl", jsonl({"_id": "1", "title": "", "text": "t"})))
    assert doc.title is None


def test_jsonl_bad_lines_are_reported_by_number_and_the_rest_is_read(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path / "c.jsonl",
        jsonl(
            {"_id": "1", "text": "first"},
            "{not json",
            {"_id": "2"},
            {"text": "no id"},
            {"_id": "3", "text": "   "},
            {"_id": "4", "text": 42},
            {"_id": "5", "text": "x", "title": 5},
            {"_id": "6", "text": "x", "metadata": [1]},
            {"_id": True, "text": "x"},
            {"_id": "", "text": "x"},
            ["a", "list"],
            "",
            {"_id": "7", "text": "last"},
        ),
    )
    docs, skipped = load(path)
    assert [d.document_id for d in docs] == ["1", "7"]
    reasons = [s.reason for s in skipped]
    assert reasons == [
        "line 2: invalid JSON (Expecting property name enclosed in double quotes)",
        "line 3: missing text",
        'line 4: missing id ("_id" or "id")',
        "line 5: empty text",
        "line 6: text must be a string",
        "line 7: title must be a string",
        "line 8: metadata must be an object",
        "line 9: id must be a string or an integer",
        "line 10: id must not be empty",
        "line 11: expected a JSON object",
    ]
    assert {s.path for s in skipped} == {path.as_posix()}


def test_jsonl_line_that_is_not_utf8_is_skipped(tmp_path: Path) -> None:
    path = write(
        tmp_path / "c.jsonl",
        b'{"_id": "1", "text": "caf\xe9"}\n{"_id": "2", "text": "ok"}\n',
    )
    docs, skipped = load(path)
    assert [d.document_id for d in docs] == ["2"]
    assert [s.reason for s in skipped] == ["line 1: not valid UTF-8"]


def test_duplicate_id_is_reported_not_silently_overwritten(tmp_path: Path) -> None:
    path = write(
        tmp_path / "c.jsonl",
        jsonl({"_id": "1", "text": "first"}, {"_id": "1", "text": "second"}),
    )
    other = write(tmp_path / "d.jsonl", jsonl({"id": 1, "text": "third"}))
    docs, skipped = load(path, other)
    assert [d.text for d in docs] == ["first"]
    assert skipped == [
        SkippedSource(path.as_posix(), "line 2: duplicate id 1"),
        SkippedSource(other.as_posix(), "line 1: duplicate id 1"),
    ]


def test_gzipped_jsonl_is_read(tmp_path: Path) -> None:
    path = write(
        tmp_path / "corpus.jsonl.gz",
        gzip.compress(jsonl({"_id": "a", "text": "zipped"}).encode()),
    )
    [doc], skipped = load(path)
    assert skipped == []
    assert (doc.document_id, doc.text) == ("a", "zipped")


def test_truncated_gzip_keeps_lines_before_the_damage_and_reports_it(
    tmp_path: Path,
) -> None:
    lines = [{"_id": str(i), "text": f"document number {i} " * 20} for i in range(2000)]
    data = gzip.compress(jsonl(*lines).encode())
    path = write(tmp_path / "corpus.jsonl.gz", data[: len(data) // 2])
    docs, skipped = load(path)
    assert 0 < len(docs) < 2000
    assert [d.document_id for d in docs] == [str(i) for i in range(len(docs))]
    assert len(skipped) == 1
    assert skipped[0].reason.startswith("corrupt gzip file")


def test_file_that_is_not_gzip_is_reported_as_corrupt(tmp_path: Path) -> None:
    path = write(tmp_path / "corpus.jsonl.gz", jsonl({"_id": "a", "text": "plain"}))
    docs, skipped = load(path)
    assert docs == []
    assert [s.reason.split(" (")[0] for s in skipped] == ["corrupt gzip file"]


@pytest.mark.parametrize(
    ("name", "content"),
    [("blank.jsonl", b"\n\n  \n"), ("empty.jsonl.gz", gzip.compress(b""))],
)
def test_jsonl_without_lines_is_skipped_as_empty(tmp_path: Path, name: str, content: bytes) -> None:
    path = write(tmp_path / name, content)
    assert load(path) == ([], [SkippedSource(path.as_posix(), "empty file")])


def test_binary_file_named_jsonl_is_skipped_once(tmp_path: Path) -> None:
    path = write(tmp_path / "c.jsonl", b"\x00\x01\x02\n" * 50)
    assert load(path) == ([], [SkippedSource(path.as_posix(), "binary file")])


# --- posted records ----------------------------------------------------------


def test_posted_records_become_documents_with_the_given_source() -> None:
    records = [
        {"id": "a", "title": "T", "text": "body", "metadata": {"k": 1}},
        {"text": "no id"},
    ]
    docs = list(iter_records(records, source="api"))
    assert docs[0] == SourceDocument("a", "body", "T", "api", {"k": 1})
    assert docs[1].source == "api"
    assert docs[1].title is None
    assert docs[1].metadata == {}


def test_posted_record_without_id_gets_an_id_derived_from_its_text() -> None:
    [first] = iter_records([{"text": "same"}], source="api")
    [again] = iter_records([{"text": "same"}], source="api")
    [other] = iter_records([{"text": "different"}], source="api")
    assert first.document_id == again.document_id
    assert first.document_id != other.document_id


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([{"text": "ok"}, {"id": "b"}], r"documents\[1\]: missing text"),
        (
            [{"id": "a", "text": "x"}, {"id": "a", "text": "y"}],
            r"documents\[1\]: duplicate id 'a'",
        ),
        ([{"text": "nul\x00"}], r"documents\[0\]: text contains a NUL character"),
        ([{"text": "x", "title": "a\x00"}], r"documents\[0\]: title contains a NUL"),
        (["not a mapping"], r"documents\[0\]: expected a JSON object"),
    ],
)
def test_invalid_posted_record_is_rejected_with_its_position(records: list[object], message: str) -> None:
    with pytest.raises(IngestInputError, match=message):
        list(iter_records(records, source="api"))  # type: ignore[arg-type]


def test_posted_metadata_is_copied_not_shared() -> None:
    metadata = {"k": 1}
    [doc] = iter_records([{"text": "x", "metadata": metadata}], source="api")
    metadata["k"] = 2
    assert doc.metadata == {"k": 1}
