"""Every error the API returns, as RFC 9457 problem details, from ONE exception handler.

our error                    status   type (urn:hybrid-rag:problem:…)
CollectionNotFound           404      collection-not-found
DocumentNotFound             404      document-not-found
EmbeddingMismatch            409      embedding-mismatch
CollectionIncomplete         409      collection-incomplete
InvalidFilter                422      invalid-filter
InvalidName                  422      invalid-name
LimitExceeded                422      limit-exceeded         (also PostgreSQL's: SQLSTATE class 54, 65535 parameters)
other InputError             422      invalid-input          (also values the database rejects: SQLSTATE class 22)
DatabaseUnavailable          503      database-unavailable   (+ Retry-After; general terms, the driver's line is logged)
EmbeddingsUnavailable        503      embeddings-unavailable (+ Retry-After: the embedding service is unreachable)
DatabaseDiskFull             507      database-disk-full     (the database server's disk is full: no Retry-After)
DatabaseFault                500      database-fault         (what happened in plain words; the database's line and
                                                             what to do are logged, for the operator; no Retry-After)
Litestar: malformed body     400      malformed-request      (also JSON nested too deeply to decode)
Litestar: failed validation  422      invalid-request        (+ errors: [{message, key, source}]; the detail names
                                                             the first; bodies are checked strictly, see routes)
Litestar: body too large     413      request-too-large
Litestar: other 4xx          as is    about:blank            (401 adds WWW-Authenticate, 405 keeps Allow)
anything else                500      about:blank            (logged; no details leave the process)
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import psycopg
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import Example
from msgspec import Struct
from psycopg_pool import PoolTimeout

from retriever.errors import (
    CollectionIncomplete,
    CollectionNotFound,
    DatabaseDiskFull,
    DatabaseFault,
    DatabaseUnavailable,
    DocumentNotFound,
    EmbeddingMismatch,
    EmbeddingsUnavailable,
    HybridRagError,
    InputError,
    InvalidFilter,
    InvalidName,
    LimitExceeded,
    NotFound,
)

__all__ = ["PROBLEM_JSON", "FieldError", "Problem", "problem_response", "problem_responses"]

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
_URN = "urn:hybrid-rag:problem:"


class FieldError(Struct):
    """One field that failed validation, and where it was (body, path, query, header)."""

    message: str
    key: str | None = None
    source: str | None = None


class Problem(Struct, omit_defaults=True):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldError] | None = None


# (status, type slug, title), most specific class first
_OURS: tuple[tuple[type[Exception], int, str, str], ...] = (
    (CollectionNotFound, 404, "collection-not-found", "Collection not found"),
    (DocumentNotFound, 404, "document-not-found", "Document not found"),
    (NotFound, 404, "not-found", "Not found"),
    (EmbeddingMismatch, 409, "embedding-mismatch", "Collection built with other embeddings"),
    (CollectionIncomplete, 409, "collection-incomplete", "Collection not completely loaded"),
    (InvalidFilter, 422, "invalid-filter", "Invalid filter"),
    (InvalidName, 422, "invalid-name", "Invalid collection name"),
    (LimitExceeded, 422, "limit-exceeded", "Over a configured limit"),
    (InputError, 422, "invalid-input", "Invalid input"),
    (DatabaseUnavailable, 503, "database-unavailable", "Database unavailable"),
    (EmbeddingsUnavailable, 503, "embeddings-unavailable", "Embedding service unavailable"),
    (DatabaseDiskFull, 507, "database-disk-full", "Database disk full"),
    (DatabaseFault, 500, "database-fault", "Database fault"),
)


def _ours(request: Request, exc: HybridRagError) -> Response[Problem]:
    found = next((entry for entry in _OURS if isinstance(exc, entry[0])), None)
    if found is None:  # ConfigurationError or a future class: the operator's problem, not the client's
        return _unexpected(request, exc)
    _, status, slug, title = found
    headers: dict[str, str] = {}
    detail = str(exc)
    # the database's own words name hosts, sockets, files and roles: log them, answer in plain words
    if isinstance(exc, DatabaseFault):
        log.error("%s %s: %s", request.method, request.url.path, exc)  # says what the operator must do
        detail = exc.summary or detail
    if isinstance(exc, (DatabaseUnavailable, EmbeddingsUnavailable)):
        headers["Retry-After"] = str(exc.retry_after_s)
        if isinstance(exc, DatabaseUnavailable) and exc.summary:  # ours: its plain words, no hosts
            detail = exc.summary
        if isinstance(exc.__cause__, psycopg.Error):
            log.warning("%s %s: %s", request.method, request.url.path, exc)
            detail = exc.summary or "the database is unreachable"
            if isinstance(exc.__cause__, PoolTimeout):
                detail = "no database connection became free in time"
    return _problem(request, status, _URN + slug, title, detail, headers=headers)


def _litestar(request: Request, exc: HTTPException) -> Response[Problem]:
    status = exc.status_code
    if status >= 500:
        return _unexpected(request, exc)
    headers = dict(exc.headers or {})
    if isinstance(exc, ValidationException):
        errors = [_field_error(item) for item in exc.extra or [] if isinstance(item, dict)]  # type: ignore[union-attr]
        detail = "the request does not match the schema"
        if errors:  # name the field: "k: Expected `int`, got `str`"
            first = errors[0]
            detail += f" ({first.key}: {first.message})" if first.key else f" ({first.message})"
        return _problem(request, 422, _URN + "invalid-request", "Invalid request", detail, errors=errors or None)
    if status == 400:
        return _problem(request, 400, _URN + "malformed-request", "Malformed request", exc.detail, headers=headers)
    if status == 413:
        detail = "the request body is larger than MAX_REQUEST_BYTES"
        return _problem(request, 413, _URN + "request-too-large", "Request too large", detail, headers=headers)
    if status == 401:
        headers.setdefault("WWW-Authenticate", 'Bearer realm="hybrid-rag"')
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Client error"
    detail = exc.detail if exc.detail and exc.detail != phrase else None
    return _problem(request, status, "about:blank", phrase, detail, headers=headers)


def _field_error(item: dict[str, Any]) -> FieldError:
    def text(key: str) -> str | None:
        value = item.get(key)
        return None if value is None else str(getattr(value, "value", value))

    return FieldError(message=text("message") or "invalid value", key=text("key"), source=text("source"))


def _unexpected(request: Request, exc: Exception) -> Response[Problem]:
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return _problem(request, 500, "about:blank", "Internal Server Error", None)


def _problem(
    request: Request,
    status: int,
    type_: str,
    title: str,
    detail: str | None,
    *,
    headers: dict[str, str] | None = None,
    errors: list[FieldError] | None = None,
) -> Response[Problem]:
    return Response(
        Problem(type=type_, title=title, status=status, detail=detail, instance=request.url.path, errors=errors),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def problem_response(request: Request, exc: Exception) -> Response[Problem]:
    """The app's one exception handler: our errors, Litestar's and the unexpected, as problem details."""
    if isinstance(exc, HybridRagError):
        return _ours(request, exc)
    if isinstance(exc, HTTPException):
        return _litestar(request, exc)
    if isinstance(exc, RecursionError):  # how the JSON decoder refuses a body nested hundreds of levels deep
        log.warning("%s %s: %s", request.method, request.url.path, exc)
        detail = "the body nests too deeply"
        return _problem(request, 400, _URN + "malformed-request", "Malformed request", detail)
    return _unexpected(request, exc)


_EXAMPLES: dict[int, tuple[str, str, str]] = {
    400: ("malformed-request", "Malformed request", "JSON is malformed: invalid character (byte 12)"),
    401: ("", "Unauthorized", "missing or invalid API key"),
    404: ("collection-not-found", "Collection not found", "no collection named 'demo'"),
    409: ("embedding-mismatch", "Collection built with other embeddings", "collection 'demo' was built with ..."),
    413: ("request-too-large", "Request too large", "the request body is larger than MAX_REQUEST_BYTES"),
    422: ("invalid-filter", "Invalid filter", "unknown filter operator '$regex' on 'lang'"),
    500: ("database-fault", "Database fault", "the database server ran out of memory"),
    503: ("database-unavailable", "Database unavailable", "the database is unreachable"),
    507: ("database-disk-full", "Database disk full", "the database server's disk is full"),
}

_DESCRIPTIONS = {
    400: "Malformed request: a body that is not JSON, or an invalid Host header (on any endpoint)",
    401: "Missing or wrong API key",
    404: "Unknown collection or document (also for collections outside the key's scope)",
    409: "The collection was built with other embeddings than the server's, or its load is unfinished",
    413: "Request body over MAX_REQUEST_BYTES",
    422: "Invalid request: wrong types, unknown fields, bad filter, or over a configured limit",
    500: "The database answered with an error an operator must fix (memory, files, privileges, corruption)",
    503: "Database or embedding service unreachable or too slow; retry after Retry-After seconds",
    507: "The database server's disk is full; an operator must free space",
}


def problem_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI entries for the problem responses an endpoint can give."""
    specs: dict[int, ResponseSpec] = {}
    for status in statuses:
        slug, title, detail = _EXAMPLES[status]
        example: dict[str, Any] = {
            "type": _URN + slug if slug else "about:blank",
            "title": title,
            "status": status,
            "instance": "/v1/collections/demo/search",
        }
        if detail:
            example["detail"] = detail
        specs[status] = ResponseSpec(
            data_container=Problem,
            description=_DESCRIPTIONS[status],
            media_type=PROBLEM_JSON,
            generate_examples=False,
            examples=[Example(summary=title, value=example)],
        )
    return specs
