"""The API under trouble: a database restart, slow statements, an exhausted pool, writes racing searches.

The test clients run the app on their own event loop in a portal thread; a request blocks the
test until it is answered, so the elapsed times below are the server's.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import anyio.to_thread
import pytest
from litestar.testing import AsyncTestClient, TestClient

from retriever.connections import open_primary
from retriever.http import create_app
from retriever.store.embedded import embedded_dsn, stop_embedded

PROBLEM = "application/problem+json"
DOCUMENT = {"id": "doc", "text": "lens and mirror telescopes for the night sky", "metadata": {"topic": "astronomy"}}


def assert_unavailable(response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == PROBLEM
    assert int(response.headers["retry-after"]) > 0
    assert response.json()["type"] == "urn:hybrid-rag:problem:database-unavailable"


@pytest.fixture
def fast_fail(settings):
    """Short waits, so the bounds below are quick to check."""
    return dataclasses.replace(settings, pool_timeout_s=1.0, statement_timeout_ms=500, pool_size=2)


async def test_app_survives_a_database_restart(fast_fail, fake_model, collection_name):
    if fast_fail.database_url:
        pytest.skip("restarts the embedded Postgres")
    home = fast_fail.data_home
    async with AsyncTestClient(create_app(fast_fail, model=fake_model)) as client:
        url = f"/v1/collections/{collection_name}"
        assert (await client.post(f"{url}/documents", json={"documents": [DOCUMENT]})).status_code == 200
        assert (await client.post(f"{url}/search", json={"query": "telescopes"})).status_code == 200

        await anyio.to_thread.run_sync(stop_embedded, home)
        try:
            bound = fast_fail.pool_timeout_s + 2.0  # the pool's wait, plus a slow CI machine's slack
            for request in (
                client.post(f"{url}/search", json={"query": "telescopes"}),
                client.get("/readyz"),
                client.get("/v1/collections"),
                client.post(f"{url}/documents", json={"documents": [{**DOCUMENT, "text": "changed"}]}),
                client.delete(f"{url}/documents/doc"),
            ):
                started = time.monotonic()
                response = await request
                assert time.monotonic() - started < bound
                assert_unavailable(response)
            assert (await client.get("/healthz")).status_code == 200
        finally:
            await anyio.to_thread.run_sync(embedded_dsn, home)

        # the same app, not restarted: the pool reconnects once the database is back
        deadline = time.monotonic() + 15
        while True:
            response = await client.post(f"{url}/search", json={"query": "telescopes"})
            if response.status_code == 200 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        assert response.status_code == 200, response.text
        assert [hit["document_id"] for hit in response.json()["results"]] == ["doc"]
        assert (await client.get("/readyz")).status_code == 200


async def test_statement_timeout_is_503_with_retry_after(fast_fail, fake_model, collection_name):
    async with AsyncTestClient(create_app(fast_fail, model=fake_model)) as client:
        url = f"/v1/collections/{collection_name}"
        assert (await client.post(f"{url}/documents", json={"documents": [DOCUMENT]})).status_code == 200
        with open_primary(fast_fail) as blocker, blocker.transaction():
            # an exclusive lock makes the search and the delete wait until their statement timeout
            blocker.execute(f'LOCK TABLE hybrid_rag."{collection_name}" IN ACCESS EXCLUSIVE MODE')
            for request in (
                client.post(f"{url}/search", json={"query": "telescopes"}),
                client.delete(f"{url}/documents/doc"),
            ):
                started = time.monotonic()
                response = await request
                assert time.monotonic() - started < fast_fail.statement_timeout_ms / 1000 + 3
                assert_unavailable(response)
                assert response.json()["detail"] == "the database did not answer in time"
        assert (await client.post(f"{url}/search", json={"query": "telescopes"})).status_code == 200


async def test_waiting_for_a_pooled_connection_is_bounded(fast_fail, fake_model):
    app = create_app(fast_fail, model=fake_model)
    async with AsyncTestClient(app) as client:
        pool, portal = app.state.engine._pools.primary, client.blocking_portal  # the pool lives on the app's loop
        held = [portal.call(pool.getconn) for _ in range(fast_fail.pool_size)]
        try:
            started = time.monotonic()
            response = await client.get("/v1/collections")
            waited = time.monotonic() - started
        finally:
            for conn in held:
                portal.call(pool.putconn, conn)
        assert_unavailable(response)
        assert response.json()["detail"] == "no database connection became free in time"
        assert fast_fail.pool_timeout_s * 0.9 <= waited < fast_fail.pool_timeout_s + 2
        assert (await client.get("/v1/collections")).status_code == 200


async def test_waiting_for_a_write_slot_is_bounded(fast_fail, fake_model, collection_name):
    app = create_app(fast_fail, model=fake_model)
    async with AsyncTestClient(app) as client:
        slots, portal, holder = app.state.engine._pools.write_slots, client.blocking_portal, object()
        portal.call(slots.acquire_on_behalf_of, holder)  # one slot: pool_size 2 // 4, at least 1
        try:
            started = time.monotonic()
            response = await client.post(f"/v1/collections/{collection_name}/documents", json={"documents": [DOCUMENT]})
            waited = time.monotonic() - started
        finally:
            portal.call(slots.release_on_behalf_of, holder)
        assert_unavailable(response)
        assert response.json()["detail"] == "every write slot stayed busy; retry later"
        assert fast_fail.pool_timeout_s * 0.9 <= waited < fast_fail.pool_timeout_s + 2
        retried = await client.post(f"/v1/collections/{collection_name}/documents", json={"documents": [DOCUMENT]})
        assert retried.status_code == 200


def version(marker: str, sentences: int) -> dict:
    # every chunk of a version carries its marker, so a result's chunks name the version they came from
    text = " ".join(f"Sentence {i} about the shared subject, version {marker}." for i in range(sentences))
    return {"id": "replaced", "text": text}


def test_concurrent_replace_and_search_never_mix_versions(settings, fake_model, collection_name):
    versions = {"alpha": version("alpha", 90), "beta": version("beta", 150)}
    url = f"/v1/collections/{collection_name}"
    # the sync client from several threads: each request runs concurrently on the app's one event loop
    with TestClient(create_app(settings, model=fake_model)) as client:
        chunks = {}
        for marker, document in versions.items():  # learn each version's chunk count
            assert client.post(f"{url}/documents", json={"documents": [document]}).status_code == 200
            found = client.post(f"{url}/search", json={"query": "shared subject", "k": 100, "mode": "text"})
            chunks[marker] = len(found.json()["results"])
        assert chunks["alpha"] < chunks["beta"]

        seen = {"alpha": 0, "beta": 0}
        writing = threading.Event()
        writing.set()

        def writer() -> None:
            try:
                for round_ in range(16):
                    document = versions["alpha" if round_ % 2 == 0 else "beta"]
                    response = client.post(f"{url}/documents", json={"documents": [document]})
                    assert response.status_code == 200, response.text
            finally:
                writing.clear()

        def reader(mode: str) -> None:
            while writing.is_set():
                response = client.post(
                    f"{url}/search", json={"query": "shared subject version", "k": 100, "mode": mode}
                )
                assert response.status_code == 200, response.text
                contents = [hit["content"] for hit in response.json()["results"]]
                markers = {marker for marker in versions for content in contents if f"version {marker}" in content}
                assert len(markers) == 1, f"a search mixed versions: {markers}"
                (marker,) = markers
                assert len(contents) == chunks[marker], "a search saw part of a version"
                seen[marker] += 1

        with ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(writer), *(pool.submit(reader, mode) for mode in ("hybrid", "text", "vector"))]
            for future in futures:
                future.result()
    assert seen["alpha"] >= 2 and seen["beta"] >= 2, seen
