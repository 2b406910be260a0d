"""Documents over their life through the HTTP API: list, get, delete by filter, drop; keys and problems apply."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from urllib.parse import quote

import pytest
from litestar.testing import AsyncTestClient

from retriever.http import create_app

KEY = "test-key-0123456789"
SCOPED = "scoped-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
PROBLEM = "application/problem+json"

DOCUMENTS = [
    {"id": f"notes/{i}.md", "text": f"Note {i} is about ferns and spores.", "metadata": {"n": i}} for i in range(5)
] + [
    {
        "id": "/abs/plants.md",
        "title": "Plants",
        "text": "Ferns reproduce by spores. " * 60 + "Moss grows in damp shade. " * 60,
        "metadata": {"topic": "plants", "year": 2020},
    }
]


@pytest.fixture
def api_settings(settings, collection_name):
    return dataclasses.replace(settings, api_keys=(KEY, f"{SCOPED}@t_other_zz"), max_documents_per_request=10)


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
    assert body["status"] == status and "Traceback" not in response.text
    if type_suffix is not None:
        assert body["type"] == f"urn:hybrid-rag:problem:{type_suffix}"
    return body


async def test_documents_are_listed_a_page_at_a_time_with_a_cursor(client, filled):
    seen, after = [], None
    for _ in range(10):
        params = {"limit": 4, **({"after": after} if after else {})}
        page = await client.get(f"/v1/collections/{filled}/documents", params=params, headers=AUTH)
        assert page.status_code == 200, page.text
        body = page.json()
        seen.append([document["id"] for document in body["documents"]])
        after = body["next_after"]
        if after is None:
            break
    assert seen == [["/abs/plants.md", "notes/0.md", "notes/1.md", "notes/2.md"], ["notes/3.md", "notes/4.md"]]
    first = (await client.get(f"/v1/collections/{filled}/documents", headers=AUTH)).json()["documents"][0]
    assert set(first) == {"id", "chunks", "updated_at"} and first["chunks"] > 1
    prefixed = await client.get(f"/v1/collections/{filled}/documents", params={"prefix": "notes/3"}, headers=AUTH)
    assert [document["id"] for document in prefixed.json()["documents"]] == ["notes/3.md"]


@pytest.mark.parametrize("params", [{"limit": "ten"}, {"limit": "0"}, {"limit": "100000"}, {"limit": "1.5"}])
async def test_wrong_listing_parameters_are_422_problems(client, filled, params):
    response = await client.get(f"/v1/collections/{filled}/documents", params=params, headers=AUTH)
    assert_problem(response, 422, "invalid-request")


async def test_a_nul_in_a_listing_parameter_is_a_422_problem(client, filled):
    response = await client.get(f"/v1/collections/{filled}/documents?prefix=a%00b", headers=AUTH)
    assert_problem(response, 422)


async def test_a_document_comes_back_with_its_chunks_in_order(client, filled):
    response = await client.get(f"/v1/collections/{filled}/documents/{quote('/abs/plants.md')}", headers=AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == "/abs/plants.md" and len(body["hash"]) == 64
    assert body["metadata"] == {"topic": "plants", "year": 2020, "source": f"http:{filled}", "title": "Plants"}
    assert [chunk["index"] for chunk in body["chunks"]] == list(range(len(body["chunks"]))) and len(body["chunks"]) > 1
    assert body["chunks"][0]["content"].startswith("Plants\nFerns reproduce by spores.")
    by_slashes = await client.get(f"/v1/collections/{filled}/documents/notes/2.md", headers=AUTH)
    assert by_slashes.json()["chunks"][0]["content"] == "Note 2 is about ferns and spores."


async def test_an_absent_document_is_a_404_problem(client, filled):
    response = await client.get(f"/v1/collections/{filled}/documents/notes/9.md", headers=AUTH)
    assert "'notes/9.md'" in assert_problem(response, 404, "document-not-found")["detail"]


async def test_deleting_by_filter_answers_how_many_documents_went_whole(client, filled):
    response = await client.post(
        f"/v1/collections/{filled}/delete", json={"filter": {"chunk_index": {"$gte": 1}}}, headers=AUTH
    )
    assert (response.status_code, response.json()) == (200, {"deleted": 1})
    gone = await client.get(f"/v1/collections/{filled}/documents/{quote('/abs/plants.md')}", headers=AUTH)
    assert_problem(gone, 404, "document-not-found")
    again = await client.post(f"/v1/collections/{filled}/delete", json={"filter": {"n": {"$lt": 2}}}, headers=AUTH)
    assert again.json() == {"deleted": 2}
    listed = await client.get(f"/v1/collections/{filled}/documents", headers=AUTH)
    assert [document["id"] for document in listed.json()["documents"]] == ["notes/2.md", "notes/3.md", "notes/4.md"]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"filter": {}}, "invalid-request"),
        ({"filter": {"n": {"$regex": "x"}}}, "invalid-filter"),
        ({"filter": "null"}, "invalid-request"),
        ({"filter": {"n": 1}, "extra": True}, "invalid-request"),
        ({}, "invalid-request"),
    ],
)
async def test_an_empty_or_invalid_delete_filter_is_a_422_problem(client, filled, body, problem):
    response = await client.post(f"/v1/collections/{filled}/delete", json=body, headers=AUTH)
    assert_problem(response, 422, problem)
    listed = await client.get(f"/v1/collections/{filled}/documents", headers=AUTH)
    assert len(listed.json()["documents"]) == len(DOCUMENTS)


async def test_dropping_a_collection_is_204_then_404(client, filled):
    response = await client.delete(f"/v1/collections/{filled}", headers=AUTH)
    assert response.status_code == 204 and response.content == b""
    assert_problem(await client.delete(f"/v1/collections/{filled}", headers=AUTH), 404, "collection-not-found")
    assert_problem(await client.get(f"/v1/collections/{filled}/documents", headers=AUTH), 404, "collection-not-found")
    listed = await client.get("/v1/collections", headers=AUTH)
    assert filled not in [collection["name"] for collection in listed.json()["collections"]]


async def test_a_scoped_key_gets_404_on_every_lifecycle_endpoint_of_another_collection(client, filled):
    scoped = {"Authorization": f"Bearer {SCOPED}"}
    for response in (
        await client.get(f"/v1/collections/{filled}/documents", headers=scoped),
        await client.get(f"/v1/collections/{filled}/documents/notes/1.md", headers=scoped),
        await client.post(f"/v1/collections/{filled}/delete", json={"filter": {"n": 1}}, headers=scoped),
        await client.delete(f"/v1/collections/{filled}", headers=scoped),
    ):
        assert_problem(response, 404, "collection-not-found")
    for response in (
        await client.get(f"/v1/collections/{filled}/documents"),
        await client.delete(f"/v1/collections/{filled}"),
    ):
        assert_problem(response, 401)
    listed = await client.get(f"/v1/collections/{filled}/documents", headers=AUTH)
    assert len(listed.json()["documents"]) == len(DOCUMENTS)  # nothing was deleted or dropped


async def test_the_openapi_document_describes_the_lifecycle_endpoints(client):
    paths = (await client.get("/schema/openapi.json")).json()["paths"]
    assert {"get", "post"} <= set(paths["/v1/collections/{name}/documents"])
    assert {"get", "delete"} <= set(paths["/v1/collections/{name}/documents/{document_id}"])
    assert set(paths["/v1/collections/{name}/delete"]) == {"post"}
    assert set(paths["/v1/collections/{name}"]) == {"delete"}
    listing = paths["/v1/collections/{name}/documents"]["get"]
    assert {p["name"] for p in listing["parameters"] if p["in"] == "query"} == {"limit", "after", "prefix"}
    assert {"200", "401", "404", "422", "503"} <= set(listing["responses"])
    body = paths["/v1/collections/{name}/delete"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["examples"]


async def test_a_new_collection_takes_the_language_of_the_request(client, collection_name):
    body = {"documents": [{"id": "v", "text": "Die Kündigungsfristen stehen im Vertrag."}], "language": "german"}
    assert (
        await client.post(f"/v1/collections/{collection_name}/documents", json=body, headers=AUTH)
    ).status_code == 200
    found = await client.post(
        f"/v1/collections/{collection_name}/search", json={"query": "Kündigungsfrist", "mode": "text"}, headers=AUTH
    )
    listed = (await client.get("/v1/collections", headers=AUTH)).json()["collections"]
    assert [hit["document_id"] for hit in found.json()["results"]] == ["v"]
    assert [c["language"] for c in listed if c["name"] == collection_name] == ["german"]


async def _assert_refused_language(client, collection_name: str, options: dict) -> None:
    body = {"documents": [{"id": "a", "text": "café"}], **options}
    response = await client.post(f"/v1/collections/{collection_name}/documents", json=body, headers=AUTH)
    assert response.status_code == 422 and response.headers["content-type"].startswith("application/problem+json")


async def test_a_language_the_server_cannot_give_is_a_422_problem(client, collection_name):
    await _assert_refused_language(client, collection_name, {"language": "klingon"})


async def test_ignoring_accents_on_a_server_without_unaccent_is_a_422_problem(
    client, collection_name, without_unaccent
):
    await _assert_refused_language(client, collection_name, {"accent_insensitive": True})
