"""A throwaway Citus cluster (a coordinator and two workers of Debian's PostgreSQL 15), started by the project's script.

`tools/citus-cluster.sh install` builds Citus and pgvector into Debian's PostgreSQL 15 (`make
test` runs it first); the `citus` fixture starts one cluster per test session with
`tools/citus-cluster.sh start` in a temporary folder on free loopback ports, and removes it
at the end. `citus.settings` are `Settings` whose DATABASE_URL is the coordinator, so the
same engine code runs there; `citus.stop(node)` / `citus.start()` stop and restart nodes.

When Citus is not installed, a test that asks for the cluster FAILS (never skips): CI
installs it before the tests, and a missing cluster there is a fault to see.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from retriever.settings import Settings

__all__ = ["CitusCluster", "citus"]

SCRIPT = Path(__file__).resolve().parents[1] / "tools" / "citus-cluster.sh"
SHARDS = 8  # enough to spread every collection over both workers; fewer shards, less per-query fan-out on 2 cores


def _free_ports(count: int) -> int:
    """The first of `count` consecutive loopback ports that are free now."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first = probe.getsockname()[1]
        if first + count > 65535:
            continue
        try:
            for port in range(first, first + count):
                with socket.socket() as taken:
                    taken.bind(("127.0.0.1", port))
        except OSError:
            continue
        return first
    pytest.fail(f"no {count} consecutive free loopback ports")


@dataclass
class CitusCluster:
    """A running cluster: its folder, the coordinator's port (workers on the next two) and `settings` for it."""

    folder: Path
    port: int
    settings: Settings

    def attempt(self, command: str, *args: str, folder: Path | None = None, **env: str) -> subprocess.CompletedProcess:
        """Run `tools/citus-cluster.sh COMMAND FOLDER ARGS...` (FOLDER: this cluster's) with `env` added to the
        environment, as a user would; its outcome, whatever it is."""
        return subprocess.run(
            ["bash", str(SCRIPT), command, str(folder or self.folder), *args],
            capture_output=True,
            text=True,
            env={**os.environ, **env},
            timeout=600,
            check=False,
        )

    def run(self, command: str, *args: str) -> str:
        """`attempt` with this cluster's port and shard count; its output, or the test fails with it."""
        done = self.attempt(command, *args, CITUS_PORT=str(self.port), CITUS_SHARD_COUNT=str(SHARDS))
        if done.returncode != 0:
            pytest.fail(f"citus-cluster.sh {command} failed ({done.returncode}): {done.stdout}{done.stderr}")
        return done.stdout

    def stop(self, *nodes: str) -> None:
        """Stop the named nodes (`worker1`, `worker2`, `coordinator`)."""
        self.run("stop", *nodes)

    def start(self) -> None:
        """Start every stopped node again."""
        self.run("start")

    def worker(self, index: int) -> str:
        """A direct connection string to worker `index` (1 or 2), bypassing the coordinator."""
        return f"postgresql://postgres@127.0.0.1:{self.port + index}/hybrid_rag"


@pytest.fixture(scope="session")
def citus() -> Iterator[CitusCluster]:
    """A fresh 3-node Citus cluster on loopback, removed after the session."""
    # Outside pytest-of-<user>: pytest resets that folder to 0700, which would lock the `postgres` user out.
    folder = Path(tempfile.mkdtemp(prefix="hybrid-rag-citus-"))
    cluster = CitusCluster(folder, _free_ports(3), Settings())
    try:
        url = cluster.run("start").strip().splitlines()[-1]
        with psycopg.connect(url, autocommit=True) as conn:
            nodes = conn.execute("SELECT count(*) FROM pg_dist_node WHERE noderole = 'primary'").fetchone()[0]
        assert nodes == 3, f"the cluster has {nodes} nodes"
        cluster.settings = Settings(database_url=url, home=folder)
        yield cluster
    finally:
        cluster.run("remove")
        shutil.rmtree(folder, ignore_errors=True)
