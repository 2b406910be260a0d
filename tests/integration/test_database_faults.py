"""Database errors through the real (embedded) Postgres: each is named for what it is.

A filter over PostgreSQL's own limits is the caller's mistake (422 / exit 2), not an outage;
a privilege the database refuses, or its full disk, is a fault for an operator (500 / 507),
never "unreachable" and never "retry".
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from litestar.testing import AsyncTestClient
from psycopg import sql
from psycopg.conninfo import make_conninfo

from hybrid_rag.cli import main
from ingest import ChunkingConfig, SourceDocument
from retriever import DatabaseDiskFull, DatabaseFault, Engine, InputError, LimitExceeded, SearchParams
from retriever.connections import open_primary
from retriever.engine import map_errors
from retriever.http import create_app
from retriever.settings import get_settings
from retriever.store.collections import drop_collection
from retriever.store.database import primary_dsn

KEY = "faults-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
PROBLEM = "application/problem+json"
TERMS = 70_000  # more bind parameters than libpq can send (65,535)
HUGE_FILTER = {"$or": [{"n": i} for i in range(TERMS)]}


def document(document_id: str, text: str) -> SourceDocument:
    return SourceDocument(document_id=document_id, text=text, title=None, source="test", metadata={"n": 1})


@pytest.fixture
def filled(settings, fake_model, collection_name) -> str:
    """A collection with one small document, ingested through the engine."""
    text = "Espresso is brewed by forcing hot water through finely ground coffee."
    Engine(settings, model=fake_model).ingest(collection_name, [document("espresso", text)], ChunkingConfig())
    return collection_name


@pytest.fixture
async def client(settings, fake_model) -> AsyncIterator[AsyncTestClient]:
    async with AsyncTestClient(create_app(dataclasses.replace(settings, api_keys=(KEY,)), model=fake_model)) as client:
        yield client


def assert_problem(response, status: int, type_suffix: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    assert "retry-after" not in response.headers
    body = response.json()
    assert body["type"] == f"urn:hybrid-rag:problem:{type_suffix}"
    assert "Traceback" not in response.text
    return body


# --- a filter over PostgreSQL's limits is an input error ------------------------------------------------------


async def test_a_filter_of_70000_terms_is_a_422_naming_the_count_not_a_503_to_retry(client, filled):
    response = await client.post(
        f"/v1/collections/{filled}/search", json={"query": "coffee", "filter": HUGE_FILTER}, headers=AUTH
    )
    body = assert_problem(response, 422, "limit-exceeded")
    assert f"{TERMS} values" in body["detail"] and "over the limit of" in body["detail"]
    assert "unreachable" not in body["detail"]


def test_a_filter_of_70000_terms_is_a_one_line_user_error_on_the_command_line(filled):
    get_settings.cache_clear()
    try:  # --mode text: no model to load; the search compiles the filter after finding the collection
        args = ["search", "x", "-c", filled, "--mode", "text", "--filter", json.dumps(HUGE_FILTER)]
        result = CliRunner().invoke(main, args)
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"{TERMS} values" in lines[0] and "unreachable" not in lines[0]


# --- real errors of the real database, classified by SQLSTATE ---------------------------------------------------


@pytest.mark.parametrize(
    ("statement", "expected", "words"),
    [
        ("SELECT '[1,2,3]'::vector <=> '[1,2]'::vector", InputError, "different vector dimensions"),
        ("SELECT '{\"a\": 1'::jsonb", InputError, "invalid input syntax for type json"),
        (
            "SELECT to_tsvector('simple', string_agg(md5(i::text), ' ')) FROM generate_series(1, 40000) i",
            LimitExceeded,
            "string is too long for tsvector",
        ),
    ],
)
def test_values_the_database_rejects_are_input_errors_with_its_first_line(settings, statement, expected, words):
    with open_primary(settings) as conn:
        with pytest.raises(InputError) as caught, map_errors():
            conn.execute(statement)
    assert type(caught.value) is expected
    assert words in str(caught.value) and "\n" not in str(caught.value)


@pytest.fixture
def nobody(settings) -> Iterator[str]:
    """A role without any privilege on hybrid-rag's schema."""
    role = f"hr_nobody_{uuid.uuid4().hex[:8]}"
    with open_primary(settings) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
    yield role
    with open_primary(settings) as conn:
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_a_privilege_the_database_refuses_is_a_database_fault_not_an_outage(settings, fake_model, filled, nobody):
    with open_primary(settings) as conn:
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(nobody)))
        engine = Engine(settings, model=fake_model)
        with pytest.raises(DatabaseFault) as caught:
            engine.search(filled, "coffee", SearchParams(mode="text"), conn=conn)
        conn.execute("RESET ROLE")
    message = str(caught.value)
    assert type(caught.value) is DatabaseFault
    assert "\n" not in message and "permission denied" in message and "grant" in message
    assert "unreachable" not in message


