"""The API docs at /schema work offline: the page and everything it loads come from the app itself.

And every path the app does not serve, under /schema or anywhere else, is a problem+json 404.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
from litestar.testing import AsyncTestClient

from retriever.http import create_app

PROBLEM = "application/problem+json"
EXTERNAL = re.compile(r"(?:https?:)?//[\w.-]+", re.IGNORECASE)  # an absolute or protocol-relative URL
CONFIGURATION = re.compile(r"dataset\.configuration\s*=\s*'([^']*)'")


class References(HTMLParser):
    """Every URL the page loads: <script src>, <link href> and the document's `data-url`."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str]] = []  # (what, url)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value is None:
                continue
            if (tag, name) in (("script", "src"), ("link", "href"), ("img", "src"), ("iframe", "src")):
                self.found.append((f"{tag} {dict(attrs).get('rel') or ''}".strip(), value))
            elif name.startswith("data-") and name.endswith("url"):
                self.found.append((name, value))


def references(page: str) -> list[tuple[str, str]]:
    parser = References()
    parser.feed(page)
    return parser.found


@pytest.fixture
async def client(settings, fake_model) -> AsyncIterator[AsyncTestClient]:
    async with AsyncTestClient(create_app(settings, model=fake_model)) as client:
        yield client


@pytest.mark.parametrize("page_path", ["/schema", "/schema/scalar"])
async def test_the_docs_page_loads_only_what_the_app_serves(client, page_path):
    page = await client.get(page_path)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert not EXTERNAL.findall(page.text), EXTERNAL.findall(page.text)  # no URL elsewhere, in the page or config
    found = references(page.text)
    kinds = {what.split()[0] for what, _ in found}
    assert {"script", "link", "data-url"} <= kinds, found  # the bundle, the stylesheet and the OpenAPI document
    expected = {"script": "javascript", "link": "text/css", "data-url": "json"}
    for what, url in found:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc and url.startswith("/"), (what, url)  # a path on this server
        response = await client.get(url)
        assert response.status_code == 200, (what, url, response.status_code)
        assert expected[what.split()[0]] in response.headers["content-type"], (what, url, response.headers)
        assert response.content, (what, url)
    bundle = next(url for what, url in found if what == "script")
    assert b"@scalar/api-reference" in (await client.get(bundle)).content  # Scalar's own standalone bundle


async def test_scalar_is_told_not_to_reach_out(client):
    page = (await client.get("/schema")).text
    configuration = json.loads(CONFIGURATION.search(page)[1])
    assert configuration["withDefaultFonts"] is False  # else its fonts come from its CDN
    assert configuration["telemetry"] is False
    assert configuration["agent"] == {"disabled": True} and configuration["mcp"] == {"disabled": True}


async def test_every_unknown_path_is_a_problem_json_404(client):
    paths = [
        "/schema/swagger",  # Litestar's other docs pages: not served here
        "/schema/redoc",
        "/schema/elements",
        "/schema/nope",
        "/schema/openapi.yaml",
        "/schema/assets/nope.js",
        "/schema/assets/",
        "/nope",
        "/v1/nope",
        "/v1/collections/demo/nope",
    ]
    for path in paths:
        response = await client.get(path)
        assert response.status_code == 404, (path, response.status_code)
        assert response.headers["content-type"] == PROBLEM, (path, response.headers["content-type"])
        body = response.json()
        assert body["status"] == 404 and body["title"] == "Not Found" and body["instance"] == path.rstrip("/")
