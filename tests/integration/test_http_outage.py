"""With the database down, the API says so within about a second: unreachable, not "no connection free".

Specification: when the database stops, a search, `GET /v1/collections` and `/readyz`
answer 503 with `Retry-After` and the detail "the database is unreachable" in about a
second, however long POOL_TIMEOUT_S is; a pool that is merely busy still waits its whole
timeout and says that no connection became free.
"""

from __future__ import annotations

import time

import anyio.to_thread
import pytest
from litestar.testing import AsyncTestClient

from retriever.connections import PROBE_AFTER_S
from retriever.http import create_app
from retriever.store.embedded import embedded_dsn, stop_embedded

PROBLEM = "application/problem+json"


async def test_a_stopped_database_is_reported_unreachable_within_about_a_second(settings, fake_model, collection_name):
    if settings.database_url:
        pytest.skip("stops the embedded Postgres")
    assert settings.pool_timeout_s >= 3 * PROBE_AFTER_S  # the default: the fast answer is not the pool's timeout
    async with AsyncTestClient(create_app(settings, model=fake_model)) as client:
        url = f"/v1/collections/{collection_name}"
        body = {"documents": [{"id": "doc", "text": "lens and mirror telescopes"}]}
        assert (await client.post(f"{url}/documents", json=body)).status_code == 200

        await anyio.to_thread.run_sync(stop_embedded, settings.data_home)
        try:
            for request in (
                client.post(f"{url}/search", json={"query": "telescopes", "mode": "text"}),
                client.get("/readyz"),
                client.get("/v1/collections"),
            ):
                started = time.monotonic()
                response = await request
                waited = time.monotonic() - started
                assert response.status_code == 503, response.text
                assert response.headers["content-type"] == PROBLEM and int(response.headers["retry-after"]) > 0
                assert response.json()["detail"] == "the database is unreachable"
                assert waited < PROBE_AFTER_S + 1.5 < settings.pool_timeout_s + 0.5
        finally:
            await anyio.to_thread.run_sync(embedded_dsn, settings.data_home)