@pytest.fixture
def reader_role(settings, filled) -> Iterator[str]:
    """A login role that can read the collections registry but not the collection's chunks:
    a read replica's role set up by halves."""
    role = f"hr_reader_{uuid.uuid4().hex[:8]}"
    with open_primary(settings) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA hybrid_rag TO {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("GRANT SELECT ON hybrid_rag.collections TO {}").format(sql.Identifier(role)))
    yield role
    with open_primary(settings) as conn:
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


async def test_a_refused_privilege_over_http_is_a_500_database_fault_in_plain_words(
    settings, fake_model, filled, reader_role, caplog, server_started_here
):
    if not server_started_here:
        pytest.skip("needs a server the tests started (embedded or TEST_SERVER's): local connections trust any role")
    replica = make_conninfo(primary_dsn(settings), user=reader_role)
    api = dataclasses.replace(settings, api_keys=(KEY,), database_read_urls=(replica,))
    async with AsyncTestClient(create_app(api, model=fake_model)) as client:
        response = await client.post(
            f"/v1/collections/{filled}/search", json={"query": "coffee", "mode": "text"}, headers=AUTH
        )
    body = assert_problem(response, 500, "database-fault")
    assert body["detail"] == "the database role lacks a privilege"
    assert "permission denied" not in response.text  # the database's words go to the log, with what to do
    assert "permission denied" in caplog.text and "grant" in caplog.text


# --- a full disk, for real: the collection's table on a 1 MB tmpfs tablespace ----------------------------------


@pytest.fixture(scope="module")
def tiny_tablespace(settings, server_started_here) -> Iterator[str]:
    """A tablespace on a 1 MB tmpfs; skipped where mounting is not permitted (not root, no CAP_SYS_ADMIN)."""
    if not server_started_here or os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root, mount(8) and a server the tests started on this machine (embedded or TEST_SERVER's)")
    with open_primary(settings) as conn:
        data_directory = Path(conn.execute("SELECT current_setting('data_directory')").fetchone()[0])
    owner = data_directory.stat()
    folder = Path(tempfile.mkdtemp(prefix="hybrid-rag-tiny-"))
    folder.chmod(0o755)
    options = f"size=1m,mode=0700,uid={owner.st_uid},gid={owner.st_gid}"
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        folder.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    name = f"hr_tiny_{uuid.uuid4().hex[:8]}"
    try:
        with open_primary(settings) as conn:
            conn.execute(sql.SQL("CREATE TABLESPACE {} LOCATION {}").format(sql.Identifier(name), str(folder)))
        yield name
    finally:
        with open_primary(settings) as conn:
            conn.execute(sql.SQL("DROP TABLESPACE IF EXISTS {}").format(sql.Identifier(name)))
        subprocess.run(["umount", "-l", str(folder)], check=False)
        folder.rmdir()


def onto_tiny_disk(settings, collection: str, tablespace: str) -> None:
    """Move the collection's chunk table (not its indexes) onto the tiny tablespace."""
    with open_primary(settings) as conn:
        conn.execute(
            sql.SQL("ALTER TABLE {} SET TABLESPACE {}").format(
                sql.Identifier("hybrid_rag", collection), sql.Identifier(tablespace)
            )
        )


def big_text(words: int = 200_000) -> str:
    return " ".join(f"word{i % 5000}" for i in range(words))  # about 1.8 MB, more than the tablespace holds


@pytest.fixture
def on_tiny_disk(settings, filled, tiny_tablespace) -> Iterator[str]:
    onto_tiny_disk(settings, filled, tiny_tablespace)
    yield filled
    with open_primary(settings) as conn:  # empty the tablespace now, for the next test and its own drop
        drop_collection(conn, filled)


def test_a_full_disk_is_a_database_fault_that_says_so_not_unreachable(settings, fake_model, on_tiny_disk):
    engine = Engine(settings, model=fake_model)
    with pytest.raises(DatabaseFault) as caught:
        engine.ingest(on_tiny_disk, [document("big", big_text())], ChunkingConfig())
    message = str(caught.value)
    assert type(caught.value) is DatabaseDiskFull
    assert "\n" not in message and "disk is full" in message and "No space left on device" in message
    assert "free disk space" in message and "unreachable" not in message


async def test_a_full_disk_over_http_is_a_507_without_retry_after(client, on_tiny_disk):
    documents = [{"id": "big", "text": big_text()}]
    response = await client.post(
        f"/v1/collections/{on_tiny_disk}/documents", json={"documents": documents}, headers=AUTH
    )
    body = assert_problem(response, 507, "database-disk-full")
    assert body["detail"] == "the database server's disk is full"
