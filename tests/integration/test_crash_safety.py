"""A crash mid-ingest leaves no half-written document, consistent BM25 statistics, and a rerun finishes the job."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import psycopg
import pytest
from psycopg import sql

import retriever.store.batches
from ingest import ChunkingConfig, SourceDocument, split_document
from retriever import Engine
from retriever.connections import open_primary
from retriever.embeddings import EmbeddingModel
from retriever.results import SearchParams
from retriever.store.collections import get_collection
from retriever.store.tables import SCHEMA
from retriever.store.writer import write_documents

# ~3 chunks per document and 256 chunks per write batch: 200 documents make three batches.
CHUNKING = ChunkingConfig(chunk_size=100, chunk_overlap=0)
N_DOCUMENTS = 200


def corpus(version: str = "v1") -> list[SourceDocument]:
    return [
        SourceDocument(
            f"doc-{i:03d}",
            " ".join(
                f"{version} sentence {j} of document {i} about topic{i % 7} and term{(i * j) % 11}." for j in range(5)
            ),
            None,
            "test",
            {"n": i, "version": version},
        )
        for i in range(N_DOCUMENTS)
    ]


class SimulatedCrash(RuntimeError):
    pass


class CrashingModel(EmbeddingModel):
    """Wraps a model and fails on its n-th batch of chunks."""

    def __init__(self, inner: EmbeddingModel, fail_on: int) -> None:
        super().__init__(inner.name, inner.embeddings)
        self.calls = 0
        self.fail_on = fail_on

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        if self.calls == self.fail_on:
            raise SimulatedCrash(f"model died on batch {self.calls}")
        return super().embed_documents(texts)


class WriteCrash:
    """Once armed, the second batch's statements all run, then the process 'dies' before the commit."""

    def __init__(self) -> None:
        self.armed = False
        self.batches: list[list[str]] = []
        self.lock = threading.Lock()

    def write(self, conn: psycopg.Connection, collection, documents, embeddings, **options) -> int:
        if not self.armed:
            return write_documents(conn, collection, documents, embeddings, **options)
        with self.lock:  # batches may be written on two connections at once
            self.batches.append([document.document_id for document in documents])
            crash = len(self.batches) == 2
        if not crash:
            return write_documents(conn, collection, documents, embeddings, **options)
        with conn.transaction():
            write_documents(conn, collection, documents, embeddings, **options)
            raise SimulatedCrash("died before commit")


@pytest.fixture
def write_crash(monkeypatch) -> WriteCrash:
    crash = WriteCrash()
    monkeypatch.setattr(retriever.store.batches, "write_documents", crash.write)
    return crash


# Each statement counts the rows that break one invariant a crash could break.
VIOLATIONS = {
    "a recorded document lacks some of its chunks 0..n-1, or chunks lack their document": """
        SELECT count(*) FROM {documents} d
        FULL JOIN (SELECT document_id, count(*) AS n, min(chunk_index) AS first, max(chunk_index) AS last
                   FROM {chunks} GROUP BY document_id) c USING (document_id)
        WHERE d.document_id IS NULL OR c.document_id IS NULL
           OR d.chunk_count <> c.n OR c.first <> 0 OR c.last <> c.n - 1""",
    "a term's document frequency differs from its postings": """
        SELECT count(*) FROM {terms} t
        FULL JOIN (SELECT p.term, count(*) AS n
                   FROM {postings} p CROSS JOIN unnest(p.chunk_keys) AS k(key)
                   GROUP BY p.term) p USING (term)
        WHERE coalesce(t.df, 0) <> coalesce(p.n, 0)""",
    "a posting names no chunk (a deleted chunk's left behind)": """
        SELECT count(*) FROM {postings} p CROSS JOIN unnest(p.chunk_keys) AS k(key)
        WHERE NOT EXISTS (SELECT FROM {chunks} c WHERE c.key = k.key)""",
    "a chunk's posting differs from its tsv": """
        SELECT count(*) FROM (
            SELECT p.term, k.key, k.tf, k.length
            FROM {postings} p CROSS JOIN unnest(p.chunk_keys, p.tfs, p.lengths) AS k(key, tf, length)
        ) stored FULL JOIN (
            SELECT u.lexeme AS term, c.key, cardinality(u.positions) AS tf,
                   sum(cardinality(u.positions)) OVER (PARTITION BY c.key) AS length
            FROM {chunks} c CROSS JOIN unnest(c.tsv) AS u
        ) derived USING (term, key, tf, length)
        WHERE stored.term IS NULL OR derived.term IS NULL""",
    "an anchor's term has two partial blocks that no delete trimmed (an append merges them)": """
        SELECT count(*) FROM (
            SELECT anchor, term FROM {postings} WHERE cardinality(chunk_keys) < 100 AND NOT trimmed
            GROUP BY anchor, term HAVING count(*) > 1
        ) twice""",
    "a posting block is empty or over-full, or its arrays disagree": """
        SELECT count(*) FROM {postings}
        WHERE cardinality(chunk_keys) NOT BETWEEN 1 AND 100
           OR cardinality(chunk_keys) <> cardinality(tfs) OR cardinality(tfs) <> cardinality(lengths)""",
    "the collection's chunk count (N of BM25) is off": """
        SELECT chunk_count - (SELECT count(*) FROM {chunks}) FROM hybrid_rag.collections WHERE name = %(name)s""",
    "the collection's total length (avgdl of BM25) is off": """
        SELECT total_length - (SELECT coalesce(sum(cardinality(u.positions)), 0) FROM {chunks} c, unnest(c.tsv) u)
        FROM hybrid_rag.collections WHERE name = %(name)s""",
}


