"""`bench citus`: one BEIR collection on a single node and on a Citus cluster, measured side by side.

The single node is the anchor: the same chunks and the same precomputed embeddings are
loaded into a fresh collection on each server through the ingest bulk path
(`bench._stores.load_ours`: create, `BatchWriter` batches, indexes, ANALYZE; on the
coordinator the collection is sharded by document, `retriever.store.citus`), timed end to end.
Then every judged query runs in each mode (hybrid, vector, text) on both, from one client,
servers and modes in rotating order per query so that a busy moment of the machine falls on
all of them alike; the first queries fill the caches and are ranked but not timed.

Per mode: nDCG@10 on each server, the mean share of the single node's top 10 that the cluster
returns too, and p50/p95 of database time (`extra["db_ms"]`: the statement, executed and
fetched) with the cluster/single ratio (> 1: the cluster is slower). Both collections are
dropped at the end.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import numpy as np
import psycopg
from psycopg.conninfo import conninfo_to_dict
from tqdm import tqdm

from bench._data import Benchmark, load_benchmark
from bench._stores import checkpoint, drop_ours, load_ours
from bench._synthetic import overlap
from bench.query import CANDIDATES, K, ratio
from eval import chunks_to_documents, score_run
from retriever import Engine, SearchParams, Settings
from retriever.embeddings import EmbeddingModel
from retriever.errors import DatabaseUnavailable, InputError
from retriever.settings import get_settings
from retriever.store.collections import get_collection
from retriever.store.tables import SCHEMA

__all__ = ["citus_table", "run_citus_bench", "server_settings"]

MODES = ("hybrid", "vector", "text")
WARMUP = 20

_ABOUT = """
SELECT current_setting('server_version'),
       (SELECT extversion FROM pg_extension WHERE extname = 'citus')
"""
_NODES = "SELECT count(*) FROM pg_dist_node WHERE noderole = 'primary' AND isactive"
_SHARDS = "SELECT count(*) FROM pg_dist_shard WHERE logicalrelid = %s::regclass"


@dataclass
class Server:
    """One side of the comparison: where it is, how its load went, what it answered and how fast."""

    key: str
    settings: Settings
    about: dict[str, Any]
    ingest: dict[str, Any] = field(default_factory=dict)
    top10: dict[str, dict[str, list[str]]] = field(default_factory=lambda: {mode: {} for mode in MODES})
    documents: dict[str, dict[str, dict[str, float]]] = field(default_factory=lambda: {mode: {} for mode in MODES})
    ms: dict[str, list[float]] = field(default_factory=lambda: {mode: [] for mode in MODES})


def server_settings(url: str | None) -> Settings:
    """The environment's settings on server `url` alone (None: the embedded server), no read replica."""
    return dataclasses.replace(get_settings(), database_url=url, database_read_urls=())


def _where(settings: Settings) -> str:
    """host:port/database of a server (never its password), or "embedded"."""
    if not settings.database_url:
        return "embedded"
    parts = conninfo_to_dict(settings.database_url)
    return f"{parts.get('host') or 'localhost'}:{parts.get('port') or 5432}/{parts.get('dbname') or ''}"


def _describe(key: str, settings: Settings) -> Server:
    """Connect to a server and read what it is; the mistakes a user can make here are one `InputError`."""
    where = _where(settings)
    try:
        with Engine(settings).connection() as conn:
            version, citus = conn.execute(_ABOUT).fetchone()  # type: ignore[misc]
            nodes = conn.execute(_NODES).fetchone()[0] if citus else 1  # type: ignore[index]
    except DatabaseUnavailable as exc:
        raise DatabaseUnavailable(f"the {key} server {where}: {exc}") from None
    if key == "cluster" and not citus:
        raise InputError(f"the cluster {where} is not a Citus coordinator: its database has no citus extension")
    if key == "single" and citus:
        raise InputError(f"the single node {where} is a Citus coordinator: name a plain PostgreSQL server")
    return Server(key, settings, {"where": where, "server_version": version, "citus": citus, "nodes": nodes})


