"""The one boundary where lower-level errors become ours: `map_errors`, around every engine operation.

psycopg's errors go by SQLSTATE (the table is `retriever.errors.database_error`), the
pool's timeout and lost connections are the database being unreachable, a connection the
server refuses for its DSN is a configuration error, the ingest package's input
errors are the caller's, and the embedding service's go by
`retriever.errors.embedding_service_error`. The CLI and HTTP then map ours once more, to exit codes and
problem details.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import psycopg

from ingest import IngestInputError
from retriever.errors import ConfigurationError, HybridRagError, InputError, database_error, embedding_service_error
from retriever.store.database import mask_dsn

__all__ = ["map_errors"]

# libpq's FATAL answers at connect that say the DSN itself is wrong (a database, role or password)
_REFUSED = re.compile(
    r"FATAL: +(database .* does not exist|role .* does not exist|password authentication failed"
    r"|no pg_hba\.conf entry|role .* is not permitted to log in)"
)


@contextlib.contextmanager
def map_errors() -> Iterator[None]:
    """Translate lower-level errors into ours: the one boundary where that happens.

    psycopg's go by SQLSTATE (the table is `retriever.errors.database_error`): outages and
    timeouts become `DatabaseUnavailable`, data exceptions `InputError`, PostgreSQL's limits
    `LimitExceeded`, faults an operator must fix `DatabaseFault`; the ingest package's input
    errors become `InputError`.
    """
    try:
        yield
    except HybridRagError:
        raise
    except IngestInputError as exc:
        raise InputError(str(exc)) from None
    except psycopg.Error as exc:
        text = str(exc).strip()
        line = mask_dsn(text.splitlines()[0] if text else type(exc).__name__)
        sqlstate = getattr(exc, "sqlstate", None)  # None: psycopg's own refusals, lost connections, the pool
        if sqlstate is None and isinstance(exc, psycopg.DataError):
            sqlstate = "22000"  # a value psycopg cannot send (a NUL character)
        elif sqlstate is None and "number of parameters must be between" in line:
            sqlstate = "54000"  # libpq's own limit of 65535 bind parameters
        elif sqlstate is None and _REFUSED.search(line):  # the server answered: retrying will not help
            raise ConfigurationError(f"the database refused the connection: {line}; check DATABASE_URL") from exc
        elif sqlstate is None and isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)):
            sqlstate = "08000"  # could not connect, connection lost, no pooled connection in time
        raise database_error(sqlstate, line, operational=isinstance(exc, psycopg.OperationalError)) from exc
    except Exception as exc:
        ours = embedding_service_error(exc)  # the OpenAI client's, when a remote model embeds
        if ours is None:
            raise
        raise ours from exc
