"""Shared fixtures: one embedded Postgres per test session, a fresh collection per test."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from langchain_core.embeddings import Embeddings
from psycopg import sql

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from retriever.connections import open_primary
from retriever.embeddings import EmbeddingModel
from retriever.errors import CollectionNotFound
from retriever.settings import Settings, get_settings
from retriever.store.collections import drop_collection
from retriever.store.database import primary_dsn
from retriever.store.embedded import stop_embedded


def pytest_report_header() -> list[str]:
    import langchain_core
    import psycopg

    return [f"psycopg {psycopg.__version__}, langchain-core {langchain_core.__version__}"]


@pytest.fixture(scope="session")
def settings() -> Iterator[Settings]:
    """Settings pointing at a session-wide embedded Postgres (or DATABASE_URL when set)."""
    # Outside pytest-of-<user>: pytest resets that folder to 0700 whenever another session starts,
    # which would lock out the `pgserver` user the embedded Postgres runs as under root.
    home = Path(tempfile.mkdtemp(prefix="hybrid-rag-tests-"))
    os.environ["HYBRID_RAG_HOME"] = str(home)
    get_settings.cache_clear()
    current = Settings.from_env()
    primary_dsn(current)
    yield current
    if not current.database_url:
        stop_embedded(home)
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def collection_name(settings: Settings) -> Iterator[str]:
    """A fresh collection name; the collection is dropped after the test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    with open_primary(settings) as conn:
        try:
            drop_collection(conn, name)
        except CollectionNotFound:
            pass


@pytest.fixture
def names(settings: Settings) -> Iterator[list[str]]:
    """A list a test appends the collection names it makes to; every one is dropped afterwards."""
    made: list[str] = []
    yield made
    with open_primary(settings) as conn:
        for name in made:
            drop_collection(conn, name)


class HashEmbeddings(Embeddings):
    """Deterministic fake embeddings (bag of hashed words): only for tests that do not judge ranking."""

    def __init__(self, dimensions: int = 32) -> None:
        self.dimensions = dimensions

    def _one(self, text: str) -> list[float]:
        vector = np.zeros(self.dimensions, dtype=np.float32)
        for word in text.lower().split():
            vector[int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dimensions] += 1.0
        norm = float(np.linalg.norm(vector)) or 1.0
        return (vector / norm).tolist()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._one(text) for text in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._one(text)


@pytest.fixture(scope="session")
def fake_model() -> EmbeddingModel:
    """A tiny deterministic model for tests of plumbing, not of ranking quality."""
    return EmbeddingModel("test:hash-32", HashEmbeddings())


@pytest.fixture(scope="session")
def local_model(settings: Settings) -> EmbeddingModel:
    """The real packaged all-MiniLM-L6-v2, loaded once."""
    from retriever.embeddings import get_embedding_model

    return get_embedding_model(settings)


@pytest.fixture
def fake_embeddings(monkeypatch, fake_model: EmbeddingModel) -> EmbeddingModel:
    """`hybrid-rag bench` uses the fake model: those tests check plumbing, not speed or ranking."""
    import bench.cli

    monkeypatch.setattr(bench.cli, "get_embedding_model", lambda settings: fake_model)
    return fake_model


@pytest.fixture
def collection_state(settings: Settings):
    """`state(name)`: everything an ingest of a set of documents determines in a collection, independent of
    insertion order and of how posting blocks were cut: documents and hashes, chunks, live postings,
    document frequencies and the BM25 statistics. Two collections with equal states rank text alike."""

    def state(name: str) -> dict[str, object]:
        tables = {
            "chunks": sql.Identifier("hybrid_rag", name),
            **{
                suffix: sql.Identifier("hybrid_rag", f"{name}__{suffix}")
                for suffix in ("documents", "postings", "terms", "tombstones")
            },
        }
        with open_primary(settings) as conn:
            return {
                label: conn.execute(sql.SQL(statement).format(**tables), {"name": name}).fetchall()
                for label, statement in COLLECTION_STATE.items()
            }

    return state


COLLECTION_STATE = {
    "documents": "SELECT document_id, hash, chunk_count FROM {documents} ORDER BY 1",
    "chunks": "SELECT id, document_id, content_hash, metadata::text FROM {chunks} ORDER BY 1",
    "live postings": """
        SELECT p.term, c.id, k.tf, k.length
        FROM {postings} p CROSS JOIN unnest(p.chunk_keys, p.tfs, p.lengths) AS k(key, tf, length)
        JOIN {chunks} c ON c.key = k.key
        WHERE NOT EXISTS (SELECT FROM {tombstones} d WHERE d.key = k.key)
        ORDER BY 1, 2""",
    "document frequencies": "SELECT term, df FROM {terms} WHERE df > 0 ORDER BY 1",
    "statistics": "SELECT chunk_count, total_length FROM hybrid_rag.collections WHERE name = %(name)s",
}
