"""The OpenAPI document, built without a database: limits, strictness, security and examples."""

from __future__ import annotations

import pytest

import retriever.http
from retriever.http import create_app
from retriever.settings import Settings


def openapi(**settings: object) -> dict:
    return create_app(Settings(**settings)).openapi_schema.to_schema()  # type: ignore[arg-type]


def test_the_package_exports_only_create_app():
    assert retriever.http.__all__ == ["create_app"]


def test_the_configured_limits_are_in_the_document():
    schemas = openapi(max_k=7, max_candidates=70, max_query_chars=700, max_documents_per_request=3)["components"][
        "schemas"
    ]
    search = schemas["SearchRequest"]["properties"]
    assert (search["k"]["maximum"], search["candidates"]["maximum"], search["query"]["maxLength"]) == (7, 70, 700)
    assert schemas["AddDocuments"]["properties"]["documents"]["maxItems"] == 3


def test_request_bodies_reject_unknown_fields_and_search_takes_query_or_like():
    schemas = openapi()["components"]["schemas"]
    for name in ("SearchRequest", "Weights", "AddDocuments", "DocumentIn"):
        assert schemas[name]["additionalProperties"] is False, name
    assert schemas["SearchRequest"]["oneOf"] == [{"required": ["query"]}, {"required": ["like"]}]


@pytest.mark.parametrize(("keys", "secured"), [((), False), (("k1",), True)])
def test_operations_require_the_bearer_scheme_when_keys_are_set(keys, secured):
    schema = openapi(api_keys=keys)
    assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for path, item in schema["paths"].items():
        for op in item.values():
            assert ("security" in op) == (secured and path.startswith("/v1")), path


def test_every_operation_has_examples_and_problem_responses():
    schema = openapi(api_keys=("k1",))
    for path, item in schema["paths"].items():
        for method, op in item.items():
            examples = [
                example
                for response in op["responses"].values()
                for media in (response.get("content") or {}).values()
                for example in (media.get("examples") or {}).values()
            ]
            examples += [p["schema"]["examples"] for p in op.get("parameters", []) if p["schema"].get("examples")]
            assert examples, (method, path)
            for code, response in op["responses"].items():
                if code >= "400":
                    assert set(response["content"]) == {"application/problem+json"}, (method, path, code)
