"""A home that cannot be created, and a damaged embedded home, end in one clear line or a normal start."""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from hybrid_rag.cli import main
from retriever.errors import ConfigurationError, DatabaseUnavailable
from retriever.settings import get_settings
from retriever.store.embedded import embedded_dsn, stop_embedded

pgserver = pytest.importorskip("pgserver")
needs_embedded = pytest.mark.skipif(
    bool(os.environ.get("DATABASE_URL")), reason="DATABASE_URL names an external server"
)


def _new_home() -> Path:
    """A fresh folder outside pytest-of-<user>, reachable by the `pgserver` user under root (see conftest)."""
    home = Path(tempfile.mkdtemp(prefix="hybrid-rag-tests-"))
    home.chmod(0o755)
    return home


@pytest.fixture
def scratch() -> Iterator[Path]:
    folder = _new_home()
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _under_a_file(scratch: Path) -> Path:
    (scratch / "file").write_text("not a folder")
    return scratch / "file" / "home"  # mkdir: NotADirectoryError (permission bits do not stop root)


def _data_dir_is_a_file(scratch: Path) -> Path:
    (scratch / "home").mkdir()
    (scratch / "home" / "pgdata").write_text("in the way")
    return scratch / "home"


@pytest.mark.parametrize("unusable", [_under_a_file, _data_dir_is_a_file], ids=["under-a-file", "pgdata-is-a-file"])
def test_a_home_that_cannot_be_prepared_is_one_configuration_error_naming_the_folder(
    scratch: Path, unusable: Callable[[Path], Path]
) -> None:
    home = unusable(scratch)
    with pytest.raises(ConfigurationError) as raised:
        embedded_dsn(home)
    message = str(raised.value)
    assert str(home) in message and "HYBRID_RAG_HOME" in message and "DATABASE_URL" in message
    assert "\n" not in message

    get_settings.cache_clear()
    try:
        result = CliRunner(env={"HYBRID_RAG_HOME": str(home), "DATABASE_URL": None}).invoke(main, ["collections"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert str(home) in result.output


@pytest.fixture(scope="module")
def stopped_home() -> Iterator[tuple[Path, str]]:
    """An initialised embedded home whose server is stopped, and the pid file its server wrote."""
    home = _new_home()
    try:
        embedded_dsn(home)
        pid_file_text = (home / "pgdata" / "postmaster.pid").read_text()
        stop_embedded(home)
        yield home, pid_file_text
    finally:
        try:
            stop_embedded(home)
        finally:
            shutil.rmtree(home, ignore_errors=True)


def _dead_pid() -> int:
    pid = 99999
    while Path(f"/proc/{pid}").exists():
        pid += 1
    return pid


@pytest.fixture
def live_process(scratch: Path) -> Iterator[Callable[[str], int]]:
    """Start `sleep 60` under a given executable name; returns its pid (killed afterwards)."""
    started: list[subprocess.Popen[bytes]] = []

    def start(name: str) -> int:
        executable = scratch / name
        shutil.copy(shutil.which("sleep") or "/bin/sleep", executable)
        started.append(subprocess.Popen([str(executable), "60"]))
        comm = Path(f"/proc/{started[-1].pid}/comm")
        deadline = time.monotonic() + 10
        while comm.read_text().strip() != name and time.monotonic() < deadline:  # until it has exec'd
            time.sleep(0.01)
        return started[-1].pid

    yield start
    for process in started:
        process.kill()
        process.wait()


def _with_pid(pid_file_text: str, pid: int) -> str:
    return "\n".join([str(pid), *pid_file_text.splitlines()[1:]]) + "\n"


DAMAGE = {
    "dead-pid": lambda text, live: f"{_dead_pid()}\n".encode(),
    "garbage": lambda text, live: b"\x00\xffgarbage\x17\n\x01\x02",
    "live-non-postgres": lambda text, live: _with_pid(text, live("sleep")).encode(),
}


@needs_embedded
@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_stale_pid_file_is_moved_aside_with_a_warning_and_the_server_starts(
    stopped_home: tuple[Path, str], live_process: Callable[[str], int], damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    home, pid_file_text = stopped_home
    pid_file = (home / "pgdata" / "postmaster.pid").resolve()
    pid_file.write_bytes(DAMAGE[damage](pid_file_text, live_process))
    try:
        with caplog.at_level(logging.WARNING, logger="retriever.store.embedded"):
            dsn = embedded_dsn(home)
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert any(str(pid_file) in record.getMessage() for record in caplog.records), caplog.text
    finally:
        stop_embedded(home)


@needs_embedded
def test_a_pid_file_naming_a_running_server_is_left_alone_and_joined(stopped_home: tuple[Path, str]) -> None:
    home, _ = stopped_home
    pid_file = home / "pgdata" / "postmaster.pid"
    try:
        dsn = embedded_dsn(home)
        before = pid_file.read_text()
        script = "import sys; from pathlib import Path; from retriever.store.embedded import embedded_dsn; "
        script += "print(embedded_dsn(Path(sys.argv[1])))"
        # a second process (the CLI beside the API) joins without pgserver's in-process handle
        joined = subprocess.run(
            [sys.executable, "-c", script, str(home)], capture_output=True, text=True, check=True, timeout=60
        )
        assert joined.stdout.strip() == dsn
        assert "stale" not in joined.stderr
        assert pid_file.read_text() == before
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        stop_embedded(home)


@needs_embedded
def test_a_server_that_does_not_answer_is_one_line_naming_the_data_directory_and_the_pid_file_and_what_to_do(
    stopped_home: tuple[Path, str], live_process: Callable[[str], int]
) -> None:
    home, pid_file_text = stopped_home
    pgdata = (home / "pgdata").resolve()
    pid_file = pgdata / "postmaster.pid"
    not_serving_here = live_process("postgres")  # a postgres by its name, so its pid file is left alone
    pid_file.write_text(_with_pid(pid_file_text, not_serving_here))
    try:
        with pytest.raises(DatabaseUnavailable) as raised:
            embedded_dsn(home)
        message = str(raised.value)
        assert "\n" not in message
        assert str(pgdata) in message and str(pid_file) in message and "remove" in message
        assert pid_file.exists()

        pid_file.unlink()  # as the message says; a retry in the same process then starts the server
        with psycopg.connect(embedded_dsn(home)) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        if pid_file.exists() and pid_file.read_text().split("\n", 1)[0] == str(not_serving_here):
            pid_file.unlink()  # pg_ctl stop would signal that process and wait for it
            joined = pgserver.PostgresServer._instances.pop(pgdata, None)
            if joined is not None:
                atexit.unregister(joined._cleanup)
        stop_embedded(home)
