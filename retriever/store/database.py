"""Where the database is, and how one connection to it is opened and configured."""

from __future__ import annotations

import re
import threading

import psycopg
from pgvector.psycopg import register_vector, register_vector_async
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from retriever.errors import ConfigurationError
from retriever.settings import Settings
from retriever.store.embedded import embedded_dsn

__all__ = ["configure", "configure_async", "connect", "mask_dsn", "primary_dsn", "read_dsns", "with_timeouts"]

_dsn_cache: dict[str, str] = {}
_dsn_lock = threading.Lock()


def primary_dsn(settings: Settings) -> str:
    """DATABASE_URL, or the embedded server's DSN (started on first use)."""
    if settings.database_url:
        return settings.database_url
    key = str(settings.data_home)
    with _dsn_lock:  # one start per process: pgserver's start-up lock is not thread-safe
        if key not in _dsn_cache:
            _dsn_cache[key] = embedded_dsn(settings.data_home)
    return _dsn_cache[key]


def read_dsns(settings: Settings) -> tuple[str, ...]:
    """DSNs that serve searches: the read replicas when configured, else the primary."""
    return settings.database_read_urls or (primary_dsn(settings),)


def mask_dsn(text: str) -> str:
    """Hide passwords in DSNs and libpq messages before they reach a user or a log."""
    text = re.sub(r"(://[^:/@\s]*:)[^@\s]*@", r"\1****@", text)
    return re.sub(r"(password\s*=\s*)\S+", r"\1****", text, flags=re.IGNORECASE)


def configure(conn: psycopg.Connection) -> None:
    """Register pgvector types on a fresh connection (the extension is created by migrations)."""
    register_vector(conn)


async def configure_async(conn: psycopg.AsyncConnection) -> None:
    """Async twin of `configure`."""
    await register_vector_async(conn)


def connect(dsn: str, *, register: bool = True) -> psycopg.Connection:
    """Open one autocommit connection (transactions are explicit blocks), pgvector types registered.

    Raises `ConfigurationError` for a DSN libpq cannot parse, psycopg's errors otherwise.
    """
    try:
        conn = psycopg.connect(dsn, autocommit=True, connect_timeout=10)
    except psycopg.ProgrammingError as exc:  # libpq could not parse the connection string
        raise ConfigurationError(f"invalid database URL: {mask_dsn(str(exc).strip())}") from None
    if register:
        try:
            configure(conn)
        except BaseException:
            conn.close()
            raise
    return conn


def with_timeouts(dsn: str, settings: Settings) -> str:
    """The DSN with the per-statement timeout and a bounded connect, for every session it opens (the API's)."""
    options = conninfo_to_dict(dsn).get("options") or ""
    timeout = f"-c statement_timeout={settings.statement_timeout_ms}"
    connect_s = max(2, int(settings.pool_timeout_s + 0.999))
    return make_conninfo(dsn, options=f"{options} {timeout}".strip(), connect_timeout=connect_s)
