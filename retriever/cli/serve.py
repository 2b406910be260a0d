"""`hybrid-rag serve`: the HTTP API under uvicorn, refusing to expose an unauthenticated server."""

from __future__ import annotations

import copy
import ipaddress
import os
from typing import Any

import click

from retriever.boundary import map_errors
from retriever.cli.options import CliError, cli_errors, database_option, settings_from
from retriever.connections import open_primary
from retriever.http.auth import ApiKeys
from retriever.settings import Settings

__all__ = ["check_bind", "is_loopback", "serve_command"]


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach `host` (127.0.0.0/8, ::1, localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def check_bind(host: str, settings: Settings) -> None:
    """Refuse a non-loopback address unless API keys are configured (and well formed)."""
    ApiKeys(settings.api_keys)
    if not settings.api_keys and not is_loopback(host):
        raise CliError(
            f"refusing to listen on {host} without API keys: anyone who can reach it could read and change "
            "every collection. Set API_KEYS (comma-separated bearer tokens) or listen on 127.0.0.1."
        )


def _log_config(level: str) -> dict[str, Any]:
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["retriever"] = {"handlers": ["default"], "level": level.upper(), "propagate": False}
    config["loggers"]["psycopg.pool"] = {"handlers": ["default"], "level": "WARNING", "propagate": False}
    return config


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on.")
@click.option(
    "--workers", default=1, show_default=True, type=click.IntRange(1), help="Processes, each with its pool and model."
)
@click.option("--access-log/--no-access-log", default=True, show_default=True, help="Log every request.")
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
)
@database_option
@cli_errors
def serve_command(
    host: str, port: int, workers: int, access_log: bool, log_level: str, database_url: str | None
) -> None:
    """Serve the HTTP API; OpenAPI document and explorer at /schema.

    Without API_KEYS only a loopback address is allowed. Settings (pool size,
    timeouts, limits) come from the environment: see the README. Each query's
    embedding uses one CPU thread (OMP_NUM_THREADS=1 unless set): concurrent
    requests use the cores.

    \b
    Example:
        hybrid-rag serve
        API_KEYS=s3cret hybrid-rag serve --host 0.0.0.0 --port 8080 --workers 2
        curl -s localhost:8000/v1/collections/demo/search -d '{"query": "stargazing gift", "k": 3}'
    """
    settings = settings_from(database_url)
    check_bind(host, settings)
    with map_errors(), open_primary(settings):  # migrated here: a database that is not there is one line
        pass
    if database_url:  # the workers read their settings from the environment
        os.environ["DATABASE_URL"] = database_url
    # Requests embed their queries in parallel threads; a model that also spreads each query over
    # every core oversubscribes the CPU (on 2 loaded cores: ~15x slower per query). Set before torch loads.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import uvicorn

    uvicorn.run(
        "retriever.http:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=access_log,
        log_level=log_level,
        log_config=_log_config(log_level),
        server_header=False,
        timeout_graceful_shutdown=10,
        # a worker answers the supervisor's pings only between imports: loading torch can take longer than 5 s
        timeout_worker_healthcheck=60,
    )


if __name__ == "__main__":  # `python -m retriever.cli.serve`: the API alone, without the other subcommands' extras
    serve_command()
