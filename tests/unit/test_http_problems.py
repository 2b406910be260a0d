"""The one exception handler: each error class becomes its problem details, and nothing leaks."""

from __future__ import annotations

import logging

import psycopg
import pytest
from litestar import Litestar, get
from litestar.testing import TestClient
from psycopg import errors as pg_errors

from retriever.engine import map_errors
from retriever.errors import (
    CollectionNotFound,
    ConfigurationError,
    DatabaseUnavailable,
    DocumentNotFound,
    EmbeddingMismatch,
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
    ],
)
def test_database_trouble_is_503_with_retry_after_and_no_internals(exc, detail):
    with raising(exc) as client:
        response = client.get("/boom")
    assert response.status_code == 503
    assert response.headers["retry-after"] == str(DatabaseUnavailable.retry_after_s)
    assert response.json()["detail"] == detail
    assert "10.1.2.3" not in response.text and "hunter2" not in response.text


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
