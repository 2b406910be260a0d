"""Concurrent writers of one collection: both succeed, and the collection equals one ingest of the union.

Specification: two ingests of overlapping documents into one collection, started at the
same moment (as two CLI runs, CLI + HTTP, or two HTTP requests would be), both finish
without an error, and afterwards the collection holds exactly what one ingest of the
union would: the same documents and hashes, chunks, postings, document frequencies
and BM25 statistics. That holds for a collection that already has documents (writes
replace under the collection's lock) and for a first load (both writers bulk-load; a
batch that meets the other writer's document is written again, replacing it).
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import uuid

import pytest
from litestar.testing import AsyncTestClient

from ingest import ChunkingConfig, SourceDocument, document_hash, split_document
from retriever import Engine
from retriever.http import create_app
from retriever.store.batches import BatchWriter
from retriever.store.collections import create_collection
from retriever.store.writer import PreparedDocument

CHUNKING = ChunkingConfig(chunk_size=100, chunk_overlap=0)  # ~3 chunks a document: several write batches
REPETITIONS = 20


def documents(numbers: range) -> list[SourceDocument]:
    return [
        SourceDocument(
            f"doc-{i:03d}",
            " ".join(f"sentence {j} of note {i} on topic{i % 7} and term{(i * j) % 13}." for j in range(5)),
            f"Note {i}",
            "t",
            {"n": i},
        )
        for i in numbers
    ]


SEED = documents(range(1000, 1001))
FIRST, SECOND = range(0, 100), range(50, 150)  # 100 + 100 documents, 50 in common


def fresh(names: list[str]) -> str:
    names.append(f"t_{uuid.uuid4().hex[:12]}")
    return names[-1]


def ingest_at_once(engine: Engine, name: str, batches: list[list[SourceDocument]]) -> list[BaseException]:
    """Run one ingest per batch of documents in its own thread, all released together; returns their errors."""
    start = threading.Barrier(len(batches))
    errors: list[BaseException] = []

    def run(batch: list[SourceDocument]) -> None:
        start.wait()
        try:
            engine.ingest(name, batch, CHUNKING)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(batch,)) for batch in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


@pytest.mark.parametrize("seeded", [True, False], ids=["collection-with-documents", "first-load"])
def test_overlapping_concurrent_ingests_both_succeed_and_equal_one_ingest_of_the_union(
    settings, fake_model, names, seeded, collection_state
):
    engine = Engine(settings, model=fake_model)
    reference = fresh(names)
    engine.ingest(reference, (SEED if seeded else []) + documents(range(FIRST.start, SECOND.stop)), CHUNKING)
    expected = collection_state(reference)

    for repetition in range(REPETITIONS):
        name = fresh(names)
        if seeded:
            engine.ingest(name, SEED, CHUNKING)
        errors = ingest_at_once(engine, name, [documents(FIRST), documents(SECOND)])
        assert errors == [], f"repetition {repetition}: {errors!r}"
        found = collection_state(name)
        for part, rows in expected.items():
            assert found[part] == rows, f"repetition {repetition}: {part} differ"


async def test_two_requests_posting_the_same_new_document_both_succeed(settings, fake_model, names, collection_state):
    name = fresh(names)
    body = {"documents": [{"id": "same", "text": "one document posted twice at the same moment"}]}
    async with AsyncTestClient(create_app(settings, model=fake_model)) as client:
        responses = await asyncio.gather(
            *(client.post(f"/v1/collections/{name}/documents", json=body) for _ in range(2))
        )
    assert [response.status_code for response in responses] == [200, 200], [r.text for r in responses]
    found = collection_state(name)
    assert [row[0] for row in found["documents"]] == ["same"]
    assert len(found["chunks"]) == 1


def prepared(batch: list[SourceDocument]) -> list[PreparedDocument]:
    return [PreparedDocument(d.document_id, document_hash(d, CHUNKING), split_document(d, CHUNKING)) for d in batch]


def test_a_first_load_finished_by_another_writer_is_joined_and_hides_nothing(
    settings, fake_model, names, collection_state
):
    engine = Engine(settings, model=fake_model)
    reference, name = fresh(names), fresh(names)
    engine.ingest(reference, documents(range(0, 60)), CHUNKING)
    with engine.connection() as conn:
        empty = create_collection(conn, name, embedding_model=fake_model.name, dimensions=fake_model.dimensions)

    late = BatchWriter(engine.connection, empty)  # starts a first load of an empty collection...
    try:
        assert late.bulk
        engine.ingest(name, documents(range(0, 30)), CHUNKING)  # ...which another writer loads and finishes
        batch = prepared(documents(range(30, 60)))
        late.submit(batch, fake_model.embed_documents([c.content for d in batch for c in d.chunks]))
    finally:
        late.close()  # its process dies here, before `finish`: nothing it wrote may be missing from the index

    assert not late.bulk  # its batch found the load finished and was written as any ingest writes
    assert engine.collection(name).complete
    assert collection_state(name) == collection_state(reference)


def test_a_writer_that_saw_an_empty_collection_does_not_restart_a_finished_load(settings, fake_model, names):
    engine = Engine(settings, model=fake_model)
    name = fresh(names)
    engine.ingest(name, documents(range(0, 10)), CHUNKING)
    stale = dataclasses.replace(engine.collection(name), chunk_count=0)  # what it read before the load finished

    with BatchWriter(engine.connection, stale) as writer:
        assert not writer.bulk
    assert engine.collection(name).complete  # its indexes were not dropped
