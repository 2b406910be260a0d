"""Documents over their life, from Python and the command line: prune, list, get, delete (by id, by filter), drop."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import retriever.cli.documents
from hybrid_rag.cli import main
from ingest import ChunkingConfig, SourceDocument
from retriever import CollectionNotFound, DocumentNotFound, Engine, InputError, InvalidFilter, SearchParams
from retriever.connections import open_primary
from retriever.settings import get_settings

SMALL = ChunkingConfig(chunk_size=60, chunk_overlap=0)


def real(path: Path) -> str:
    return Path(os.path.realpath(path)).as_posix()


@pytest.fixture
def engine(settings, fake_model) -> Engine:
    return Engine(settings, model=fake_model)


@pytest.fixture
def kb(tmp_path: Path) -> Path:
    kb = tmp_path / "kb"
    (kb / "sub").mkdir(parents=True)
    (kb / "ferns.md").write_text("# Ferns\n\nFerns reproduce by spores.\n", encoding="utf-8")
    (kb / "moss.md").write_text("# Moss\n\nMoss grows in damp shade.\n", encoding="utf-8")
    (kb / "sub" / "lichen.md").write_text("# Lichen\n\nA lichen is a fungus with an alga.\n", encoding="utf-8")
    return kb


def ids(engine: Engine, collection: str) -> list[str]:
    return [info.id for info in engine.documents(collection, limit=1000).documents]


def table_exists(settings, name: str) -> bool:
    with open_primary(settings) as conn:
        return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"hybrid_rag.{name}",)).fetchone()[0]


# --- ingest --prune -----------------------------------------------------------------------------------------


def test_a_deleted_file_stays_without_prune_and_leaves_with_it(engine, kb, collection_name, collection_state, names):
    engine.ingest_paths(collection_name, [kb])
    (kb / "moss.md").unlink()
    kept = engine.ingest_paths(collection_name, [kb])
    assert kept.unchanged_documents == 2 and real(kb / "moss.md") in ids(engine, collection_name)

    pruned = engine.ingest_paths(collection_name, [kb], prune=True)

    assert pruned.pruned_documents == 1
    assert ids(engine, collection_name) == sorted([real(kb / "ferns.md"), real(kb / "sub" / "lichen.md")])
    hits = engine.search(collection_name, "moss damp shade", SearchParams(mode="text")).hits
    assert real(kb / "moss.md") not in {hit.document_id for hit in hits}
    fresh = f"{collection_name}_fresh"  # BM25 statistics as if the file had never been ingested
    names.append(fresh)
    engine.ingest_paths(fresh, [kb])
    assert collection_state(collection_name)["statistics"] == collection_state(fresh)["statistics"]
    assert collection_state(collection_name)["document frequencies"] == collection_state(fresh)["document frequencies"]


def test_prune_keeps_a_file_that_still_exists_but_was_skipped(engine, kb, collection_name, monkeypatch):
    engine.ingest_paths(collection_name, [kb])
    (kb / "moss.md").write_text("", encoding="utf-8")  # skipped as empty this time
    real_read_bytes = Path.read_bytes

    def read_bytes(self: Path) -> bytes:
        if self.name == "ferns.md":
            raise PermissionError(13, "Permission denied", str(self))
        return real_read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    report = engine.ingest_paths(collection_name, [kb], prune=True)

    assert len(report.skipped) == 2 and report.pruned_documents == 0
    assert len(ids(engine, collection_name)) == 3


def test_prune_touches_only_documents_under_the_paths_given(engine, kb, tmp_path, collection_name):
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.md").write_text("Notes about ferns.", encoding="utf-8")
    engine.ingest_paths(collection_name, [kb, other])
    engine.ingest_records(collection_name, [{"id": "posted", "text": "posted over HTTP"}], source="http:x")
    (other / "notes.md").unlink()
    (kb / "sub" / "lichen.md").unlink()

    report = engine.ingest_paths(collection_name, [kb / "sub", kb / "ferns.md"], prune=True)

    assert report.pruned_documents == 1
    assert set(ids(engine, collection_name)) == {
        real(kb / "ferns.md"),
        real(kb / "moss.md"),
        real(other / "notes.md"),
        "posted",
    }


def test_prune_removes_copies_stored_under_the_earlier_relative_ids(engine, kb, collection_name, monkeypatch):
    monkeypatch.chdir(kb.parent)
    # what ingesting `kb` stored before ids were real paths: the folder's name and the path inside it
    earlier = [SourceDocument("kb/ferns.md", "Ferns reproduce by spores.", "Ferns", "kb/ferns.md", {})]
    posted = [SourceDocument("kb/moss.md", "A note posted over HTTP.", None, f"http:{collection_name}", {})]
    engine.ingest(collection_name, earlier + posted)

    report = engine.ingest_paths(collection_name, ["kb"], prune=True)

    assert report.pruned_documents == 1
    assert set(ids(engine, collection_name)) == {
        real(kb / "ferns.md"),
        real(kb / "moss.md"),
        real(kb / "sub" / "lichen.md"),
        "kb/moss.md",
    }


def write_jsonl(path: Path, *lines: str) -> None:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


RECORD = '{{"id": "{0}", "text": "record {0} about ferns"}}'


def test_prune_removes_jsonl_records_whose_lines_are_gone(engine, tmp_path, collection_name):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    write_jsonl(corpus / "a.jsonl", *(RECORD.format(i) for i in ("1", "2", "3")))
    write_jsonl(corpus / "b.jsonl", RECORD.format("4"))
    engine.ingest_paths(collection_name, [corpus])
    write_jsonl(corpus / "a.jsonl", RECORD.format("1"), RECORD.format("3"))
    (corpus / "b.jsonl").unlink()

    report = engine.ingest_paths(collection_name, [corpus], prune=True)

    assert report.pruned_documents == 2
    assert ids(engine, collection_name) == ["1", "3"]


def test_prune_keeps_jsonl_records_of_a_corpus_with_a_bad_line(engine, tmp_path, collection_name):
    corpus = tmp_path / "a.jsonl"
    write_jsonl(corpus, RECORD.format("1"), RECORD.format("2"))
    engine.ingest_paths(collection_name, [corpus])
    write_jsonl(corpus, RECORD.format("1"), '{"id": "2", "text": ')  # line 2 is broken, not gone

    report = engine.ingest_paths(collection_name, [corpus], prune=True)

    assert report.pruned_documents == 0 and ids(engine, collection_name) == ["1", "2"]


# --- listing and reading ---------------------------------------------------------------------------------------


def note(i: int) -> SourceDocument:
    return SourceDocument(f"doc-{i}", f"Document {i} talks about ferns and moss.", None, "test", {"n": i})


@pytest.fixture
def stored(engine, collection_name) -> str:
    documents = [note(i) for i in range(5)]
    documents.append(
        SourceDocument(
            "long",
            "Ferns reproduce by spores. Moss grows in shade. Lichen is a fungus. Algae feed the lichen.",
            "Plants",
            "test",
            {"topic": "plants", "year": 2020},
        )
    )
    engine.ingest(collection_name, documents, SMALL)
    return collection_name


def test_documents_are_listed_in_id_order_a_page_at_a_time(engine, stored):
    pages, after = [], None
    while True:
        page = engine.documents(stored, limit=2, after=after)
        pages.append([info.id for info in page.documents])
        after = page.next_after
        if after is None:
            break
    assert pages == [["doc-0", "doc-1"], ["doc-2", "doc-3"], ["doc-4", "long"]]
    [only] = engine.documents(stored, prefix="lo").documents
    assert only.id == "long" and only.chunks > 1 and only.updated_at.tzinfo is not None


def test_a_document_comes_back_with_its_metadata_and_chunks_in_order(engine, stored):
    document = engine.document(stored, "long")
    assert [chunk.index for chunk in document.chunks] == list(range(len(document.chunks))) and len(document.chunks) > 1
    assert all(chunk.content.startswith("Plants\n") for chunk in document.chunks)
    assert "Ferns reproduce by spores." in document.chunks[0].content
    assert document.metadata == {"topic": "plants", "year": 2020, "source": "test", "title": "Plants"}
    assert len(document.hash) == 64
    with pytest.raises(DocumentNotFound, match="'nope'"):
        engine.document(stored, "nope")


# --- deleting -------------------------------------------------------------------------------------------------


def test_deleting_by_ids_is_all_or_none(engine, stored):
    with pytest.raises(DocumentNotFound, match="'missing'"):
        engine.delete_documents(stored, ["doc-0", "missing"])
    assert "doc-0" in ids(engine, stored)
    assert engine.delete_documents(stored, ["doc-0", "doc-1"]) == 2
    assert ids(engine, stored) == ["doc-2", "doc-3", "doc-4", "long"]


def test_deleting_by_filter_deletes_every_matching_document_whole(engine, stored, names, collection_state):
    # only the long document's second chunk and after match: the whole document goes
    assert engine.delete_where(stored, {"chunk_index": {"$gte": 1}}) == 1
    assert "long" not in ids(engine, stored)
    with open_primary(engine.settings) as conn:
        left = conn.execute(f'SELECT count(*) FROM hybrid_rag."{stored}" WHERE document_id = %s', ("long",)).fetchone()
    assert left == (0,)
    assert engine.delete_where(stored, {"n": {"$in": [0, 1]}}) == 2
    assert engine.delete_where(stored, {"n": 99}) == 0
    fresh = f"{stored}_fresh"  # the statistics of a collection that only ever held what is left
    names.append(fresh)
    engine.ingest(fresh, [note(i) for i in (2, 3, 4)], SMALL)
    assert collection_state(stored)["statistics"] == collection_state(fresh)["statistics"]


def test_deleting_by_an_empty_or_invalid_filter_is_refused(engine, stored):
    with pytest.raises(InputError, match="empty filter"):
        engine.delete_where(stored, {})
    with pytest.raises(InvalidFilter, match=r"\$regex"):
        engine.delete_where(stored, {"n": {"$regex": "x"}})
    assert len(ids(engine, stored)) == 6


# --- dropping -------------------------------------------------------------------------------------------------


def test_dropping_a_collection_removes_it_and_its_tables(engine, stored, settings):
    engine.drop_collection(stored)
    assert not table_exists(settings, stored) and not table_exists(settings, f"{stored}__documents")
    with pytest.raises(CollectionNotFound):
        engine.drop_collection(stored)
    with pytest.raises(CollectionNotFound):
        engine.documents(stored)


def _waiting_for_advisory_locks(settings) -> int:
    with open_primary(settings) as conn:
        return conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted").fetchone()[0]


def _wait_until(condition, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_write_queued_behind_a_drop_finds_the_collection_gone(engine, stored, settings):
    errors: dict[str, BaseException | None] = {}

    def attempt(label: str, action) -> threading.Thread:
        def target() -> None:
            try:
                action()
                errors[label] = None
            except BaseException as exc:
                errors[label] = exc

        thread = threading.Thread(target=target)
        thread.start()
        return thread

    with open_primary(settings) as holder, holder.transaction():  # a writer mid-batch holds the write lock
        holder.execute("SELECT pg_advisory_xact_lock(hashtext('hybrid_rag.write:' || %s))", (stored,))
        drop = attempt("drop", lambda: engine.drop_collection(stored))
        _wait_until(lambda: _waiting_for_advisory_locks(settings) == 1)
        write = attempt(
            "ingest", lambda: engine.ingest(stored, [SourceDocument("new", "a new document", None, "t", {})])
        )
        delete = attempt("delete", lambda: engine.delete_documents(stored, ["doc-2"]))
        _wait_until(lambda: _waiting_for_advisory_locks(settings) == 3)
    for thread in (drop, write, delete):
        thread.join(60)
    assert errors["drop"] is None
    assert isinstance(errors["ingest"], CollectionNotFound), repr(errors["ingest"])
    assert isinstance(errors["delete"], CollectionNotFound), repr(errors["delete"])


# --- the command line -----------------------------------------------------------------------------------------


def cli(*args: str, input: str | None = None) -> Result:
    get_settings.cache_clear()
    try:
        return CliRunner(env={"EMBEDDINGS": "local"}).invoke(main, list(args), input=input)
    finally:
        get_settings.cache_clear()


def assert_user_error(result: Result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    assert all(fragment in lines[0] for fragment in fragments), lines[0]


def test_cli_ingest_prune_reports_pruned_documents_in_the_summary(kb, collection_name):
    assert cli("ingest", str(kb), "-c", collection_name).exit_code == 0
    (kb / "moss.md").unlink()
    result = cli("ingest", str(kb), "-c", collection_name, "--prune")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].endswith("(0 new, 0 changed, 2 unchanged); 1 pruned")


def test_cli_lists_documents_a_page_at_a_time(stored):
    result = cli("documents", "-c", stored, "--limit", "4")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [line.split()[-1] for line in lines[:4]] == ["doc-0", "doc-1", "doc-2", "doc-3"]
    assert lines[4:] == ["4 documents", f"more: hybrid-rag documents -c {stored} --after 'doc-3'"]
    payload = json.loads(cli("documents", "-c", stored, "--after", "doc-3", "--json").stdout)
    assert [d["id"] for d in payload["documents"]] == ["doc-4", "long"] and payload["next_after"] is None
    assert set(payload["documents"][0]) == {"id", "chunks", "updated_at"}


@pytest.mark.parametrize(("value", "fragment"), [("ten", "'ten' is not a valid integer"), ("0", "at least 1")])
def test_cli_a_wrong_limit_is_one_line_and_exit_2(stored, value, fragment):
    assert_user_error(cli("documents", "-c", stored, "--limit", value), fragment)


def test_cli_shows_a_document_named_by_the_path_of_its_file(engine, kb, collection_name, monkeypatch):
    engine.ingest_paths(collection_name, [kb])
    monkeypatch.chdir(kb)
    result = cli("document", "-c", collection_name, "sub/lichen.md", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["id"] == real(kb / "sub" / "lichen.md")
    assert [chunk["content"] for chunk in payload["chunks"]] == ["Lichen\nA lichen is a fungus with an alga."]
    assert set(payload) == {"id", "hash", "updated_at", "metadata", "chunks"}
    assert_user_error(cli("document", "-c", collection_name, "nope.md"), "'nope.md'")


def test_cli_deletes_by_id_or_path_and_by_filter(engine, kb, collection_name, monkeypatch):
    engine.ingest_paths(collection_name, [kb])
    monkeypatch.chdir(kb)
    assert_user_error(cli("delete", "-c", collection_name, "ferns.md", "missing-id"), "'missing-id'")
    assert len(ids(engine, collection_name)) == 3  # all or none
    result = cli("delete", "-c", collection_name, "ferns.md", real(kb / "moss.md"))
    assert (result.exit_code, result.stdout) == (0, "2 documents deleted\n"), result.output
    source = json.dumps({"source": real(kb / "sub" / "lichen.md")})
    assert cli("delete", "-c", collection_name, "--filter", source).stdout == "1 document deleted\n"
    assert ids(engine, collection_name) == []


@pytest.mark.parametrize(
    ("args", "fragment"),
    [([], "--filter"), (["doc-0", "--filter", '{"n": 1}'], "--filter"), (["--filter", "{}"], "empty filter")],
)
def test_cli_delete_needs_ids_or_a_non_empty_filter(stored, args, fragment):
    assert_user_error(cli("delete", "-c", stored, *args), fragment)


@pytest.fixture
def terminal(monkeypatch) -> Iterator[None]:
    monkeypatch.setattr(retriever.cli.documents, "_interactive", lambda: True)
    yield


def test_cli_drop_without_a_terminal_needs_yes(stored, settings):
    assert_user_error(cli("drop", "-c", stored), "--yes")
    assert table_exists(settings, stored)
    result = cli("drop", "-c", stored, "--yes")
    assert (result.exit_code, result.stdout) == (0, f"collection {stored!r} dropped\n"), result.output
    assert not table_exists(settings, stored)
    assert_user_error(cli("drop", "-c", stored, "--yes"), stored)


def test_cli_drop_on_a_terminal_asks_first(stored, settings, terminal):
    declined = cli("drop", "-c", stored, input="n\n")
    assert declined.exit_code == 1 and table_exists(settings, stored)
    assert f"Drop collection {stored!r}" in declined.stdout
    assert cli("drop", "-c", stored, input="y\n").exit_code == 0
    assert not table_exists(settings, stored)
