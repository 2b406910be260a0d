"""Searches go to DATABASE_READ_URL: a real streaming replica of the embedded Postgres."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest import ChunkingConfig, SourceDocument
from retriever import Engine
from retriever.connections import open_primary
from retriever.results import SearchParams
from retriever.settings import Settings
from retriever.store.database import primary_dsn

pgserver = pytest.importorskip("pgserver")


def _as_postgres_user(args: list[str]) -> list[str]:
    # As root, the embedded server runs as the `pgserver` system user; its replica must too.
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return ["runuser", "-u", "pgserver", "--", *args]
    return args


@pytest.fixture
def replica(settings: Settings) -> Iterator[str]:
    """Start a streaming replica (pg_basebackup -R) on its own unix socket; yield its DSN."""
    if settings.database_url:
        pytest.skip("the replica test clones the embedded Postgres")
    open_primary(settings).close()  # schema and pgvector exist before the clone
    primary_socket = primary_dsn(settings).split("host=")[1]
    folder = Path(tempfile.mkdtemp(prefix="hybrid-rag-replica-"))  # reachable by the `pgserver` user
    folder.chmod(0o777)
    data = folder / "data"
    binaries = Path(pgserver.__file__).parent / "pginstall" / "bin"
    if os.geteuid() == 0:
        shutil.chown(folder, "pgserver")
    subprocess.run(
        _as_postgres_user(
            [
                str(binaries / "pg_basebackup"),
                "-h",
                primary_socket,
                "-U",
                "postgres",
                "-D",
                str(data),
                "-R",
                "-X",
                "stream",
            ]
        ),
        check=True,
        capture_output=True,
    )
    subprocess.run(
        _as_postgres_user(
            [
                str(binaries / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(folder / "log"),
                "-w",
                "-o",
                f"-h '' -k {folder}",
                "start",
            ]
        ),
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql://postgres:@/postgres?host={folder}"
    finally:
        subprocess.run(
            _as_postgres_user([str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]),
            check=False,
            capture_output=True,
        )
        shutil.rmtree(folder, ignore_errors=True)


def test_search_served_by_the_replica_sees_new_documents(settings, collection_name, fake_model, replica):
    routed = Settings(home=settings.home, database_read_urls=(replica,))
    with Engine(routed).reader() as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone()[0] is True

    documents = [SourceDocument("fresh", "replicated streaming standby answers searches", "Replica", "t", {})]
    Engine(routed, model=fake_model).ingest(collection_name, documents, ChunkingConfig())

    deadline = time.monotonic() + 30
    hits = []
    while time.monotonic() < deadline and not hits:
        with Engine(routed).reader() as conn:
            try:
                hits = (
                    Engine(routed, model=fake_model)
                    .search(collection_name, "standby searches", SearchParams(k=3), conn=conn)
                    .hits
                )
            except Exception:  # the collection itself may not have replicated yet
                hits = []
        time.sleep(0.2)
    assert [hit.document_id for hit in hits] == ["fresh"]
