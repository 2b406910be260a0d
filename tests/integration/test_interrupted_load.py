"""A first load killed midway: never answered as if complete, and made complete by `maintain` or the next ingest.

Specification: a bulk load builds the BM25 posting blocks, document frequencies and
statistics after its last batch, so a process killed (SIGKILL) after some batches
committed leaves whole documents without them. Such a collection is marked incomplete:
`collections` says so (CLI and HTTP), and a search that reads the text leg fails with a
clear error (exit 2, HTTP 409) instead of answering "0 results". `hybrid-rag maintain`
or a rerun of the ingest completes it, after which text search ranks exactly as a clean
ingest of the same documents does.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
import uuid

import pytest
from click.testing import CliRunner
from litestar.testing import AsyncTestClient

from hybrid_rag.cli import main
from ingest import ChunkingConfig, SourceDocument
from retriever import CollectionIncomplete, Engine, SearchParams
from retriever.connections import open_primary
from retriever.http import create_app

CHUNKING = ChunkingConfig(chunk_size=100, chunk_overlap=0)  # ~3 chunks a document, 256 chunks a batch
QUERIES = ["42", "137", "7", "199"]  # each names one note: every chunk it matches is returned

# A child process that loads 200 documents with the tests' hash embeddings and is killed
# (SIGKILL: no clean-up runs) while embedding the third batch, once a batch has committed.
CHILD = textwrap.dedent(
    """
    import hashlib, os, signal, sys, time
    import numpy as np
    from langchain_core.embeddings import Embeddings
    from ingest import ChunkingConfig, SourceDocument
    from retriever import EmbeddingModel, Engine

    class DyingHashEmbeddings(Embeddings):
        batches = 0

        def one(self, text):
            vector = np.zeros(32, dtype=np.float32)
            for word in text.lower().split():
                vector[int(hashlib.md5(word.encode()).hexdigest(), 16) % 32] += 1.0
            return (vector / (float(np.linalg.norm(vector)) or 1.0)).tolist()

        def embed_documents(self, texts):
            DyingHashEmbeddings.batches += 1
            if DyingHashEmbeddings.batches == 3:
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline and not committed():  # the writer threads commit a batch
                    time.sleep(0.1)
                os.kill(os.getpid(), signal.SIGKILL)
            return [self.one(text) for text in texts]

        def embed_query(self, text):
            return self.one(text)

    def committed():
        with engine.connection() as conn:
            table = f'hybrid_rag."{sys.argv[1]}__documents"'
            return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] > 0

    documents = [SourceDocument(**fields) for fields in __DOCUMENTS__]
    engine = Engine(model=EmbeddingModel("test:hash-32", DyingHashEmbeddings()))
    engine.ingest(sys.argv[1], documents, ChunkingConfig(chunk_size=100, chunk_overlap=0))
    """
)


def corpus() -> list[SourceDocument]:
    return [
        SourceDocument(
            f"doc-{i:03d}",
            " ".join(f"sentence {j} of note {i} about topic{i % 7} and term{(i * j) % 13}." for j in range(5)),
            None,
            "t",
            {"n": i},
        )
        for i in range(200)
    ]


def killed_first_load(settings, names: list[str]) -> str:
    """A collection whose first load was killed after committing some batches."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    names.append(name)
    fields = [dataclasses.asdict(document) for document in corpus()]
    code = CHILD.replace("__DOCUMENTS__", repr(fields))
    env = {**os.environ, "HYBRID_RAG_HOME": str(settings.data_home), "HF_HUB_OFFLINE": "1"}
    if settings.database_url:
        env["DATABASE_URL"] = settings.database_url
    child = subprocess.run([sys.executable, "-c", code, name], env=env, capture_output=True, text=True, timeout=300)
    assert child.returncode == -9, child.stderr  # killed, not finished
    return name


def stored_documents(settings, name: str) -> list[SourceDocument]:
    with open_primary(settings) as conn:
        ids = {row[0] for row in conn.execute(f'SELECT document_id FROM hybrid_rag."{name}__documents"').fetchall()}
    return [document for document in corpus() if document.document_id in ids]


def text_matches(engine: Engine, name: str) -> list[set[str]]:
    params = SearchParams(k=20, mode="text")
    return [{hit.id for hit in engine.search(name, query, params).hits} for query in QUERIES]


async def test_a_killed_first_load_is_marked_incomplete_and_never_answers_as_if_complete(settings, fake_model, names):
    name = killed_first_load(settings, names)
    engine = Engine(settings, model=fake_model)
    assert 0 < len(stored_documents(settings, name)) < 200
    assert engine.collection(name).complete is False

    for mode in ("text", "hybrid"):
        with pytest.raises(CollectionIncomplete, match="maintain"):
            engine.search(name, "topic3 term5", SearchParams(mode=mode))
    assert engine.search(name, "topic3 term5", SearchParams(mode="vector")).hits  # the chunks themselves are whole

    runner = CliRunner()
    searched = runner.invoke(main, ["search", "topic3", "-c", name, "--mode", "text"])
    assert searched.exit_code == 2 and "hybrid-rag maintain" in searched.output, searched.output
    assert len(searched.output.strip().splitlines()) == 1 and "Traceback" not in searched.output
    listed = json.loads(runner.invoke(main, ["collections", "--json"]).output)["collections"]
    assert [entry["complete"] for entry in listed if entry["name"] == name] == [False]
    assert "INCOMPLETE" in runner.invoke(main, ["collections"]).output

    async with AsyncTestClient(create_app(settings, model=fake_model)) as client:
        response = await client.post(f"/v1/collections/{name}/search", json={"query": "topic3", "mode": "text"})
        collections = (await client.get("/v1/collections")).json()["collections"]
    assert response.status_code == 409, response.text
    assert response.json()["type"] == "urn:hybrid-rag:problem:collection-incomplete"
    assert [entry["complete"] for entry in collections if entry["name"] == name] == [False]


def test_maintain_completes_a_killed_first_load_as_a_clean_ingest_of_its_documents(
    settings, fake_model, names, collection_state
):
    name = killed_first_load(settings, names)
    engine = Engine(settings, model=fake_model)
    clean = f"t_{uuid.uuid4().hex[:12]}"
    names.append(clean)
    engine.ingest(clean, stored_documents(settings, name), CHUNKING)

    maintained = CliRunner().invoke(main, ["maintain", "-c", name])

    assert maintained.exit_code == 0, maintained.output
    assert engine.collection(name).complete is True
    assert collection_state(name) == collection_state(clean)
    assert text_matches(engine, name) == text_matches(engine, clean)
    assert any(text_matches(engine, name))  # the stored notes are found


def test_the_next_ingest_completes_a_killed_first_load(settings, fake_model, names, collection_state):
    name = killed_first_load(settings, names)
    engine = Engine(settings, model=fake_model)
    clean = f"t_{uuid.uuid4().hex[:12]}"
    names.append(clean)
    engine.ingest(clean, corpus(), CHUNKING)

    report = engine.ingest(name, corpus(), CHUNKING)

    assert report.unchanged_documents > 0 and report.new_documents > 0
    assert engine.collection(name).complete is True
    assert collection_state(name) == collection_state(clean)
    assert all(text_matches(engine, name)) and text_matches(engine, name) == text_matches(engine, clean)
