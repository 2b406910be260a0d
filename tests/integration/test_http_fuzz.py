"""Schema-driven fuzzing: schemathesis generates requests from the app's own OpenAPI document.

For every operation, three runs of at most 30 derandomized cases each: the document's own
examples, requests that match the schema, and requests that break it. No response may be a
5xx, every response must match the document (status code, content type, body, headers),
requests that break the schema must be rejected, and the /v1 routes must refuse requests
without a valid key. (Strategies are driven through Hypothesis directly: schemathesis'
`from_fixture` loader does not run under pytest 9.)
"""

from __future__ import annotations

import dataclasses

import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from ingest import ChunkingConfig, SourceDocument
from retriever import Engine
from retriever.connections import open_primary
from retriever.http import create_app
from retriever.store.collections import drop_collection, list_collections

KEY = "fuzz-key-0123456789"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
    ignored_auth,
]


OPERATIONS = [
    ("POST", "/v1/collections/{name}/search"),
    ("POST", "/v1/collections/{name}/documents"),
    ("DELETE", "/v1/collections/{name}/documents/{document_id}"),
    ("GET", "/v1/collections/{name}/documents"),
    ("GET", "/v1/collections/{name}/documents/{document_id}"),
    ("POST", "/v1/collections/{name}/delete"),
    ("GET", "/v1/collections"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("DELETE", "/v1/collections/{name}"),  # last: its examples drop `demo`
]


@pytest.fixture(scope="module")
def api_schema(settings, fake_model):
    """The app's OpenAPI document, over a `demo` collection holding the documents its examples name."""
    app_settings = dataclasses.replace(settings, api_keys=(KEY,), max_documents_per_request=8, pool_timeout_s=5.0)
    with open_primary(settings) as conn:
        before = {c.name for c in list_collections(conn)}
    documents = [
        SourceDocument(
            "/srv/corpus/astronomy/first-telescope.md",
            "Aperture matters more than magnification.",
            "Telescopes",
            "fuzz",
            {"topic": "astronomy", "year": 2024},
        ),
        SourceDocument("faq-espresso", "Grind finer when the shot runs fast.", None, "fuzz", {"topic": "coffee"}),
    ]
    Engine(app_settings, model=fake_model).ingest("demo", documents, ChunkingConfig())
    try:
        yield schemathesis.openapi.from_asgi("/schema/openapi.json", create_app(app_settings, model=fake_model))
    finally:
        shutdown_lifespans()  # closes the app's pool
        with open_primary(settings) as conn:
            for collection in list_collections(conn):
                if collection.name not in before:  # `demo` and whatever the fuzzer created
                    drop_collection(conn, collection.name)


def strategies(operation, phase: str) -> list:
    if phase == "examples":
        return operation.get_strategies_from_examples()
    mode = GenerationMode.POSITIVE if phase == "valid" else GenerationMode.NEGATIVE
    return [operation.as_strategy(generation_mode=mode)]


RUNS = [
    (method, path, phase)
    for method, path in OPERATIONS
    for phase in ("examples", "valid", "invalid")
    if not (phase == "invalid" and path in ("/healthz", "/readyz"))  # nothing there to make invalid
]


@pytest.mark.parametrize(("method", "path", "phase"), RUNS, ids=[f"{m} {p} {ph}" for m, p, ph in RUNS])
def test_api_conforms_to_its_openapi_document(api_schema, method, path, phase):
    operation = api_schema[path][method]
    found = strategies(operation, phase)
    if phase == "examples" and method != "GET":
        assert found, "every operation with parameters or a body has examples"

    @given(case=st.one_of(found) if found else st.nothing())
    @hypothesis_settings(
        max_examples=30,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture],
    )
    def run(case) -> None:
        case.call_and_validate(headers={"Authorization": f"Bearer {KEY}"}, checks=CHECKS)

    if found:
        run()
