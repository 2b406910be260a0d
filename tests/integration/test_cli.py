"""The `hybrid-rag` command line: ingest, search, collections; user mistakes exit 2 in one line."""

from __future__ import annotations

import json
import re
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from hybrid_rag.cli import main
from retriever.connections import open_primary
from retriever.errors import CollectionNotFound
from retriever.settings import get_settings
from retriever.store.collections import drop_collection

RECORDS = [
    {
        "id": "rec-espresso",
        "title": "Espresso",
        "text": "Espresso is brewed by forcing hot water through finely ground coffee at about nine bars of pressure.",
        "metadata": {"year": 2021, "lang": "en"},
    },
    {
        "id": "rec-tea",
        "title": "Green tea",
        "text": "Green tea leaves are steamed or pan-fired soon after picking to stop oxidation.",
        "metadata": {"year": 2019, "lang": "en"},
    },
    {
        "id": "rec-brot",
        "title": "Brot",
        "text": "Sauerteigbrot wird mit einem Vorteig aus Mehl und Wasser gebacken.",
        "metadata": {"year": 2023, "lang": "de"},
    },
]


def write_corpus(folder: Path) -> Path:
    """A folder with one file of each kind, plus three files that must be skipped."""
    folder.mkdir()
    (folder / "derailleur.md").write_text(
        "# Adjusting a rear derailleur\n\nTurn the barrel adjuster a quarter turn until the chain "
        "shifts cleanly onto the next cog.\n",
        encoding="utf-8",
    )
    (folder / "telescope.txt").write_text(
        "A refracting telescope gathers light with an objective lens; its aperture decides how faint "
        "a star you can see.\n",
        encoding="utf-8",
    )
    (folder / "compost.html").write_text(
        "<html><head><title>Composting</title></head><body><p>A compost heap needs green nitrogen-rich "
        "material, brown carbon-rich material, air and moisture.</p></body></html>",
        encoding="utf-8",
    )
    (folder / "records.jsonl").write_text("\n".join(json.dumps(r) for r in RECORDS) + "\n", encoding="utf-8")
    (folder / "empty.md").write_text("", encoding="utf-8")
    (folder / "image.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00")
    (folder / "latin1.txt").write_bytes("Caf\xe9 cr\xe8me".encode("latin-1"))
    return folder


SKIPPED = ("empty.md", "image.txt", "latin1.txt")


def run(*args: str) -> Result:
    """Run the CLI in-process against the test database (settings re-read from the environment)."""
    get_settings.cache_clear()
    try:
        return CliRunner(env={"EMBEDDINGS": "local"}).invoke(main, list(args))
    finally:
        get_settings.cache_clear()


def assert_user_error(result: Result, *fragments: str) -> str:
    """Exit code 2, one line on stderr that names the problem, no traceback."""
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


def table_exists(settings, name: str) -> bool:
    with open_primary(settings) as conn:
        return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()[0]


@pytest.fixture(scope="module")
def corpus_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("cli") / "corpus")


@pytest.fixture(scope="module")
def ingested(settings, corpus_folder) -> Iterator[tuple[str, Result]]:
    """The corpus folder ingested once through the CLI: (collection name, the ingest's result)."""
    name = f"t_cli_{uuid.uuid4().hex[:8]}"
    result = run("ingest", str(corpus_folder), "--collection", name)
    yield name, result
    with open_primary(settings) as conn:
        try:
            drop_collection(conn, name)
        except CollectionNotFound:
            pass


def file_id(folder: Path, name: str) -> str:
    """The id ingest gives a file: its real path."""
    return (folder / name).resolve().as_posix()