def assert_consistent(conn: psycopg.Connection, name: str) -> set[str]:
    """Check every invariant; returns the ids of the stored documents."""
    tables = {
        "chunks": sql.Identifier(SCHEMA, name),
        "documents": sql.Identifier(SCHEMA, f"{name}__documents"),
        "postings": sql.Identifier(SCHEMA, f"{name}__postings"),
        "terms": sql.Identifier(SCHEMA, f"{name}__terms"),
    }
    for violation, statement in VIOLATIONS.items():
        assert conn.execute(sql.SQL(statement).format(**tables), {"name": name}).fetchone()[0] == 0, violation
    assert get_collection(conn, name).chunk_count > 0
    rows = conn.execute(sql.SQL("SELECT document_id FROM {documents}").format(**tables)).fetchall()
    return {document_id for (document_id,) in rows}


def test_corpus_spans_several_write_batches():
    chunks = sum(len(split_document(document, CHUNKING)) for document in corpus())
    assert chunks > 2 * 256


def test_model_failure_on_the_second_batch_keeps_only_whole_documents(settings, collection_name, fake_model):
    with pytest.raises(SimulatedCrash):
        Engine(settings, model=CrashingModel(fake_model, 2)).ingest(collection_name, corpus(), CHUNKING)
    with open_primary(settings) as conn:
        stored = assert_consistent(conn, collection_name)
    assert 0 < len(stored) < N_DOCUMENTS

    report = Engine(settings, model=fake_model).ingest(collection_name, corpus(), CHUNKING)
    assert report.unchanged_documents == len(stored)
    assert report.new_documents == N_DOCUMENTS - len(stored)
    with open_primary(settings) as conn:
        assert len(assert_consistent(conn, collection_name)) == N_DOCUMENTS


def test_crash_before_a_batch_commits_rolls_the_whole_batch_back(settings, collection_name, fake_model, write_crash):
    write_crash.armed = True
    with pytest.raises(SimulatedCrash):
        Engine(settings, model=fake_model).ingest(collection_name, corpus(), CHUNKING)
    with open_primary(settings) as conn:
        stored = assert_consistent(conn, collection_name)
    assert set(write_crash.batches[0]) <= stored  # the batch before the crash survived whole
    assert not stored & set(write_crash.batches[1])  # the crashed batch left nothing behind


def test_rerun_after_a_crash_finishes_the_job_and_builds_the_indexes(
    settings, collection_name, fake_model, write_crash
):
    write_crash.armed = True
    with pytest.raises(SimulatedCrash):
        Engine(settings, model=fake_model).ingest(collection_name, corpus(), CHUNKING)
    write_crash.armed = False

    with open_primary(settings) as conn:
        stored = assert_consistent(conn, collection_name)
    report = Engine(settings, model=fake_model).ingest(collection_name, corpus(), CHUNKING)
    assert report.new_documents == N_DOCUMENTS - len(stored)
    assert report.unchanged_documents == len(stored)
    with open_primary(settings) as conn:
        assert len(assert_consistent(conn, collection_name)) == N_DOCUMENTS
        indexes = {
            row[0]
            for row in conn.execute(
                "SELECT indexname FROM pg_indexes WHERE schemaname = %s AND tablename = %s", (SCHEMA, collection_name)
            )
        }
        hits = (
            Engine(settings, model=fake_model)
            .search(collection_name, "topic3 term5", SearchParams(k=5), conn=conn)
            .hits
        )
    assert {f"{collection_name}_embedding_hnsw", f"{collection_name}_tsv_gin"} <= indexes
    assert len(hits) == 5


def test_failed_replacement_leaves_the_old_version_of_each_document_whole(
    settings, collection_name, fake_model, write_crash
):
    Engine(settings, model=fake_model).ingest(collection_name, corpus("v1"), CHUNKING)
    write_crash.armed = True
    with pytest.raises(SimulatedCrash):
        Engine(settings, model=fake_model).ingest(collection_name, corpus("v2"), CHUNKING)
    with open_primary(settings) as conn:
        assert len(assert_consistent(conn, collection_name)) == N_DOCUMENTS
        mixed = conn.execute(
            sql.SQL(
                "SELECT count(*) FROM (SELECT document_id FROM {} GROUP BY document_id "
                "HAVING count(DISTINCT metadata ->> 'version') > 1) m"
            ).format(sql.Identifier(SCHEMA, collection_name))
        ).fetchone()[0]
        versions = dict(
            conn.execute(
                sql.SQL("SELECT metadata ->> 'version', count(DISTINCT document_id) FROM {} GROUP BY 1").format(
                    sql.Identifier(SCHEMA, collection_name)
                )
            ).fetchall()
        )
    assert mixed == 0
    replaced = len(write_crash.batches[0])
    assert versions == {"v2": replaced, "v1": N_DOCUMENTS - replaced}
