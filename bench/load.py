"""Load benchmark of the HTTP API: N concurrent clients searching for a fixed time.

Starts `hybrid-rag serve` on loopback over an ingested collection (or uses --url), then for
each client count runs a short warm-up and a timed window in which every client sends one
search after another over its own keep-alive connection. Prints requests/s, p50/p95/p99
latency and the error count per client count. The clients run on the same machine as the
server and compete with it for the CPU.

    hybrid-rag ingest samples --collection demo
    python -m bench.load --collection demo --clients 1,8,32 --seconds 10
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import click
import httpx
import numpy as np

QUERIES = [
    "what should I buy someone who wants to start stargazing",
    "109P Swift-Tuttle",
    "MIL-STD-1815",
    "which wartime machine read the German high command's teleprinter traffic?",
    "how do I adjust a rear derailleur",
    "brewing tips",
    "why does my espresso taste sour",
    "how often should I replace a bike chain",
    "what to do when someone is choking",
    "how to grow tomatoes in pots",
    "signs of a stroke",
    "best beans for cold brew",
    "pruning roses in winter",
    "recovery position steps",
    "the year 2038 problem",
    "soil pH for blueberries",
    "dark adaptation at the telescope",
    "tubeless tyre pressure",
    "water hardness and coffee extraction",
    "ENIAC programmers",
]


@dataclass
class Round:
    """One client count's figures."""

    clients: int
    seconds: float
    requests: int
    errors: int
    requests_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve_command() -> list[str]:
    """`hybrid-rag serve`, or the same command through `python -m` where the script is not installed."""
    script = shutil.which("hybrid-rag", path=str(Path(sys.executable).parent)) or shutil.which("hybrid-rag")
    return [script, "serve"] if script else [sys.executable, "-m", "retriever.cli.serve"]


def _api_key() -> str | None:
    entries = [entry.strip() for entry in os.environ.get("API_KEYS", "").split(",") if entry.strip()]
    return entries[0].rpartition("@")[0] or entries[0] if entries else None


@contextlib.contextmanager
def serve(workers: int, timeout_s: float = 300) -> Iterator[str]:
    """`hybrid-rag serve` on a free loopback port, until it answers /readyz; stopped on exit."""
    port = _free_port()
    command = [*_serve_command(), "--host", "127.0.0.1", "--port", str(port)]
    command += ["--workers", str(workers), "--no-access-log", "--log-level", "warning"]
    log = open(os.devnull, "w")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if server.poll() is not None:
                raise SystemExit(f"the server exited with {server.returncode}:\n{server.stderr.read()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise SystemExit(f"the server did not become ready in {timeout_s:.0f} s")
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


async def _client(
    url: str, headers: dict[str, str], body: dict, queries: Iterator[str], until: float, record: bool, out: list
) -> None:
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
        while time.monotonic() < until:
            started = time.perf_counter()
            try:
                response = await client.post("search", json={**body, "query": next(queries)})
                ok = response.status_code == 200
            except httpx.HTTPError:
                ok = False
            if record:
                out.append((time.perf_counter() - started, ok))


async def run_round(url: str, collection: str, clients: int, seconds: float, warmup: float, body: dict) -> Round:
    """Warm up, then drive `clients` concurrent clients for `seconds`."""
    key = _api_key()
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    base = f"{url}/v1/collections/{collection}/"
    queries = itertools.cycle(QUERIES)
    samples: list[tuple[float, bool]] = []
    for window, record in ((warmup, False), (seconds, True)):
        if window <= 0:
            continue
        until = time.monotonic() + window
        started = time.monotonic()
        await asyncio.gather(*(_client(base, headers, body, queries, until, record, samples) for _ in range(clients)))
        elapsed = time.monotonic() - started
    latencies = np.array([latency for latency, _ in samples]) * 1000
    errors = sum(not ok for _, ok in samples)
    p50, p95, p99 = np.percentile(latencies, [50, 95, 99]) if len(latencies) else (float("nan"),) * 3
    return Round(
        clients=clients,
        seconds=round(elapsed, 2),
        requests=len(samples),
        errors=errors,
        requests_per_s=round((len(samples) - errors) / elapsed, 1),
        p50_ms=round(float(p50), 1),
        p95_ms=round(float(p95), 1),
        p99_ms=round(float(p99), 1),
    )


def table(rounds: list[Round]) -> str:
    """The figures as a Markdown table."""
    lines = [
        "| clients | requests | errors | req/s | p50 ms | p95 ms | p99 ms |",
        "|--------:|---------:|-------:|------:|-------:|-------:|-------:|",
    ]
    lines += [
        f"| {r.clients} | {r.requests} | {r.errors} | {r.requests_per_s:.1f} | {r.p50_ms:.1f} | {r.p95_ms:.1f} "
        f"| {r.p99_ms:.1f} |"
        for r in rounds
    ]
    return "\n".join(lines)


def _check_collection(url: str, collection: str) -> int:
    key = _api_key()
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    found = httpx.get(f"{url}/v1/collections", headers=headers, timeout=10).json()["collections"]
    chunks = {c["name"]: c["chunks"] for c in found}
    if collection not in chunks:
        raise SystemExit(
            f"no collection {collection!r}: ingest it first, e.g. hybrid-rag ingest samples -c {collection}"
        )
    return chunks[collection]


def _client_counts(_ctx: click.Context, _param: click.Parameter, value: str) -> list[int]:
    try:
        return [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(f"{value!r}: use comma-separated client counts, e.g. 1,8,32") from None


@click.command(
    "load",
    help=__doc__.split("\n\n")[0],
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option("--collection", "-c", required=True, help="an ingested collection")
@click.option(
    "--clients", "counts", default="1,8,32", callback=_client_counts, help="comma-separated concurrent client counts"
)
@click.option("--seconds", type=float, default=10, help="measured window per client count")
@click.option("--warmup", type=float, default=2, help="unmeasured warm-up per client count")
@click.option("--mode", default="hybrid", type=click.Choice(["hybrid", "vector", "text"]))
@click.option("-k", "k", type=int, default=10)
@click.option("--workers", type=int, default=1, help="server processes")
@click.option("--url", help="an already running server instead of starting one")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
def main(
    collection: str,
    counts: list[int],
    seconds: float,
    warmup: float,
    mode: str,
    k: int,
    workers: int,
    url: str | None,
    as_json: bool,
) -> None:
    body = {"k": k, "mode": mode}

    with contextlib.nullcontext(url) if url else serve(workers) as server_url:
        chunks = _check_collection(server_url, collection)
        rounds = [asyncio.run(run_round(server_url, collection, n, seconds, warmup, body)) for n in counts]
    setup = {
        "collection": collection,
        "chunks": chunks,
        "mode": mode,
        "k": k,
        "server_workers": workers if not url else None,
        "cpus": os.cpu_count(),
        "pool_size": os.environ.get("POOL_SIZE", "8 (default)"),
    }
    if as_json:
        click.echo(json.dumps({"setup": setup, "rounds": [asdict(r) for r in rounds]}))
        return
    click.echo(", ".join(f"{key}={value}" for key, value in setup.items() if value is not None))
    click.echo(table(rounds))


if __name__ == "__main__":
    main()