def search_json(collection: str, *args: str) -> dict:
    result = run("search", *args, "--collection", collection, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# ingest


def test_ingest_reports_new_chunks_and_documents_in_one_summary_line(ingested):
    _, result = ingested
    assert result.exit_code == 3, result.output  # finished, with skipped inputs
    assert result.stdout.splitlines()[0] == (
        "6 new, 0 unchanged chunks from 6 documents (6 new, 0 changed, 0 unchanged); 3 skipped"
    )


def test_ingest_warns_about_each_skipped_file_by_name_and_goes_on(ingested):
    _, result = ingested
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: skipped")]
    assert len(warnings) == 3
    for name, reason in zip(SKIPPED, ("empty file", "binary file", "not valid UTF-8"), strict=True):
        assert any(name in line and reason in line for line in warnings), (name, warnings)


def test_reingesting_the_same_folder_reports_0_new(ingested, corpus_folder):
    name, _ = ingested
    again = run("ingest", str(corpus_folder), "--collection", name)
    assert again.exit_code == 3, again.output  # the same three files skipped again
    assert again.stdout.startswith("0 new, 6 unchanged chunks from 6 documents (0 new, 0 changed, 6 unchanged)")


def test_ingest_of_a_missing_path_is_a_user_error(collection_name, tmp_path):
    assert_user_error(run("ingest", str(tmp_path / "nope"), "--collection", collection_name), "does not exist")


# search


def test_search_json_prints_one_object_in_the_contract_shape(ingested, corpus_folder):
    name, _ = ingested
    payload = search_json(name, "how do I adjust the gears on my bike", "-k", "3")
    assert set(payload) == {"results", "took_ms"}
    assert isinstance(payload["took_ms"], float) and payload["took_ms"] > 0
    assert len(payload["results"]) == 3
    for hit in payload["results"]:
        assert set(hit) == {"id", "document_id", "content", "metadata", "score", "vector_rank", "text_rank"}
        assert hit["vector_rank"] is not None or hit["text_rank"] is not None
    top = payload["results"][0]
    assert top["document_id"] == file_id(corpus_folder, "derailleur.md")
    assert top["id"] == file_id(corpus_folder, "derailleur.md") + ":0"
    assert "barrel adjuster" in top["content"]
    assert [h["score"] for h in payload["results"]] == sorted((h["score"] for h in payload["results"]), reverse=True)


def test_jsonl_records_keep_their_ids_and_metadata_and_can_be_filtered(ingested):
    name, _ = ingested
    payload = search_json(name, "coffee", "--filter", '{"year": {"$gte": 2020}}', "-k", "10")
    assert {h["document_id"] for h in payload["results"]} == {"rec-espresso", "rec-brot"}
    espresso = next(h for h in payload["results"] if h["document_id"] == "rec-espresso")
    assert espresso["metadata"]["year"] == 2021 and espresso["metadata"]["lang"] == "en"


def test_search_modes_fill_only_their_own_rank(ingested, corpus_folder):
    name, _ = ingested
    text = search_json(name, "telescope aperture", "--mode", "text")["results"]
    vector = search_json(name, "telescope aperture", "--mode", "vector")["results"]
    assert text and all(h["vector_rank"] is None and h["text_rank"] for h in text)
    assert vector and all(h["text_rank"] is None and h["vector_rank"] for h in vector)
    assert text[0]["document_id"] == vector[0]["document_id"] == file_id(corpus_folder, "telescope.txt")


def test_search_like_ranks_other_documents_by_similarity_to_a_stored_one(ingested):
    name, _ = ingested
    payload = search_json(name, "--like", "rec-espresso", "-k", "3")
    ids = [hit["document_id"] for hit in payload["results"]]
    assert len(ids) == 3 and "rec-espresso" not in ids


def test_search_like_an_unknown_document_is_a_user_error(ingested):
    name, _ = ingested
    assert_user_error(run("search", "--like", "no-such-document", "--collection", name), "no-such-document")


@pytest.mark.parametrize("args", [[], ["coffee", "--like", "rec-tea"]])
def test_search_needs_exactly_one_of_query_and_like(ingested, args):
    name, _ = ingested
    assert_user_error(run("search", *args, "--collection", name), "--like")


def test_search_prints_a_readable_table_by_default(ingested, corpus_folder):
    name, _ = ingested
    result = run("search", "compost heap", "--collection", name, "-k", "2")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["#", "score", "vec", "text", "document", "/", "excerpt"]
    assert re.match(r"\s+1\s+\d\.\d{4}\s+\S+\s+\S+\s+(\S+)$", lines[1])[1] == file_id(corpus_folder, "compost.html")
    assert "compost heap" in lines[2]
    assert re.fullmatch(r"2 results in \d+\.\d ms", lines[-1])


def test_collections_lists_names_counts_and_the_embedding_model(ingested):
    name, _ = ingested
    result = run("collections")
    assert result.exit_code == 0, result.output
    line = next(line for line in result.stdout.splitlines() if line.startswith(name))
    assert line.split()[1:3] == ["6", "chunks"]
    assert "local:all-MiniLM-L6-v2 (384d, english)" in line
    listed = json.loads(run("collections", "--json").stdout)["collections"]
    assert {
        "name": name,
        "chunks": 6,
        "embedding_model": "local:all-MiniLM-L6-v2",
        "dimensions": 384,
        "text_config": "english",
        "language": "english",
        "accent_insensitive": False,
        "vector_index": {"kind": "hnsw", "storage": "vector", "m": 16, "ef_construction": 64},
        "complete": True,
    } in listed


# user mistakes: exit 2, one line, no traceback


def test_unknown_collection_is_a_user_error(settings):
    assert_user_error(run("search", "coffee", "--collection", "no_such_collection"), "no_such_collection")


@pytest.mark.parametrize("raw", ["{not json", "[1, 2]", '"lang"'])
def test_invalid_filter_json_is_a_user_error(ingested, raw):
    name, _ = ingested
    assert_user_error(run("search", "coffee", "--collection", name, "--filter", raw), "--filter")


def test_unknown_filter_operator_is_a_user_error(ingested):
    name, _ = ingested
    line = assert_user_error(run("search", "coffee", "-c", name, "--filter", '{"year": {"$regex": "x"}}'), "$regex")
    assert "unknown filter operator" in line


@pytest.mark.parametrize("query", ["", "   "])
def test_empty_query_is_a_user_error(ingested, query):
    name, _ = ingested
    assert_user_error(run("search", query, "--collection", name), "empty")


@pytest.mark.parametrize(("option", "value"), [("-k", "0"), ("-k", "100000"), ("--weights", "1"), ("--weights", "a,b")])
def test_out_of_range_search_options_are_user_errors(ingested, option, value):
    name, _ = ingested
    assert_user_error(run("search", "coffee", "--collection", name, option, value))


BAD_NAME = 'x"; DROP TABLE hybrid_rag.collections; --'


@pytest.mark.parametrize("command", ["search", "ingest"])
def test_collection_name_with_sql_metacharacters_is_rejected_and_harms_nothing(settings, corpus_folder, command):
    args = ["search", "coffee"] if command == "search" else ["ingest", str(corpus_folder)]
    assert_user_error(run(*args, "--collection", BAD_NAME), "invalid collection name")
    assert table_exists(settings, "hybrid_rag.collections")


def test_filter_key_with_sql_metacharacters_is_only_data(settings, ingested):
    name, _ = ingested
    payload = search_json(name, "coffee", "--filter", json.dumps({f"a'); DROP TABLE hybrid_rag.{name}; --": 1}))
    assert payload["results"] == []
    assert table_exists(settings, f"hybrid_rag.{name}")
    assert table_exists(settings, "hybrid_rag.collections")


@pytest.mark.parametrize("command", [["search", "coffee", "-c", "docs"], ["collections"]])
def test_unreachable_database_is_a_user_error_that_hides_the_password(command):
    result = run(*command, "--database-url", "postgresql://user:secret@127.0.0.1:1/db")
    line = assert_user_error(result, "database unreachable")
    assert "secret" not in result.output and "secret" not in line


def test_malformed_database_url_is_a_user_error():
    result = run("collections", "--database-url", "not-a-dsn password=secret")
    assert_user_error(result)
    assert "secret" not in result.output


def test_serve_with_a_database_that_does_not_answer_is_one_line_not_a_server_traceback(monkeypatch):
    monkeypatch.setattr("uvicorn.run", lambda *args, **kwargs: pytest.fail("must not start"))
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    assert_user_error(run("serve", "--database-url", f"postgresql://postgres@127.0.0.1:{closed}/x"), "unreachable")
