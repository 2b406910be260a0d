"""Load benchmark of the HTTP API: N concurrent clients searching for a fixed time, old path against new.

Starts two `hybrid-rag serve` on loopback over an ingested collection: "old" embeds every query
alone and caches nothing (QUERY_BATCH_MAX=1, QUERY_CACHE_SIZE=0), "new" runs with the
environment's settings (batching and the query cache by default). For each client count it
runs, on each server in turn (the order alternating), a short warm-up and a timed window in
which every client sends one search after another over its own keep-alive connection, and
prints requests/s, p50/p95/p99 latency, errors and the machine's 1-minute load average per
round, with the new ÷ old ratios. Every query text is sent once in the whole run (a question
from a fixed list with a sequence number), so the cache never flatters the figures; a last
round per client count on the new server cycles the 20 plain questions, all cached after the
warm-up, for the cache-hit figure (`--no-cached` skips it). With --url it drives that one
server instead. The clients run on the same machine as the servers and compete with them for
the CPU.

    hybrid-rag ingest samples --collection demo
    python -m bench.load --collection demo --clients 1,32 --seconds 10
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


OLD_PATH = {"QUERY_BATCH_MAX": "1", "QUERY_CACHE_SIZE": "0"}  # each query embedded alone, nothing cached
NEW_SETTINGS = ("QUERY_BATCH_WINDOW_MS", "QUERY_BATCH_MAX", "QUERY_CACHE_SIZE", "EMBEDDINGS", "POOL_SIZE")


def distinct_queries() -> Iterator[str]:
    """The questions with a sequence number: no text twice, each about as long to embed as a question."""
    for n in itertools.count(1):
        yield f"{QUERIES[n % len(QUERIES)]} ({n})"


@dataclass
class Round:
    """One client count's figures on one server ("old", "new", "new, cached")."""

    path: str
    clients: int
    seconds: float
    requests: int
    errors: int
    requests_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    load_1m: float  # the machine's 1-minute load average at the end of the round


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
def serve(workers: int, env: dict[str, str] | None = None, timeout_s: float = 300) -> Iterator[str]:
    """`hybrid-rag serve` on a free loopback port (`env` over the environment), until it answers /readyz;
    stopped on exit."""
    port = _free_port()
    command = [*_serve_command(), "--host", "127.0.0.1", "--port", str(port)]
    command += ["--workers", str(workers), "--no-access-log", "--log-level", "warning"]
    log = open(os.devnull, "w")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})
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


async def run_round(
    path: str, url: str, collection: str, clients: int, timing: tuple[float, float], body: dict, queries: Iterator[str]
) -> Round:
    """Warm up for `timing[1]` seconds, then drive `clients` concurrent clients for `timing[0]` seconds."""
    seconds, warmup = timing
    key = _api_key()
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    base = f"{url}/v1/collections/{collection}/"
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
        path=path,
        clients=clients,
        seconds=round(elapsed, 2),
        requests=len(samples),
        errors=errors,
        requests_per_s=round((len(samples) - errors) / elapsed, 1),
        p50_ms=round(float(p50), 1),
        p95_ms=round(float(p95), 1),
        p99_ms=round(float(p99), 1),
        load_1m=round(os.getloadavg()[0], 2),
    )


def table(rounds: list[Round]) -> str:
    """The figures as a Markdown table, with a "new ÷ old" row after each client count's pair."""
    lines = [
        "| clients | path | requests | errors | req/s | p50 ms | p95 ms | p99 ms | load 1m |",
        "|--------:|:-----|---------:|-------:|------:|-------:|-------:|-------:|--------:|",
    ]
    for r in rounds:
        lines.append(
            f"| {r.clients} | {r.path} | {r.requests} | {r.errors} | {r.requests_per_s:.1f} | {r.p50_ms:.1f} "
            f"| {r.p95_ms:.1f} | {r.p99_ms:.1f} | {r.load_1m:.2f} |"
        )
        ratio = ratios(rounds, r.clients)
        pair = [other for other in rounds if other.clients == r.clients and other.path in ("old", "new")]
        if ratio and r is pair[-1]:
            lines.append(
                f"| {r.clients} | new ÷ old | | | {ratio['requests_per_s']:.2f}× | {ratio['p50_ms']:.2f}× "
                f"| {ratio['p95_ms']:.2f}× | {ratio['p99_ms']:.2f}× | |"
            )
    return "\n".join(lines)


def ratios(rounds: list[Round], clients: int) -> dict[str, float] | None:
    """New ÷ old for req/s and the latencies at `clients`, or None without both rounds."""
    by_path = {r.path: r for r in rounds if r.clients == clients}
    old, new = by_path.get("old"), by_path.get("new")
    if old is None or new is None:
        return None
    fields = ("requests_per_s", "p50_ms", "p95_ms", "p99_ms")
    return {f: round(getattr(new, f) / getattr(old, f), 3) if getattr(old, f) else float("nan") for f in fields}


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
@click.option("--url", help="an already running server instead of starting two")
@click.option(
    "--compare/--no-compare",
    default=True,
    help="also serve the old path (QUERY_BATCH_MAX=1, QUERY_CACHE_SIZE=0) and run it round by round beside the new",
)
@click.option("--cached/--no-cached", default=True, help="a round of 20 repeated, cached questions per client count")
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
    compare: bool,
    cached: bool,
    as_json: bool,
) -> None:
    body = {"k": k, "mode": mode}
    queries = distinct_queries()
    rounds: list[Round] = []
    with contextlib.ExitStack() as servers:
        new_url = url or servers.enter_context(serve(workers))
        old_url = servers.enter_context(serve(workers, OLD_PATH)) if compare and not url else None
        chunks = _check_collection(new_url, collection)
        for turn, n in enumerate(counts):
            plan = [("old", old_url, queries)] if old_url else []
            plan.insert(turn % 2, ("new", new_url, queries))  # old first, then new first, ...: no order bias
            if cached:
                plan.append(("new, cached", new_url, itertools.cycle(QUERIES)))
            for path, server_url, texts in plan:
                rounds.append(asyncio.run(run_round(path, server_url, collection, n, (seconds, warmup), body, texts)))
    setup = {
        "collection": collection,
        "chunks": chunks,
        "mode": mode,
        "k": k,
        "server_workers": workers if not url else None,
        "cpus": os.cpu_count(),
        **{var: os.environ.get(var, "(default)") for var in NEW_SETTINGS},
    }
    if as_json:
        ratio = {n: ratios(rounds, n) for n in counts}
        click.echo(json.dumps({"setup": setup, "rounds": [asdict(r) for r in rounds], "new_over_old": ratio}))
        return
    click.echo(", ".join(f"{key}={value}" for key, value in setup.items() if value is not None))
    click.echo(table(rounds))


if __name__ == "__main__":
    main()
