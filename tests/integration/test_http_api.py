"""The HTTP API over the embedded Postgres: every endpoint, every error class, API keys and their scopes."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from urllib.parse import quote

import pytest
from litestar.testing import AsyncTestClient

from retriever import Engine
from retriever.connections import open_primary
from retriever.http import create_app
from retriever.results import SearchParams

KEY = "test-key-0123456789"
SCOPED = "scoped-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
PROBLEM = "application/problem+json"

DOCUMENTS = [
    {
        "id": "astronomy/telescope.md",
        "title": "Choosing a first telescope",
        "text": "A telescope for a beginner: aperture matters more than magnification.",
        "metadata": {"topic": "astronomy", "year": 2024},
    },
    {
        "id": "coffee/espresso.md",
        "title": "Espresso basics",
        "text": "Grind finer when the espresso shot runs fast; aim for thirty seconds.",
        "metadata": {"topic": "coffee", "year": 2021},
    },
    {
        "id": "faq-1",
        "text": "Twinkling stars and steady planets: atmospheric turbulence.",
        "metadata": {"topic": "astronomy"},
    },
]


@pytest.fixture
def api_settings(settings, collection_name):
    return dataclasses.replace(settings, api_keys=(KEY, f"{SCOPED}@{collection_name}"), max_documents_per_request=5)


@pytest.fixture
async def client(api_settings, fake_model) -> AsyncIterator[AsyncTestClient]:
    async with AsyncTestClient(create_app(api_settings, model=fake_model)) as client:
        yield client


@pytest.fixture
async def filled(client, collection_name) -> str:
    response = await client.post(
        f"/v1/collections/{collection_name}/documents", json={"documents": DOCUMENTS}, headers=AUTH
    )
    assert response.status_code == 200, response.text
    return collection_name


def assert_problem(response, status: int, type_suffix: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status and body["title"]
    assert "Traceback" not in response.text
    if type_suffix is not None:
        assert body["type"] == f"urn:hybrid-rag:problem:{type_suffix}"
    return body


# --- endpoints ---------------------------------------------------------------------------------------------


async def test_healthz_answers_without_a_key(client):
    response = await client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


async def test_readyz_says_ready_when_the_database_answers(client):
    response = await client.get("/readyz")
    assert response.status_code == 200 and response.json() == {"status": "ready"}


async def test_posting_documents_creates_the_collection_and_reports_what_it_did(client, collection_name):
    first = await client.post(
        f"/v1/collections/{collection_name}/documents", json={"documents": DOCUMENTS}, headers=AUTH
    )
    again = await client.post(
        f"/v1/collections/{collection_name}/documents", json={"documents": DOCUMENTS}, headers=AUTH
    )
    assert first.status_code == 200, first.text
    assert first.json()["document_ids"] == ["astronomy/telescope.md", "coffee/espresso.md", "faq-1"]
    assert (first.json()["new_documents"], first.json()["new_chunks"]) == (3, 3)
    assert (again.json()["new_chunks"], again.json()["unchanged_documents"]) == (0, 3)


async def test_a_document_without_id_gets_a_stable_one(client, collection_name):
    body = {"documents": [{"text": "no id here, only text"}]}
    first = await client.post(f"/v1/collections/{collection_name}/documents", json=body, headers=AUTH)
    again = await client.post(f"/v1/collections/{collection_name}/documents", json=body, headers=AUTH)
    assert first.json()["document_ids"] == again.json()["document_ids"]
    assert again.json()["unchanged_documents"] == 1


async def test_search_returns_the_cli_json_shape(client, filled, api_settings, fake_model):
    response = await client.post(
        f"/v1/collections/{filled}/search", json={"query": "espresso grind", "k": 2}, headers=AUTH
    )
    assert response.status_code == 200, response.text
    body = response.json()
    with open_primary(api_settings) as conn:
        expected = (
            Engine(api_settings, model=fake_model).search(filled, "espresso grind", SearchParams(k=2), conn=conn)
        ).to_json()
    assert set(body) == {"results", "took_ms"}
    assert [hit["id"] for hit in body["results"]] == [hit["id"] for hit in expected["results"]]
    assert body["results"][0]["document_id"] == "coffee/espresso.md"
    assert set(body["results"][0]) == {"id", "document_id", "content", "metadata", "score", "vector_rank", "text_rank"}


async def test_search_applies_filter_mode_and_weights(client, filled):
    response = await client.post(
        f"/v1/collections/{filled}/search",
        json={
            "query": "telescope espresso",
            "mode": "text",
            "filter": {"topic": {"$in": ["coffee"]}, "year": {"$gte": 2020}},
            "weights": {"vector": 0, "text": 1},
            "candidates": 10,
            "rrf_k": 10,
        },
        headers=AUTH,
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [hit["document_id"] for hit in results] == ["coffee/espresso.md"]
    assert results[0]["vector_rank"] is None and results[0]["text_rank"] == 1


async def test_search_like_a_document_leaves_that_document_out(client, filled):
    response = await client.post(
        f"/v1/collections/{filled}/search", json={"like": "astronomy/telescope.md", "k": 10}, headers=AUTH
    )
    assert response.status_code == 200, response.text
    ids = [hit["document_id"] for hit in response.json()["results"]]
    assert ids and "astronomy/telescope.md" not in ids


async def test_deleting_a_document_removes_it_from_searches(client, filled):
    response = await client.delete(f"/v1/collections/{filled}/documents/astronomy/telescope.md", headers=AUTH)
    assert response.status_code == 204 and response.content == b""
    found = await client.post(f"/v1/collections/{filled}/search", json={"query": "telescope", "k": 10}, headers=AUTH)
    assert "astronomy/telescope.md" not in [hit["document_id"] for hit in found.json()["results"]]
    again = await client.delete(f"/v1/collections/{filled}/documents/astronomy%2Ftelescope.md", headers=AUTH)
    assert_problem(again, 404, "document-not-found")


@pytest.mark.parametrize("document_id", ["/abs/path.md", "dir//twice", "dir/", "with space?&#.md", "ünï/cødé"])
async def test_any_document_id_can_be_deleted(client, collection_name, document_id):
    body = {"documents": [{"id": document_id, "text": "a document with an awkward id"}]}
    assert (await client.post(f"/v1/collections/{collection_name}/documents", json=body, headers=AUTH)).is_success
    as_sent = "/".join(quote(part, safe="") for part in document_id.split("/"))  # slashes left as they are
    response = await client.delete(f"/v1/collections/{collection_name}/documents/{as_sent}", headers=AUTH)
    assert response.status_code == 204, response.text
    again = await client.delete(
        f"/v1/collections/{collection_name}/documents/{quote(document_id, safe='')}", headers=AUTH
    )
    assert_problem(again, 404, "document-not-found")
    assert repr(document_id) in again.json()["detail"]


async def test_collections_lists_names_counts_and_model(client, filled):
    response = await client.get("/v1/collections", headers=AUTH)
    assert response.status_code == 200
    mine = [c for c in response.json()["collections"] if c["name"] == filled]
    assert mine == [
        {
            "name": filled,
            "chunks": 3,
            "embedding_model": "test:hash-32",
            "dimensions": 32,
            "text_config": "english",
            "complete": True,
            "language": "english",
            "accent_insensitive": False,
            "vector_index": {"kind": "hnsw", "storage": "vector", "m": 16, "ef_construction": 64},
        }
    ]


async def test_openapi_document_declares_examples_security_and_problems(client):
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "one of the keys in the server's API_KEYS",
    }
    operations = [(path, method, op) for path, item in schema["paths"].items() for method, op in item.items()]
    assert {(path, method) for path, method, _ in operations} == {
        ("/v1/collections/{name}/search", "post"),
        ("/v1/collections/{name}/documents", "post"),
        ("/v1/collections/{name}/documents", "get"),
        ("/v1/collections/{name}/documents/{document_id}", "get"),
        ("/v1/collections/{name}/documents/{document_id}", "delete"),
        ("/v1/collections/{name}/delete", "post"),
        ("/v1/collections/{name}", "delete"),
        ("/v1/collections", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
    }
    for path, method, op in operations:
        success = next(code for code in op["responses"] if code.startswith("2"))
        if success != "204":
            assert op["responses"][success]["content"]["application/json"]["examples"], (path, method)
        if "requestBody" in op:
            body_schema = op["requestBody"]["content"]["application/json"]["schema"]
            name = (body_schema.get("$ref") or body_schema["allOf"][0]["$ref"]).rsplit("/", 1)[1]
            assert body_schema.get("examples") or schema["components"]["schemas"][name].get("examples"), (path, method)
        for code, response_spec in op["responses"].items():
            if code.startswith(("4", "5")):
                assert list(response_spec["content"]) == [PROBLEM], (path, method, code)
        assert (op.get("security") == [{"bearer": []}]) == path.startswith("/v1"), (path, method)
    request_examples = schema["components"]["schemas"]["SearchRequest"]["examples"]
    assert any("like" in example for example in request_examples)
    assert schema["components"]["schemas"]["SearchRequest"]["additionalProperties"] is False


# --- errors ------------------------------------------------------------------------------------------------


async def test_unknown_collection_is_404(client):
    response = await client.post("/v1/collections/no_such_collection/search", json={"query": "x"}, headers=AUTH)
    body = assert_problem(response, 404, "collection-not-found")
    assert body["detail"] == "no collection named 'no_such_collection'"
    assert body["instance"] == "/v1/collections/no_such_collection/search"


async def test_unknown_like_document_is_404(client, filled):
    response = await client.post(f"/v1/collections/{filled}/search", json={"like": "nope"}, headers=AUTH)
    assert_problem(response, 404, "document-not-found")


async def test_malformed_json_is_400(client, filled):
    response = await client.post(
        f"/v1/collections/{filled}/search", content=b'{"query": ', headers={**AUTH, "Content-Type": "application/json"}
    )
    assert_problem(response, 400, "malformed-request")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"query": 42}, "query"),
        ({"query": "x", "k": "ten"}, "k"),
        ({"query": "x", "k": 0}, "k"),
        ({"query": "x", "mode": "fuzzy"}, "mode"),
        ({"query": "x", "weights": {"vector": -1}}, "weights"),
        ({"query": "x", "querry": "typo"}, None),
        ([1, 2], None),
    ],
)
async def test_bad_types_and_unknown_fields_are_422_with_the_field(client, filled, body, field):
    response = await client.post(f"/v1/collections/{filled}/search", json=body, headers=AUTH)
    problem = assert_problem(response, 422, "invalid-request")
    assert problem["errors"] and all(error["source"] == "body" for error in problem["errors"])
    if field is not None:
        assert field in json.dumps(problem["errors"])


async def test_unknown_filter_operator_is_422(client, filled):
    response = await client.post(
        f"/v1/collections/{filled}/search", json={"query": "x", "filter": {"lang": {"$regex": "e.*"}}}, headers=AUTH
    )
    body = assert_problem(response, 422, "invalid-filter")
    assert "$regex" in body["detail"]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"query": "x", "like": "faq-1"},
        {"query": "   "},
        {"query": "nul \u0000 inside"},
        {"query": "x", "filter": {"topic": "nul\u0000"}},
        {"query": "x", "weights": {"vector": 0, "text": 0}},
    ],
)
async def test_semantically_invalid_searches_are_422(client, filled, body):
    response = await client.post(f"/v1/collections/{filled}/search", json=body, headers=AUTH)
    assert_problem(response, 422, "invalid-input")


def nested(depth: int, leaf: object) -> object:
    for _ in range(depth):
        leaf = {"$and": [leaf]}
    return leaf


async def test_deeply_nested_bodies_are_client_errors(client, filled):
    deep_filter = {"query": "x", "mode": "text", "filter": nested(40, {"topic": "coffee"})}
    response = await client.post(f"/v1/collections/{filled}/search", json=deep_filter, headers=AUTH)
    assert_problem(response, 422, "invalid-input")
    assert response.json()["detail"] == "filter nests deeper than 32 levels"
    too_deep_to_decode = b'{"query": "x", "filter": ' + b'{"a": [' * 3000 + b"1" + b"]}" * 3000 + b"}"
    response = await client.post(f"/v1/collections/{filled}/search", content=too_deep_to_decode, headers=AUTH)
    assert_problem(response, 400, "malformed-request")
    shallow = {"query": "espresso", "mode": "text", "filter": nested(10, {"topic": "coffee"})}
    assert (await client.post(f"/v1/collections/{filled}/search", json=shallow, headers=AUTH)).status_code == 200


@pytest.mark.parametrize(
    "body",
    [{"query": "x", "k": 101}, {"query": "x", "candidates": 1001}, {"query": "x" * 2001}],
)
async def test_parameters_over_the_configured_limits_are_422(client, filled, body):
    response = await client.post(f"/v1/collections/{filled}/search", json=body, headers=AUTH)
    body = assert_problem(response, 422, "limit-exceeded")
    assert "limit" in body["detail"] or "between" in body["detail"]


async def test_more_documents_than_allowed_per_request_is_422(client, collection_name):
    body = {"documents": [{"text": f"document {i}"} for i in range(6)]}
    response = await client.post(f"/v1/collections/{collection_name}/documents", json=body, headers=AUTH)
    assert_problem(response, 422, "limit-exceeded")


@pytest.mark.parametrize(
    "document",
    [{"text": "  "}, {"text": "x", "id": "  "}, {"text": "x", "metadata": {"k": "a\u0000b"}}],
)
async def test_invalid_documents_are_422_and_nothing_is_written(client, collection_name, document):
    body = {"documents": [{"id": "fine", "text": "a fine document"}, document]}
    response = await client.post(f"/v1/collections/{collection_name}/documents", json=body, headers=AUTH)
    assert_problem(response, 422, "invalid-input")
    listed = await client.get("/v1/collections", headers=AUTH)
    assert collection_name not in [c["name"] for c in listed.json()["collections"]]


async def test_duplicate_ids_in_one_request_are_422(client, collection_name):
    body = {"documents": [{"id": "same", "text": "one"}, {"id": "same", "text": "two"}]}
    response = await client.post(f"/v1/collections/{collection_name}/documents", json=body, headers=AUTH)
    body = assert_problem(response, 422, "invalid-input")
    assert "duplicate" in body["detail"]


async def test_body_over_max_request_bytes_is_413(settings, fake_model, collection_name):
    small = dataclasses.replace(settings, api_keys=(KEY,), max_request_bytes=1000)
    async with AsyncTestClient(create_app(small, model=fake_model)) as client:
        body = {"documents": [{"text": "x" * 2000}]}
        response = await client.post(f"/v1/collections/{collection_name}/documents", json=body, headers=AUTH)
    assert_problem(response, 413, "request-too-large")


async def test_collection_built_with_other_embeddings_is_409(client, filled, settings, local_model):
    other = dataclasses.replace(settings, api_keys=(KEY,))
    async with AsyncTestClient(create_app(other, model=local_model)) as real:
        response = await real.post(f"/v1/collections/{filled}/search", json={"query": "telescope"}, headers=AUTH)
    body = assert_problem(response, 409, "embedding-mismatch")
    assert "test:hash-32" in body["detail"]


async def test_invalid_collection_name_is_422(client):
    response = await client.post("/v1/collections/Not-Valid/search", json={"query": "x"}, headers=AUTH)
    body = assert_problem(response, 422, "invalid-request")
    assert body["errors"][0]["key"] == "name" and body["errors"][0]["source"] == "path"


async def test_unknown_route_and_wrong_method_are_problems_too(client, filled):
    missing = await client.get("/v2/anything", headers=AUTH)
    assert_problem(missing, 404)
    wrong = await client.put(f"/v1/collections/{filled}/search", json={"query": "x"}, headers=AUTH)
    assert_problem(wrong, 405)
    assert "POST" in wrong.headers["allow"]


# --- API keys ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong-key"}, {"Authorization": KEY}, {"Authorization": f"Basic {KEY}"}],
    ids=["no key", "wrong key", "no scheme", "basic scheme"],
)
async def test_v1_needs_a_valid_bearer_key(client, filled, headers):
    for response in (
        await client.post(f"/v1/collections/{filled}/search", json={"query": "x"}, headers=headers),
        await client.get("/v1/collections", headers=headers),
        await client.delete(f"/v1/collections/{filled}/documents/faq-1", headers=headers),
    ):
        assert_problem(response, 401)
        assert response.headers["www-authenticate"].startswith("Bearer")
    still_there = await client.post(f"/v1/collections/{filled}/search", json={"query": "twinkling"}, headers=AUTH)
    assert "faq-1" in [hit["document_id"] for hit in still_there.json()["results"]]


async def test_auth_is_checked_before_the_body(client, filled):
    response = await client.post(f"/v1/collections/{filled}/search", content=b"not json")
    assert_problem(response, 401)


async def test_scoped_key_uses_its_collection(client, filled):
    response = await client.post(
        f"/v1/collections/{filled}/search", json={"query": "telescope"}, headers={"Authorization": f"Bearer {SCOPED}"}
    )
    assert response.status_code == 200 and response.json()["results"]


async def test_scoped_key_cannot_tell_other_collections_from_missing_ones(client, filled, api_settings, fake_model):
    other = "t_other_" + filled[-6:]
    created = await client.post(f"/v1/collections/{other}/documents", json={"documents": DOCUMENTS[:1]}, headers=AUTH)
    assert created.status_code == 200
    scoped = {"Authorization": f"Bearer {SCOPED}"}
    try:
        hidden = await client.post(f"/v1/collections/{other}/search", json={"query": "x"}, headers=scoped)
        missing = await client.post("/v1/collections/t_missing_zz/search", json={"query": "x"}, headers=AUTH)
        assert_problem(hidden, 404, "collection-not-found")
        assert {k: v for k, v in hidden.json().items() if k not in ("detail", "instance")} == {
            k: v for k, v in missing.json().items() if k not in ("detail", "instance")
        }
        assert hidden.json()["detail"] == f"no collection named {other!r}"
        for response in (
            await client.post(f"/v1/collections/{other}/documents", json={"documents": DOCUMENTS[:1]}, headers=scoped),
            await client.delete(f"/v1/collections/{other}/documents/astronomy/telescope.md", headers=scoped),
        ):
            assert_problem(response, 404, "collection-not-found")
        listed = await client.get("/v1/collections", headers=scoped)
        assert [c["name"] for c in listed.json()["collections"]] == [filled]
    finally:
        from retriever.store.collections import drop_collection

        with open_primary(api_settings) as conn:
            drop_collection(conn, other)


async def test_without_api_keys_the_api_is_open(settings, fake_model):
    async with AsyncTestClient(create_app(dataclasses.replace(settings, api_keys=()), model=fake_model)) as client:
        response = await client.get("/v1/collections")
        schema = (await client.get("/schema/openapi.json")).json()
    assert response.status_code == 200
    assert all("security" not in op for item in schema["paths"].values() for op in item.values())


async def test_writes_borrow_connections_from_the_api_pool(client, collection_name, api_settings):
    response = await client.post(
        f"/v1/collections/{collection_name}/documents", json={"documents": DOCUMENTS[:1]}, headers=AUTH
    )
    assert response.status_code == 200, response.text
    response = await client.delete(f"/v1/collections/{collection_name}/documents/faq-1", headers=AUTH)
    assert response.status_code == 404  # not there: the lookup itself ran on a pooled connection

    writes = client.app.state.engine._pools.writes
    assert writes.max_size == max(3, api_settings.pool_size)
    assert writes.get_stats()["requests_num"] >= 2


async def test_an_invalid_host_header_is_a_documented_400_problem_on_every_endpoint(client):
    schema = (await client.get("/schema/openapi.json")).json()
    for method, path in (("get", "/v1/collections"), ("get", "/healthz"), ("get", "/readyz")):
        response = await client.request(method.upper(), path, headers={**AUTH, "host": "bad>host"})
        assert_problem(response, 400, "malformed-request")
        assert "400" in schema["paths"][path][method]["responses"]
