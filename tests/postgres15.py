"""A throwaway Debian PostgreSQL 15 cluster (with pgvector and unaccent), for tests the embedded server cannot serve.

`tools/postgres15.sh` installs the server and builds pgvector into it; this plugin runs
one cluster per test session (initdb in a temporary folder, a free loopback port, trust
authentication on loopback only) and removes it at the end. `postgres15_settings` are
`Settings` whose DATABASE_URL points at it, so the same engine code runs there;
`postgres15_cluster()` is the same cluster as a context manager, which the session's
`settings` (tests/conftest.py) use when TEST_SERVER=postgres15, so that the whole
integration suite runs on PostgreSQL 15 as well as on the embedded PostgreSQL 18.

When the server is not installed, a test that asks for it FAILS (never skips): CI runs
the script before the tests, and a missing server there is a fault to see.

As root, the cluster runs as the `postgres` system user (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from retriever.settings import Settings

__all__ = ["BIN", "SHARE", "postgres15_cluster", "postgres15_settings"]

BIN = Path("/usr/lib/postgresql/15/bin")
SHARE = Path("/usr/share/postgresql/15")
_SETUP = "run `bash tools/postgres15.sh` (as root or with sudo) to install it"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _run_as(user: str | None, *command: str, check: bool = True) -> None:
    """Run a server tool, as `user` when given (we are root); with `check`, fail the test with its output on error."""
    prefix = ["runuser", "-u", user, "--"] if user else []
    done = subprocess.run([*prefix, *command], capture_output=True, text=True, timeout=120, check=False)
    if check and done.returncode != 0:
        pytest.fail(f"{Path(command[0]).name} failed ({done.returncode}): {done.stdout}{done.stderr}")


def _check_installed() -> str | None:
    """The server's owner when we are root (None otherwise); fails the test when something is missing."""
    if not (BIN / "postgres").exists() or not (BIN / "initdb").exists():
        pytest.fail(f"Debian PostgreSQL 15 is not installed ({BIN}/postgres is missing): {_SETUP}")
    for extension in ("vector", "unaccent"):
        if not (SHARE / "extension" / f"{extension}.control").exists():
            pytest.fail(f"PostgreSQL 15 has no {extension} extension: {_SETUP}")
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.fail(f"no `postgres` system user to run PostgreSQL 15 as (we are root): {_SETUP}")
    return "postgres"


@contextmanager
def postgres15_cluster() -> Iterator[Settings]:
    """Settings whose DATABASE_URL is a fresh PostgreSQL 15 cluster on loopback; the cluster is removed on exit.

    A plain context manager, so the session's `settings` can run on it too (TEST_SERVER=postgres15).
    """
    owner = _check_installed()
    # Outside pytest-of-<user>: pytest resets that folder to 0700, which would lock the owner out.
    folder = Path(tempfile.mkdtemp(prefix="hybrid-rag-pg15-"))
    data = folder / "data"
    if owner:
        shutil.chown(folder, user=owner)
    _run_as(
        owner,
        str(BIN / "initdb"),
        "--pgdata",
        str(data),
        "--username",
        "postgres",
        "--auth",
        "trust",
        "--encoding",
        "UTF8",
        "--locale",
        "C.UTF-8",
        "--no-sync",
    )
    port = _free_port()
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off -c full_page_writes=off"
    log = folder / "server.log"
    _run_as(owner, str(BIN / "pg_ctl"), "--pgdata", str(data), "--log", str(log), "-o", options, "--wait", "start")
    dsn = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE DATABASE hybrid_rag")
        yield Settings(database_url=f"postgresql://postgres@127.0.0.1:{port}/hybrid_rag", home=folder)
    finally:
        _run_as(owner, str(BIN / "pg_ctl"), "--pgdata", str(data), "--mode", "immediate", "--wait", "stop", check=False)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres15_settings() -> Iterator[Settings]:
    """Settings whose DATABASE_URL is a fresh PostgreSQL 15 cluster on loopback, removed after the session."""
    with postgres15_cluster() as settings:
        yield settings
