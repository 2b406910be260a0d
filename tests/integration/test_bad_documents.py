"""One bad document never sinks a run: it is skipped, named, and the good ones beside it are stored.

Specification: whatever PostgreSQL `text`/`jsonb` or UTF-8 cannot hold (a NUL, an unpaired
surrogate, a non-finite number, a value JSON has no type for), on every input path (files,
JSONL text and metadata, Python documents), skips that one document with a reason that names
it; and a document the database itself refuses (a data exception, a limit) is skipped the
same way while the rest of its write batch is stored. Queries and filters holding such
characters are a clear input error, never a database error.
"""

from __future__ import annotations

import gzip
import json
import math
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from ingest import Chunk, SourceDocument, sha256_hex
from retriever import Engine
from retriever.errors import InputError, InvalidFilter
from retriever.results import SearchParams
from retriever.settings import Settings
from retriever.store.batches import BatchWriter
from retriever.store.collections import create_collection
from retriever.store.writer import PreparedDocument

TEXT = SearchParams(mode="text", k=20)


def stored_ids(engine: Engine, collection: str, query: str) -> set[str]:
    return {hit.document_id for hit in engine.search(collection, query, TEXT).hits}


def test_a_folder_of_bad_files_ingests_every_good_one_and_names_each_bad_one(
    tmp_path: Path, settings: Settings, fake_model, collection_name: str
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "good.txt").write_text("ferns grow in shade and damp soil")
    (docs / "nul.txt").write_bytes(b"ferns " * 2000 + b"o\x00er free notebooks")  # a NUL past git's sniff window
    (docs / "latin1.txt").write_bytes("ferns café".encode("latin-1"))
    (docs / "empty.md").write_text("  \n")
    (docs / "binary.txt").write_bytes(bytes(range(256)))
    records = [
        {"id": "meta-nul", "text": "ferns in metadata", "metadata": {"note": "a\u0000b"}},
        {"id": "surrogate", "text": "ferns \ud800 lone"},
        {"id": "nan", "text": "ferns and numbers", "metadata": {"score": math.nan}},
        {"id": "good-record", "text": "ferns from a corpus line"},
    ]
    with gzip.open(docs / "corpus.jsonl.gz", "wt") as stream:  # json.dumps writes NaN, and reads it back
        stream.write("".join(json.dumps(record) + "\n" for record in records))
    engine = Engine(settings, model=fake_model)

    report = engine.ingest_paths(collection_name, [docs])

    found = stored_ids(engine, collection_name, "ferns")
    assert len(found) == 2 and "good-record" in found and any(name.endswith("good.txt") for name in found)
    reasons = " | ".join(f"{item.path}: {item.reason}" for item in report.skipped)
    for named in ("nul.txt", "latin1.txt", "empty.md", "binary.txt", "line 1", "line 2", "line 3"):
        assert named in reasons
    assert "NUL" in reasons and "surrogate" in reasons and "finite" in reasons
    assert report.new_documents == 2


def test_python_documents_that_cannot_be_stored_are_skipped_beside_good_ones(
    settings: Settings, fake_model, collection_name: str
) -> None:
    engine = Engine(settings, model=fake_model)
    documents = [
        SourceDocument("good", "ferns in the shade", None, "python", {}),
        SourceDocument("nul-text", "ferns\x00", None, "python", {}),
        SourceDocument("nul-title", "ferns", "a\x00b", "python", {}),
        SourceDocument("bad-id\udcff", "ferns", None, "python", {}),
        SourceDocument("date", "ferns", None, "python", {"when": date(2024, 1, 1)}),
        SourceDocument("huge-int", "ferns", None, "python", {"n": 10**5000}),
        SourceDocument("nul-key", "ferns", None, "python", {"a\x00": 1}),
        SourceDocument("also-good", "more ferns", None, "python", {"tags": ["x"]}),
    ]

    report = engine.ingest(collection_name, documents)

    assert stored_ids(engine, collection_name, "ferns") == {"good", "also-good"}
    assert sorted(item.reason.split(":")[0] for item in report.skipped) == sorted(
        ["nul-text", "nul-title", "bad-id\udcff", "date", "huge-int", "nul-key"]
    )
    assert (report.new_documents, report.new_chunks) == (2, 2)


def _prepared(document_id: str, text: str) -> PreparedDocument:
    """One document of one chunk, however long (the splitter would cut it)."""
    chunk = Chunk(f"{document_id}:0", document_id, 0, text, {"source": "python"}, sha256_hex(text))
    return PreparedDocument(document_id, sha256_hex(document_id + text), [chunk])


@pytest.mark.parametrize("bulk", [True, False], ids=["first load", "later write"])
def test_a_document_the_database_refuses_leaves_the_rest_of_its_batch_stored(
    settings: Settings, fake_model, collection_name: str, bulk: bool
) -> None:
    engine = Engine(settings, model=fake_model)
    if not bulk:
        engine.ingest(collection_name, [SourceDocument("seed", "an earlier note", None, "python", {})])
    # ~1.6 MB of distinct words: more than a tsvector holds (SQLSTATE 54000)
    too_long = " ".join(f"w{n}x{n * 7919 % 100003}" for n in range(150_000))
    batch = [_prepared("a-good", "ferns one"), _prepared("b-huge", too_long), _prepared("c-good", "ferns two")]
    vectors = np.asarray(fake_model.embed_documents([d.chunks[0].content for d in batch]), dtype=np.float32)
    with engine.connection() as conn:
        collection = create_collection(conn, collection_name, embedding_model=fake_model.name, dimensions=32)

    with BatchWriter(engine.connection, collection) as writer:
        writer.submit(batch, vectors)
        writer.finish()

    assert [(document.document_id, "tsvector" in reason) for document, reason in writer.refused] == [("b-huge", True)]
    assert stored_ids(engine, collection_name, "ferns") == {"a-good", "c-good"}


@pytest.mark.parametrize(
    "query",
    ["ferns\x00", "caf\udce9"],  # a NUL; an undecodable byte of a command line, as Python decodes it
    ids=["NUL", "unpaired surrogate"],
)
def test_a_query_postgres_cannot_hold_is_an_input_error(
    settings: Settings, fake_model, collection_name: str, query: str
) -> None:
    engine = Engine(settings, model=fake_model)
    engine.ingest(collection_name, [SourceDocument("good", "ferns", None, "python", {})])
    with pytest.raises(InputError, match="the query contains"):
        engine.search(collection_name, query, TEXT)
    with pytest.raises(InputError, match="the document id contains"):
        engine.search(collection_name, None, TEXT, like=query)
    with pytest.raises(InvalidFilter, match="contains"):
        engine.search(collection_name, "ferns", SearchParams(mode="text", filter={"tag": query}))
