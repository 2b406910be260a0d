"""Connections: where the database is, how a connection is configured, and error mapping."""

from __future__ import annotations

import contextlib
import itertools
import re
from collections.abc import Iterator

import psycopg
from pgvector.psycopg import register_vector, register_vector_async
from psycopg import errors as pg_errors

from retriever.embedded import embedded_dsn
from retriever.errors import ConfigurationError, DatabaseUnavailable, HybridRagError
from retriever.settings import Settings

__all__ = [
    "configure",
    "configure_async",
    "connect",
    "map_errors",
    "mask_dsn",
    "open_primary",
    "open_reader",
    "primary_dsn",
    "read_dsns",
]

_dsn_cache: dict[str, str] = {}


def primary_dsn(settings: Settings) -> str:
    """DATABASE_URL, or the embedded server's DSN (started on first use)."""
    if settings.database_url:
        return settings.database_url
    key = str(settings.data_home)
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
    """Register pgvector types on a fresh connection (extension created by migrations)."""
    register_vector(conn)


async def configure_async(conn: psycopg.AsyncConnection) -> None:
    """Async twin of `configure`."""
    await register_vector_async(conn)


def connect(dsn: str, *, autocommit: bool = True, register: bool = True) -> psycopg.Connection:
    """Open one configured connection (autocommit: transactions are explicit blocks)."""
    with map_errors():
        try:
            conn = psycopg.connect(dsn, autocommit=autocommit, connect_timeout=10)
        except psycopg.ProgrammingError as exc:  # libpq could not parse the connection string
            raise ConfigurationError(f"invalid database URL: {mask_dsn(str(exc).strip())}") from None
        if register:
            configure(conn)
        return conn


@contextlib.contextmanager
def map_errors() -> Iterator[None]:
    """Translate psycopg's errors into ours: the one boundary where that happens."""
    try:
        yield
    except HybridRagError:
        raise
    except pg_errors.QueryCanceled as exc:
        raise DatabaseUnavailable("the database did not answer in time (statement timeout)") from exc
    except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatabaseUnavailable(f"database unreachable: {mask_dsn(first_line)}") from exc


_migrated: set[str] = set()
_reader_turn = itertools.count()


def open_primary(settings: Settings) -> psycopg.Connection:
    """A connection for writes and schema changes; the schema is migrated on first use."""
    from retriever.migrations import migrate

    dsn = primary_dsn(settings)
    conn = connect(dsn, register=False)
    with map_errors():
        if dsn not in _migrated:
            migrate(conn)
            _migrated.add(dsn)
        configure(conn)
    return conn


def open_reader(settings: Settings) -> psycopg.Connection:
    """A connection for searches: the read replicas in turn when configured, else the primary."""
    if not settings.database_read_urls:
        return open_primary(settings)
    dsns = settings.database_read_urls
    return connect(dsns[next(_reader_turn) % len(dsns)])
