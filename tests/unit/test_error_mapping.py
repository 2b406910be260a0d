"""psycopg's errors become ours by SQLSTATE, in `map_errors`: outages and timeouts say retry,
the caller's data is an input error, faults an operator must fix say so and what to do."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors as pg_errors
from psycopg_pool import PoolTimeout

from ingest import IngestInputError
from retriever.engine import map_errors
from retriever.errors import (
    CollectionNotFound,
    ConfigurationError,
    DatabaseDiskFull,
    DatabaseFault,
    DatabaseUnavailable,
    EmbeddingsUnavailable,
    HybridRagError,
    InputError,
    InvalidName,
    LimitExceeded,
)


def mapped(exc: BaseException) -> BaseException:
    """What leaves `map_errors` when `exc` is raised inside it."""
    try:
        with map_errors():
            raise exc
    except BaseException as caught:  # whatever comes out is the answer
        return caught
    raise AssertionError("map_errors swallowed the error")


def database(sqlstate: str, message: str) -> psycopg.Error:
    return pg_errors.lookup(sqlstate)(message)


# one row per SQLSTATE code or class that `map_errors` classifies:
# (SQLSTATE, the database's message, our class, words our message must hold)
ROWS = [
    # passing trouble: retry later
    ("08006", "server closed the connection unexpectedly", DatabaseUnavailable, "database unreachable"),
    ("57P01", "terminating connection due to administrator command", DatabaseUnavailable, "database unreachable"),
    ("57P02", "terminating connection because of crash of another server process", DatabaseUnavailable, "unreachable"),
    ("57P03", "the database system is starting up", DatabaseUnavailable, "database unreachable"),
    ("57P05", "terminating connection due to idle-session timeout", DatabaseUnavailable, "database unreachable"),
    ("53300", "sorry, too many clients already", DatabaseUnavailable, "accepts no more connections"),
    ("57014", "canceling statement due to statement timeout", DatabaseUnavailable, "did not answer in time"),
    ("55P03", "canceling statement due to lock timeout", DatabaseUnavailable, "did not grant a lock in time"),
    ("40P01", "deadlock detected", DatabaseUnavailable, "aborted the transaction over a conflict"),
    # the caller's input
    ("22000", "different vector dimensions 3 and 4", InputError, "the database rejected a value"),
    ("22021", 'invalid byte sequence for encoding "UTF8": 0xff', InputError, "the database rejected a value"),
    ("54000", "string is too long for tsvector (1048577 bytes, max 1048575 bytes)", LimitExceeded, "PostgreSQL limit"),
    ("54001", "statement is too complex", LimitExceeded, "over a PostgreSQL limit"),
    # faults an operator must fix: what happened, and what to do
    (
        "53100",
        'could not extend file "base/5/16384": No space left on device',
        DatabaseDiskFull,
        'disk is full (could not extend file "base/5/16384": No space left on device): free disk space',
    ),
    ("53200", "out of memory", DatabaseFault, "ran out of memory"),
    ("53400", "too many ... max_locks_per_transaction", DatabaseFault, "reached a configured limit"),
    ("53000", "insufficient resources", DatabaseFault, "ran out of a resource"),
    ("58030", 'could not read block 0 in file "base/5/16384": Input/output error', DatabaseFault, "check its disks"),
    ("58P01", 'could not access file "vector": No such file or directory', DatabaseFault, "is missing"),
    ("58000", "could not fork new process", DatabaseFault, "operating-system level"),
    ("XX001", 'invalid page in block 7 of relation "base/5/16384"', DatabaseFault, "restore the table from a backup"),
    ("XX002", 'index "t_tsv_gin" contains unexpected zero page', DatabaseFault, "REINDEX"),
    ("XX000", "unexpected chunk number 1", DatabaseFault, "failed internally"),
    # Citus, when a worker is lost inside a distributed transaction (no SQLSTATE of its own)
    ("XX000", "failure on connection marked as essential: 10.0.0.7:5432", DatabaseUnavailable, "unreachable"),
    ("F0000", "configuration file contains errors", DatabaseFault, "configuration file is broken"),
    (
        "42501",
        "permission denied for table docs",
        DatabaseFault,
        "lacks a privilege (permission denied for table docs)",
    ),
    ("25006", "cannot execute INSERT in a read-only transaction", DatabaseFault, "point DATABASE_URL at the primary"),
]


@pytest.mark.parametrize(("sqlstate", "message", "ours", "words"), ROWS, ids=[row[0] for row in ROWS])
def test_each_classified_sqlstate_becomes_its_error_with_the_database_line(sqlstate, message, ours, words):
    error = database(sqlstate, message + "\nDETAIL:  the second line stays out")
    result = mapped(error)
    assert type(result) is ours
    assert words in str(result) and message in str(result)
    assert "\n" not in str(result)
    assert result.__cause__ is error


@pytest.mark.parametrize(("sqlstate", "message", "ours", "words"), ROWS, ids=[row[0] for row in ROWS])
def test_only_outages_and_timeouts_say_unreachable_or_retry(sqlstate, message, ours, words):
    result = mapped(database(sqlstate, message))
    assert isinstance(result, DatabaseUnavailable) == (ours is DatabaseUnavailable)
    if not isinstance(result, DatabaseUnavailable):
        assert "unreachable" not in str(result)


def test_a_full_disk_says_what_happened_and_what_to_do_in_one_line():
    result = mapped(pg_errors.DiskFull('could not extend file "base/16384/16385": No space left on device'))
    assert str(result) == (
        'the database server\'s disk is full (could not extend file "base/16384/16385": No space left on device): '
        "free disk space on it, then retry"
    )
    assert isinstance(result, DatabaseFault) and result.summary == "the database server's disk is full"


@pytest.mark.parametrize(
    "error",
    [
        psycopg.OperationalError('connection to server at "10.1.2.3", port 5432 failed: Connection refused'),
        psycopg.OperationalError("consuming input failed: server closed the connection unexpectedly"),
        psycopg.InterfaceError("the connection is closed"),
        PoolTimeout("couldn't get a connection after 3.00 sec"),
    ],
)
def test_connection_level_errors_without_a_sqlstate_are_the_database_being_unreachable(error):
    assert error.sqlstate is None
    result = mapped(error)
    assert type(result) is DatabaseUnavailable
    assert str(result).startswith("database unreachable: ") and str(error).splitlines()[0] in str(result)


def test_libpqs_own_limit_of_65535_parameters_is_an_input_limit_not_an_outage():
    error = psycopg.OperationalError(
        "sending query and params failed: number of parameters must be between 0 and 65535"
    )
    result = mapped(error)
    assert type(result) is LimitExceeded
    assert "65535" in str(result) and "unreachable" not in str(result)


def test_a_value_psycopg_refuses_to_send_is_an_input_error():
    result = mapped(psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes"))
    assert type(result) is InputError and "NUL" in str(result)


def test_a_table_gone_between_registry_and_statement_is_a_dropped_collection():
    result = mapped(pg_errors.UndefinedTable('relation "hybrid_rag.x" does not exist'))
    assert type(result) is CollectionNotFound and "dropped" in str(result)


def test_an_unclassified_operational_error_still_says_retry_but_not_unreachable():
    result = mapped(pg_errors.ObjectInUse('database "x" is being accessed by other users'))
    assert type(result) is DatabaseUnavailable
    assert str(result) == 'the database could not run the statement: database "x" is being accessed by other users'


@pytest.mark.parametrize(
    "error",
    [
        pg_errors.UndefinedColumn('column "x" does not exist'),
        pg_errors.UniqueViolation("duplicate key value violates unique constraint"),
        psycopg.ProgrammingError("query parameter missing: filter_0"),
    ],
)
def test_any_other_database_error_is_a_fault_named_in_one_line_never_a_traceback(error):
    result = mapped(error)
    assert type(result) is DatabaseFault and result.__cause__ is error
    assert str(error).splitlines()[0] in str(result) and "\n" not in str(result)


@pytest.mark.parametrize(
    "message",
    [
        'connection to server at "db" (10.0.0.1), port 5432 failed: FATAL:  database "rag" does not exist',
        'connection to server on socket "/tmp/.s.PGSQL.5432" failed: FATAL:  role "bob" does not exist',
        'connection to server at "db", port 5432 failed: FATAL:  password authentication failed for user "u"',
        'connection to server at "db", port 5432 failed: FATAL:  no pg_hba.conf entry for host "10.0.0.2"',
    ],
)
def test_a_connection_the_server_refuses_for_its_dsn_is_a_configuration_error_not_an_outage(message):
    result = mapped(psycopg.OperationalError(message))
    assert type(result) is ConfigurationError
    assert "DATABASE_URL" in str(result) and "unreachable" not in str(result)


@pytest.mark.parametrize(
    "error",
    [
        psycopg.OperationalError('connection to server failed: FATAL: password=hunter2 is wrong for "u"'),
        psycopg.OperationalError("could not connect to postgresql://admin:hunter2@db.internal:5432/rag"),
        pg_errors.DiskFull("could not write postgresql://admin:hunter2@db/rag: No space left on device"),
        pg_errors.InsufficientPrivilege("permission denied (password=hunter2)"),
    ],
)
def test_passwords_in_database_messages_are_masked(error):
    result = mapped(error)
    assert isinstance(result, HybridRagError)
    assert "hunter2" not in str(result) and "****" in str(result)


def test_our_errors_pass_and_the_ingest_packages_input_errors_become_ours():
    ours = InvalidName("bad name")
    assert mapped(ours) is ours
    result = mapped(IngestInputError("no such file: notes.md"))
    assert type(result) is InputError and str(result) == "no such file: notes.md"


def _openai_errors() -> list[tuple[Exception, type[HybridRagError]]]:
    import httpx
    import openai

    request = httpx.Request("POST", "https://embeddings.example/v1/embeddings")

    def status(kind: type[openai.APIStatusError], code: int) -> openai.APIStatusError:
        return kind("refused", response=httpx.Response(code, request=request), body=None)

    return [
        (openai.APIConnectionError(request=request), EmbeddingsUnavailable),
        (openai.APITimeoutError(request=request), EmbeddingsUnavailable),
        (status(openai.RateLimitError, 429), EmbeddingsUnavailable),
        (status(openai.InternalServerError, 500), EmbeddingsUnavailable),
        (status(openai.AuthenticationError, 401), ConfigurationError),
        (status(openai.NotFoundError, 404), ConfigurationError),
        (status(openai.BadRequestError, 400), InputError),
    ]


def test_the_embedding_services_errors_become_ours_outages_apart_from_refusals():
    for error, ours in _openai_errors():
        result = mapped(error)
        assert type(result) is ours, (error, result)
        assert "embedding service" in str(result) and "\n" not in str(result)


def test_other_errors_pass_through_unchanged():
    error = RuntimeError("a bug")
    assert mapped(error) is error