def _load(server: Server, name: str, loaded: Benchmark, model: EmbeddingModel) -> None:
    """Load the benchmark's chunks and vectors into a new collection on `server`, timed end to end."""
    checkpoint(server.settings)  # no load pays for earlier writes
    click.echo(
        f"loading {len(loaded.corpus.chunks)} chunks into {name} on the {server.key} ({server.about['where']})",
        err=True,
    )
    phases = load_ours(server.settings, name, loaded.corpus, loaded.vectors, model.name)
    with Engine(server.settings).connection() as conn:
        collection = get_collection(conn, name)
        shards = conn.execute(_SHARDS, (f"{SCHEMA}.{name}",)).fetchone()[0] if collection.distributed else 1  # type: ignore[index]
    server.about |= {"distributed": collection.distributed, "shards": shards}
    seconds = phases["total"]
    server.ingest = {"seconds": seconds, "chunks_per_s": len(loaded.corpus.chunks) / seconds, "phases": phases}


@contextmanager
def _connections(servers: list[Server]) -> Iterator[dict[str, psycopg.Connection]]:
    """One connection per server, held for every query: no connection set-up inside the timings."""
    with ExitStack() as stack:
        yield {server.key: stack.enter_context(Engine(server.settings).connection()) for server in servers}


def _measure(servers: list[Server], name: str, queries: list[tuple[str, str, np.ndarray]]) -> None:
    """Every query in every mode on every server, in rotating order; the first WARMUP queries untimed."""
    params = {mode: SearchParams(k=K, mode=mode, candidates=CANDIDATES, collapse=True) for mode in MODES}  # type: ignore[arg-type]
    turns = [(server, mode) for mode in MODES for server in servers]
    engines = {server.key: Engine(server.settings) for server in servers}
    warmup = min(WARMUP, len(queries) // 5)
    progress = tqdm(queries, desc="queries", unit=" q", leave=False, disable=not sys.stderr.isatty())
    with _connections(servers) as conns:
        for position, (qid, text, vector) in enumerate(progress):
            turn = position % len(turns)
            for server, mode in turns[turn:] + turns[:turn]:
                embedding = None if mode == "text" else vector
                result = engines[server.key].search(
                    name, text, params[mode], embedding=embedding, conn=conns[server.key]
                )
                server.top10[mode][qid] = [hit.id for hit in result.hits]
                server.documents[mode][qid] = chunks_to_documents([(h.document_id, h.score) for h in result.hits], K)
                if position >= warmup:
                    server.ms[mode].append(float(result.extra["db_ms"]))


def _mode(single: Server, cluster: Server, qrels: dict[str, dict[str, int]], mode: str) -> dict[str, Any]:
    """One mode's figures per server, with the cluster's overlap with the single node and its ratios to it."""
    entry: dict[str, Any] = {}
    for server in (single, cluster):
        entry[server.key] = {
            "ndcg@10": score_run(qrels, server.documents[mode])["ndcg@10"],
            "p50_ms": float(np.percentile(server.ms[mode], 50)),
            "p95_ms": float(np.percentile(server.ms[mode], 95)),
        }
    entry["top10_overlap"] = overlap(cluster.top10[mode], single.top10[mode])
    entry["ndcg@10_cluster_minus_single"] = entry["cluster"]["ndcg@10"] - entry["single"]["ndcg@10"]
    for stat in ("p50_ms", "p95_ms"):
        entry[f"{stat}_cluster_over_single"] = ratio(entry["cluster"][stat], entry["single"][stat])
    return entry


def _results(dataset_dir: Path, split: str, loaded: Benchmark, single: Server, cluster: Server) -> dict[str, Any]:
    qrels = loaded.dataset.qrels
    chunks_per_s = (single.ingest["chunks_per_s"], cluster.ingest["chunks_per_s"])
    return {
        "dataset": str(dataset_dir),
        "split": split,
        "queries": len(loaded.queries),
        "chunks": len(loaded.corpus.chunks),
        "documents": len(loaded.corpus.documents),
        "params": {"k": K, "candidates": CANDIDATES, "collapse": True, "warmup_queries": WARMUP},
        "servers": {server.key: server.about for server in (single, cluster)},
        "ingest": {
            "single": single.ingest,
            "cluster": cluster.ingest,
            "chunks_per_s_cluster_over_single": ratio(chunks_per_s[1], chunks_per_s[0]),
        },
        "modes": {mode: _mode(single, cluster, qrels, mode) for mode in MODES},
    }


def run_citus_bench(
    single_settings: Settings,
    cluster_settings: Settings,
    dataset_dir: Path,
    model: EmbeddingModel,
    *,
    split: str = "test",
) -> dict[str, Any]:
    """Load the dataset on both servers, run its queries on both; returns JSON-ready results."""
    load_start = os.getloadavg()
    single, cluster = _describe("single", single_settings), _describe("cluster", cluster_settings)
    loaded = load_benchmark(single_settings, dataset_dir, model, split)  # embedded once, for both servers
    name = f"bench_citus_{uuid.uuid4().hex[:8]}"
    try:
        for server in (single, cluster):
            _load(server, name, loaded, model)
        click.echo(f"running {len(loaded.queries)} queries ({split}) in {len(MODES)} modes on both", err=True)
        _measure([single, cluster], name, loaded.queries)
    finally:
        for server in (single, cluster):
            drop_ours(server.settings, name)
    results = _results(dataset_dir, split, loaded, single, cluster)
    results["load_average"] = {"start": list(load_start), "end": list(os.getloadavg())}
    return results


def _server_line(key: str, about: dict[str, Any]) -> str:
    version = about["server_version"].split()[0]  # without the packager's suffix
    if about["citus"] is None:
        return f"{key}: PostgreSQL {version} ({about['where']})"
    return (
        f"{key}: PostgreSQL {version} + Citus {about['citus']} ({about['where']}), "
        f"{about['nodes']} nodes, {about['shards']} shards"
    )


def citus_table(results: dict[str, Any]) -> str:
    """The results as a table people read; the anchor is the single node."""
    ingest, servers = results["ingest"], results["servers"]
    load = results["load_average"]
    lines = [
        f"citus: {results['queries']} {results['split']} queries over {results['chunks']} chunks "
        f"({results['documents']} documents), {results['params']['candidates']} candidates per leg, "
        "database time, warm, one client",
        _server_line("single", servers["single"]),
        _server_line("cluster", servers["cluster"]),
        f"load average (1, 5, 15 min): {tuple(round(v, 2) for v in load['start'])} at the start, "
        f"{tuple(round(v, 2) for v in load['end'])} at the end",
        "",
        f"ingest: single {ingest['single']['chunks_per_s']:.0f} chunks/s ({ingest['single']['seconds']:.1f} s), "
        f"cluster {ingest['cluster']['chunks_per_s']:.0f} chunks/s ({ingest['cluster']['seconds']:.1f} s), "
        f"cluster/single {ingest['chunks_per_s_cluster_over_single']:.2f}×",
        "",
    ]
    header = (
        f"{'mode':<7} {'nDCG single':>11} {'nDCG cluster':>12} {'overlap':>7} "
        f"{'p50 single':>10} {'p50 cluster':>11} {'ratio':>6} {'p95 single':>10} {'p95 cluster':>11} {'ratio':>6}"
    )
    lines += [header, "-" * len(header)]
    for mode, entry in results["modes"].items():
        single, cluster = entry["single"], entry["cluster"]
        lines.append(
            f"{mode:<7} {single['ndcg@10']:>11.3f} {cluster['ndcg@10']:>12.3f} {entry['top10_overlap']:>7.3f} "
            f"{single['p50_ms']:>10.2f} {cluster['p50_ms']:>11.2f} {entry['p50_ms_cluster_over_single']:>5.2f}× "
            f"{single['p95_ms']:>10.2f} {cluster['p95_ms']:>11.2f} {entry['p95_ms_cluster_over_single']:>5.2f}×"
        )
    lines += [
        "",
        "overlap: mean share of the single node's top 10 the cluster returns too; "
        "ratio: cluster/single (> 1: the cluster is slower).",
    ]
    return "\n".join(lines)
