"""The embedded Postgres sizes its cache for the machine once, and keeps an operator's choice."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import psycopg
import pytest

from retriever.database import open_primary
from retriever.embedded import embedded_dsn, shared_buffers_mb, stop_embedded

_SHARED_BUFFERS_MB = "SELECT setting::bigint * 8 / 1024 FROM pg_settings WHERE name = 'shared_buffers'"  # 8 kB pages


def test_the_embedded_server_caches_a_quarter_of_memory_not_the_128_mb_default(settings):
    if settings.database_url:
        pytest.skip("DATABASE_URL names an external server")
    with open_primary(settings) as conn:
        assert conn.execute(_SHARED_BUFFERS_MB).fetchone()[0] == shared_buffers_mb()
    assert 128 <= shared_buffers_mb() <= 4096


def test_a_size_set_by_an_operator_survives_restarts(settings):
    if settings.database_url:
        pytest.skip("DATABASE_URL names an external server")
    home = Path(tempfile.mkdtemp(prefix="hybrid-rag-embedded-"))
    home.chmod(0o755)  # the server runs as its own user under root
    try:
        with psycopg.connect(embedded_dsn(home), autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET shared_buffers = '200MB'")
        stop_embedded(home)
        with psycopg.connect(embedded_dsn(home)) as conn:
            assert conn.execute(_SHARED_BUFFERS_MB).fetchone()[0] == 200
    finally:
        stop_embedded(home)
        shutil.rmtree(home, ignore_errors=True)
