"""Request bodies are strictly typed: a value of the wrong JSON type is a 422 naming the field, never coerced.

Litestar decodes bodies in msgspec's lax mode, which took "5" for 5, "true" or 1 for true and "null" for null.
The table covers every field of every body (SearchRequest, Weights, AddDocuments, DocumentIn) with values of each
wrong type, and the right types, ints for floats included, are still accepted.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator

import pytest
from litestar.testing import AsyncTestClient

from retriever.http import create_app

KEY = "strict-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
PROBLEM = "application/problem+json"

# wrong values for a field of each JSON type: numerals and words in strings, booleans, numbers, containers, null
NOT_INT = ["5", "5.0", "true", True, False, 5.5, [5], {"value": 5}, None]
NOT_FLOAT = ["1", "0.5", "true", True, [1], {"value": 1}, None]
NOT_BOOL = ["true", "false", "1", "0", 1, 0, 1.0, [True], {"value": True}, None]
NOT_STR = [5, 5.5, True, ["text"], {"text": "x"}]
NOT_OBJECT = ["{}", '{"topic": "coffee"}', "null", "", 5, True, [{"topic": "coffee"}]]
NOT_LIST = ["[]", '[{"text": "x"}]', "", 5, True, {"text": "x"}]

SEARCH = {"query": "vacuum"}
DOCUMENT = {"text": "a document about vacuum pumps"}


def cases() -> list[tuple[str, object, str]]:
    """(endpoint, body, the key the problem must name) for every field and every wrong type."""
    table: list[tuple[str, object, str]] = []

    def search(field: str, values: list[object], base: dict | None = None) -> None:
        table.extend(("search", {**(SEARCH if base is None else base), field: value}, field) for value in values)

    search("query", [*NOT_STR, None], base={})
    search("like", [*NOT_STR, None], base={})
    search("k", NOT_INT)
    search("mode", [*NOT_STR, None])
    search("filter", NOT_OBJECT)
    search("candidates", NOT_INT)
    search("rrf_k", NOT_INT)
    search("weights", NOT_OBJECT)
    search("collapse", NOT_BOOL)
    for field in ("vector", "text"):  # Weights
        table.extend(("search", {**SEARCH, "weights": {field: value}}, f"weights.{field}") for value in NOT_FLOAT)
    table.extend(("documents", {"documents": value}, "documents") for value in [*NOT_LIST, None])  # AddDocuments
    table.extend(("documents", {"documents": [value]}, "documents[0]") for value in ["x", 5, True, None, []])
    for field, values in (  # DocumentIn, as the second document: the first is fine
        ("text", [*NOT_STR, None]),
        ("id", NOT_STR),
        ("title", NOT_STR),
        ("metadata", NOT_OBJECT),
    ):
        table.extend(
            ("documents", {"documents": [DOCUMENT, {**DOCUMENT, field: value}]}, f"documents[1].{field}")
            for value in values
        )
    table.append(("search", {**SEARCH, "querry": "typo"}, "querry"))
    table.append(("search", {**SEARCH, "weights": {"vectr": 1}}, "weights.vectr"))
    table.append(("documents", {"documents": [{**DOCUMENT, "txt": "typo"}]}, "documents[0].txt"))
    return table


CASES = cases()


@pytest.fixture
async def client(settings, fake_model) -> AsyncIterator[AsyncTestClient]:
    strict = dataclasses.replace(settings, api_keys=(KEY,))
    async with AsyncTestClient(create_app(strict, model=fake_model)) as client:
        yield client


@pytest.mark.parametrize(("endpoint", "body", "key"), CASES, ids=[f"{e} {k} {json.dumps(b)}" for e, b, k in CASES])
async def test_a_wrong_type_is_422_naming_the_field(client, collection_name, endpoint, body, key):
    response = await client.post(f"/v1/collections/{collection_name}/{endpoint}", json=body, headers=AUTH)
    assert response.status_code == 422, (body, response.text)
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["type"] == "urn:hybrid-rag:problem:invalid-request", problem
    assert problem["errors"][0]["key"] == key and problem["errors"][0]["source"] == "body", problem
    assert f"({key}: " in problem["detail"], problem
    listed = await client.get("/v1/collections", headers=AUTH)  # nothing was written
    assert collection_name not in [c["name"] for c in listed.json()["collections"]]


async def test_the_issue_example_is_422_after_the_key_and_json_checks(client, collection_name):
    url = f"/v1/collections/{collection_name}/search"
    response = await client.post(url, json={"query": "vacuum", "k": "5"}, headers=AUTH)
    assert response.status_code == 422 and response.headers["content-type"] == PROBLEM
    assert response.json()["errors"] == [{"message": "Expected `int`, got `str`", "key": "k", "source": "body"}]
    unauthorised = await client.post(url, json={"query": "vacuum", "k": "5"})
    assert unauthorised.status_code == 401  # the key is checked before the body
    truncated = b'{"query": "vacuum", "k": "5"'
    malformed = await client.post(url, content=truncated, headers={**AUTH, "Content-Type": "application/json"})
    assert malformed.status_code == 400 and malformed.json()["type"] == "urn:hybrid-rag:problem:malformed-request"


async def test_the_right_types_pass_and_what_lax_mode_coerced_does_not(client, collection_name):
    documents = {
        "documents": [
            {"text": "vacuum pumps and their seals", "id": "pumps", "title": "Pumps", "metadata": {"year": 2024}},
            {"text": "a second document about vacuum", "id": None, "title": None, "metadata": None},
        ]
    }
    ingested = await client.post(f"/v1/collections/{collection_name}/documents", json=documents, headers=AUTH)
    assert ingested.status_code == 200, ingested.text
    search = {
        "query": "vacuum",
        "k": 2,
        "mode": "hybrid",
        "filter": {"year": {"$gte": 2020}},
        "candidates": 10,
        "rrf_k": 10,
        "weights": {"vector": 1, "text": 0.5},  # an int where a float is expected, as JSON allows
        "collapse": False,
    }
    url = f"/v1/collections/{collection_name}/search"
    found = await client.post(url, json=search, headers=AUTH)
    assert found.status_code == 200, found.text
    assert [hit["document_id"] for hit in found.json()["results"]] == ["pumps"]
    accepted = [
        {**search, "filter": None, "weights": None, "collapse": True},
        {"like": "pumps", "weights": {"text": 2}},
    ]
    for body in accepted:
        response = await client.post(url, json=body, headers=AUTH)
        assert response.status_code == 200, (body, response.text)
    refused = [  # each of these was coerced by Litestar's lax decoding, and answered 200
        {**search, "k": "2"},
        {**search, "candidates": "10.0"},
        {**search, "rrf_k": 10.0},
        {**search, "weights": {"vector": "1"}},
        {**search, "collapse": 0},
        {**search, "collapse": "true"},
        {**search, "filter": "null"},
        {**search, "weights": "null"},
    ]
    for body in refused:
        response = await client.post(url, json=body, headers=AUTH)
        assert response.status_code == 422, (body, response.text)


@pytest.mark.parametrize(
    ("method", "path", "query", "key"),
    [
        ("GET", "/v1/collections/{c}/documents", "=false", ""),
        ("GET", "/v1/collections/{c}/documents", "limt=5", "limt"),
        ("GET", "/v1/collections/{c}/documents", "limit=5&name=other", "name"),
        ("POST", "/v1/collections/{c}/search", "k=5", "k"),
        ("GET", "/v1/collections", "verbose=1", "verbose"),
        ("GET", "/healthz", "probe=1", "probe"),
    ],
)
async def test_an_undeclared_query_parameter_is_422_naming_it(client, collection_name, method, path, query, key):
    url = f"{path.format(c=collection_name)}?{query}"
    body = {"json": SEARCH} if method == "POST" else {}

    response = await client.request(method, url, headers=AUTH, **body)

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["errors"] == [{"message": "unknown query parameter", "key": key, "source": "query"}]


async def test_the_declared_query_parameters_still_pass(client, collection_name):
    await client.post(f"/v1/collections/{collection_name}/documents", json={"documents": [DOCUMENT]}, headers=AUTH)

    listed = await client.get(f"/v1/collections/{collection_name}/documents?limit=5&prefix=&after=", headers=AUTH)

    assert listed.status_code == 200, listed.text
