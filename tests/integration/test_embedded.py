"""The embedded Postgres sizes its cache for the machine once, and keeps an operator's choice."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import psycopg
import pytest

from retriever.connections import open_primary
from retriever.store.embedded import embedded_dsn, shared_buffers_mb, stop_embedded

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


def test_a_server_that_cannot_start_with_more_shared_buffers_starts_with_the_default(settings, monkeypatch):
    if settings.database_url:
        pytest.skip("DATABASE_URL names an external server")
    import pgserver

    real_pg_ctl, failures = pgserver.pg_ctl, []

    def first_restart_fails(args, **kwargs):  # as when the larger shared memory cannot be mapped
        if args[-1] == "restart" and not failures:
            failures.append(args)
            real_pg_ctl(["-w", "-m", "fast", "stop"], **kwargs)
            raise RuntimeError("could not map anonymous shared memory")
        return real_pg_ctl(args, **kwargs)

    monkeypatch.setattr(pgserver, "pg_ctl", first_restart_fails)
    home = Path(tempfile.mkdtemp(prefix="hybrid-rag-embedded-"))
    home.chmod(0o755)
    try:
        with psycopg.connect(embedded_dsn(home)) as conn:
            assert conn.execute(_SHARED_BUFFERS_MB).fetchone()[0] == 128
        assert failures
        stop_embedded(home)
        with psycopg.connect(embedded_dsn(home)) as conn:  # and is not resized again
            assert conn.execute(_SHARED_BUFFERS_MB).fetchone()[0] == 128
    finally:
        stop_embedded(home)
        shutil.rmtree(home, ignore_errors=True)
