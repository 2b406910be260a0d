"""Shared fixtures: one Postgres per test session, a fresh collection per test.

The session's server is the embedded PostgreSQL 18, or DATABASE_URL when set, or with
TEST_SERVER=postgres15 a throwaway Debian PostgreSQL 15 cluster (tests/postgres15.py):
`make test` runs the integration suite on both, the oldest and the newest server supported.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
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

TEST_SERVERS = ("postgres15",)
"""Values of TEST_SERVER: a server the session starts for itself in place of the embedded one."""


def pytest_report_header() -> list[str]:
    import langchain_core
    import psycopg

    server = os.environ.get("TEST_SERVER") or ("DATABASE_URL" if os.environ.get("DATABASE_URL") else "embedded")
    return [f"psycopg {psycopg.__version__}, langchain-core {langchain_core.__version__}, test server: {server}"]


@contextmanager
def _test_server() -> Iterator[None]:
    """With TEST_SERVER=postgres15, DATABASE_URL names a throwaway PostgreSQL 15 cluster until exit.

    It goes into os.environ, not only into the session's Settings, so that code reading the
    environment (Settings.from_env, get_settings, the CLI in a subprocess) reaches it too.
    """
    server = os.environ.get("TEST_SERVER")
    if not server:
        yield
        return
    if server not in TEST_SERVERS:
        pytest.fail(f"TEST_SERVER={server!r} is none of {', '.join(TEST_SERVERS)}")
    from postgres15 import postgres15_cluster  # late: pytest must import its plugin first to rewrite its asserts

    with postgres15_cluster() as cluster, pytest.MonkeyPatch.context() as patch:
        patch.setenv("DATABASE_URL", cluster.database_url)
        yield


@pytest.fixture(scope="session")
def settings() -> Iterator[Settings]:
    """Settings pointing at the session's server: embedded Postgres, DATABASE_URL, or TEST_SERVER's cluster."""
    # Outside pytest-of-<user>: pytest resets that folder to 0700 whenever another session starts,
    # which would lock out the `pgserver` user the embedded Postgres runs as under root.
    home = Path(tempfile.mkdtemp(prefix="hybrid-rag-tests-"))
    os.environ["HYBRID_RAG_HOME"] = str(home)
    with _test_server():
        get_settings.cache_clear()
        current = Settings.from_env()
        primary_dsn(current)
        yield current
        if not current.database_url:
            stop_embedded(home)
    get_settings.cache_clear()
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def server_started_here(settings: Settings) -> bool:
    """Whether the tests started the session's server on this machine (the embedded one or TEST_SERVER's cluster):
    then its local connections trust any role and its data directory is here; DATABASE_URL's may be neither."""
    return not settings.database_url or bool(os.environ.get("TEST_SERVER"))


@pytest.fixture
def without_unaccent(settings: Settings) -> None:
    """Skips the test on a server with the unaccent extension: what a server without it does is checked on the
    embedded one, which lacks it (TEST_SERVER=postgres15 has it)."""
    with open_primary(settings) as conn:
        available = conn.execute(_UNACCENT_AVAILABLE).fetchone()[0]
    if available:
        pytest.skip("this server has the unaccent extension; a server without it is the embedded one")


_UNACCENT_AVAILABLE = "SELECT count(*) FROM pg_available_extensions WHERE name = 'unaccent'"


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


def collection_state_of(settings: Settings, name: str) -> dict[str, list[tuple]]:
    """Everything an ingest of a set of documents determines in collection `name`, independent of
    insertion order and of how posting blocks were cut: documents and hashes, chunks, postings (a
    posting of no chunk shows with id None), document frequencies and the BM25 statistics. Two
    collections with equal states rank text alike."""
    tables = {
        "chunks": sql.Identifier("hybrid_rag", name),
        **{suffix: sql.Identifier("hybrid_rag", f"{name}__{suffix}") for suffix in ("documents", "postings", "terms")},
    }
    with open_primary(settings) as conn:
        return {
            label: conn.execute(sql.SQL(statement).format(**tables), {"name": name}).fetchall()
            for label, statement in COLLECTION_STATE.items()
        }


@pytest.fixture
def collection_state(settings: Settings):
    """`state(name)`: `collection_state_of` the session's server."""
    return lambda name: collection_state_of(settings, name)


COLLECTION_STATE = {
    "documents": "SELECT document_id, hash, chunk_count FROM {documents} ORDER BY 1",
    "chunks": "SELECT id, document_id, content_hash, metadata::text FROM {chunks} ORDER BY 1",
    "postings": """
        SELECT p.term, c.id, k.tf, k.length
        FROM {postings} p CROSS JOIN unnest(p.chunk_keys, p.tfs, p.lengths) AS k(key, tf, length)
        LEFT JOIN {chunks} c ON c.anchor = p.anchor AND c.key = k.key  -- on Citus, the blocks' shard is their chunks'
        ORDER BY 1, 2, 3, 4""",
    "document frequencies": "SELECT term, df FROM {terms} WHERE df > 0 ORDER BY 1",
    "statistics": "SELECT chunk_count, total_length FROM hybrid_rag.collections WHERE name = %(name)s",
}
