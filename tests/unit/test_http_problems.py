"""The one exception handler: each error class becomes its problem details, and nothing leaks."""

from __future__ import annotations

import logging

import psycopg
import pytest
from litestar import Litestar, get
from litestar.testing import TestClient
from psycopg import errors as pg_errors
from psycopg_pool import PoolTimeout

from retriever.engine import map_errors
from retriever.errors import (
    CollectionNotFound,
    ConfigurationError,
    DatabaseDiskFull,
    DatabaseFault,
    DatabaseUnavailable,
    DocumentNotFound,
    EmbeddingMismatch,
    EmbeddingsUnavailable,
    InputError,
    InvalidFilter,
    InvalidName,
    LimitExceeded,
)
from retriever.http.problems import PROBLEM_JSON, problem_response


def raising(exc: Exception) -> TestClient:
    @get("/boom")
    async def boom() -> None:
        raise exc

    return TestClient(Litestar([boom], exception_handlers={Exception: problem_response}, logging_config=None))


@pytest.mark.parametrize(
    ("exc", "status", "type_"),
    [
        (CollectionNotFound("no collection named 'x'"), 404, "collection-not-found"),
        (DocumentNotFound("no document 'd'"), 404, "document-not-found"),
        (EmbeddingMismatch("built with other embeddings"), 409, "embedding-mismatch"),
        (InvalidFilter("unknown filter operator '$x'"), 422, "invalid-filter"),
        (InvalidName("invalid collection name"), 422, "invalid-name"),
        (LimitExceeded("k must be between 1 and 100"), 422, "limit-exceeded"),
        (InputError("the query is empty"), 422, "invalid-input"),
    ],
)
def test_our_client_errors_keep_their_message(exc, status, type_):
    with raising(exc) as client:
        response = client.get("/boom")
    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json() == {
        "type": f"urn:hybrid-rag:problem:{type_}",
        "title": response.json()["title"],
        "status": status,
        "detail": str(exc),
        "instance": "/boom",
    }


def unreachable() -> DatabaseUnavailable:
    try:
        with map_errors():
            raise psycopg.OperationalError('connection to server at "10.1.2.3", port 5432 failed: password=hunter2')
    except DatabaseUnavailable as exc:
        return exc
    raise AssertionError


def timed_out() -> DatabaseUnavailable:
    try:
        with map_errors():
            raise pg_errors.QueryCanceled("canceling statement due to statement timeout")
    except DatabaseUnavailable as exc:
        return exc
    raise AssertionError


@pytest.mark.parametrize(
    ("exc", "detail"),
    [
        (unreachable(), "the database is unreachable"),
        (timed_out(), "the database did not answer in time"),
        (DatabaseUnavailable("every write slot stayed busy; retry later"), "every write slot stayed busy; retry later"),
        (
            EmbeddingsUnavailable("the embedding service is unavailable (Connection error.): retry later"),
            "the embedding service is unavailable (Connection error.): retry later",
        ),
    ],
)
def test_database_trouble_is_503_with_retry_after_and_no_internals(exc, detail):
    with raising(exc) as client:
        response = client.get("/boom")
    assert response.status_code == 503
    assert response.headers["retry-after"] == str(DatabaseUnavailable.retry_after_s)
    assert response.json()["detail"] == detail
    assert "10.1.2.3" not in response.text and "hunter2" not in response.text


def through_map_errors(error: Exception) -> Exception:
    """Our error for a driver's error, as the engine raises it."""
    try:
        with map_errors():
            raise error
    except Exception as exc:
        return exc
    raise AssertionError


@pytest.mark.parametrize(
    ("error", "detail"),
    [
        (
            pg_errors.LockNotAvailable("canceling statement due to lock timeout"),
            "the database did not grant a lock in time",
        ),
        (pg_errors.TooManyConnections("sorry, too many clients already"), "the database accepts no more connections"),
        (PoolTimeout("couldn't get a connection after 3.00 sec"), "no database connection became free in time"),
    ],
)
def test_passing_database_trouble_says_what_it_was_in_general_terms(error, detail):
    with raising(through_map_errors(error)) as client:
        response = client.get("/boom")
    assert response.status_code == 503 and response.headers["retry-after"]
    assert response.json()["detail"] == detail


@pytest.mark.parametrize(
    ("error", "status", "type_", "detail"),
    [
        (
            pg_errors.DiskFull('could not extend file "base/16384/16385": No space left on device'),
            507,
            "database-disk-full",
            "the database server's disk is full",
        ),
        (
            pg_errors.InsufficientPrivilege("permission denied for table secret_table"),
            500,
            "database-fault",
            "the database role lacks a privilege",
        ),
        (
            pg_errors.IndexCorrupted('index "secret_table_tsv_gin" contains unexpected zero page at block 3'),
            500,
            "database-fault",
            "the database reports a corrupted index",
        ),
        (
            pg_errors.OutOfMemory("out of memory: Failed on request of size 16 in memory context secret_ctx"),
            500,
            "database-fault",
            "the database server ran out of memory",
        ),
    ],
)
def test_a_database_fault_is_a_5xx_in_plain_words_without_retry_after_and_logged_with_what_to_do(
    error, status, type_, detail, caplog
):
    exc = through_map_errors(error)
    assert isinstance(exc, DatabaseFault)
    with caplog.at_level(logging.ERROR, logger="retriever.http.problems"), raising(exc) as client:
        response = client.get("/boom")
    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM_JSON
    assert "retry-after" not in response.headers
    assert response.json() == {
        "type": f"urn:hybrid-rag:problem:{type_}",
        "title": response.json()["title"],
        "status": status,
        "detail": detail,
        "instance": "/boom",
    }
    assert "secret" not in response.text and "base/16384" not in response.text
    assert str(exc) in caplog.text  # the database's words and what to do, for the operator


def test_a_database_fault_raised_directly_keeps_its_message():
    with raising(DatabaseDiskFull("the volume /data is full: free space")) as client:
        response = client.get("/boom")
    assert response.status_code == 507 and response.json()["detail"] == "the volume /data is full: free space"


@pytest.mark.parametrize(
    ("error", "type_", "words"),
    [
        (
            pg_errors.DataException("different vector dimensions 3 and 4"),
            "invalid-input",
            "different vector dimensions",
        ),
        (
            pg_errors.ProgramLimitExceeded("string is too long for tsvector (1048577 bytes, max 1048575 bytes)"),
            "limit-exceeded",
            "string is too long for tsvector",
        ),
    ],
)
def test_data_the_database_rejects_is_a_422_with_its_first_line(error, type_, words):
    with raising(through_map_errors(error)) as client:
        response = client.get("/boom")
    assert response.status_code == 422 and "retry-after" not in response.headers
    assert response.json()["type"] == f"urn:hybrid-rag:problem:{type_}"
    assert words in response.json()["detail"]


@pytest.mark.parametrize("exc", [RuntimeError("secret internals at /srv/app.py"), ConfigurationError("bad EMBEDDINGS")])
def test_unexpected_errors_are_a_bare_500_and_logged(exc, caplog):
    with caplog.at_level(logging.ERROR, logger="retriever.http.problems"), raising(exc) as client:
        response = client.get("/boom")
    assert response.status_code == 500
    assert response.json() == {
        "type": "about:blank",
        "title": "Internal Server Error",
        "status": 500,
        "instance": "/boom",
    }
    assert "Traceback" not in response.text and str(exc) not in response.text
    assert str(exc) in caplog.text
