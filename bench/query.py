"""`bench query`: nDCG@10 and database time of our hybrid / vector / text search vs
langchain-postgres hybrid search, over the same rows and the same precomputed embeddings.

Both run at the same depth (100 candidates per leg). langchain-postgres runs with RRF at
`hnsw.ef_search` 40 (pgvector's default) and 100, each setting on its own engine (fresh
connections: psycopg prepares a statement after 5 runs, and a plan cached under one
setting must not serve the other). Its text leg gets each query's own text through the
`fts_query` argument of `asimilarity_search_with_score_by_vector`; `asimilarity_search`
would pin the first query's text into the shared `HybridSearchConfig` (its issue #288).

Timing: ours is `extra["db_ms"]` (the statement, executed and fetched); langchain-postgres
is its whole search call with a precomputed vector: its two statements, its Python fusion
and Document building, no embedding. One client; queries interleave the systems in a
rotating order, and a warm-up pass over the first queries is discarded.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import numpy as np
import psycopg
from langchain_postgres.v2.hybrid_search_config import HybridSearchConfig
from psycopg import sql
from sqlalchemy.ext.asyncio import create_async_engine

from bench._data import Corpus, PrecomputedEmbeddings, load_benchmark
from bench._stores import (
    LC_SCHEMA,
    drop_ours,
    drop_pgvectorstore,
    hybrid_config,
    load_ours,
    load_pgvectorstore,
    open_pgvectorstore,
    sqlalchemy_url,
)
from eval import chunks_to_documents, score_run
from retriever import CollectionNotFound, Engine, SearchParams, Settings
from retriever.embeddings import EmbeddingModel
from retriever.store.collections import get_collection, missing_indexes
from retriever.store.database import primary_dsn

__all__ = ["query_table", "ratio", "run_query_bench"]

CANDIDATES = 100
K = 10
WARMUP = 20

Ranking = list[tuple[str, float]]  # (document id, score), best first
Runner = Callable[[str, np.ndarray], Awaitable[tuple[Ranking, float]]]


@dataclass
class System:
    """One contender: how it answers a query, and what it answered."""

    key: str
    label: str
    answer: Runner
    run: dict[str, dict[str, float]] = field(default_factory=dict)
    ms: list[float] = field(default_factory=list)


def _names(corpus: Corpus, model: EmbeddingModel) -> tuple[str, str]:
    tag = hashlib.sha256(f"{model.name}\0{corpus.fingerprint()}".encode()).hexdigest()[:12]
    return f"bench_q_{tag}", f"bench_pgvs_q_{tag}"


def _ours_ready(settings: Settings, name: str, rows: int) -> bool:
    with Engine(settings).connection() as conn:
        try:
            collection = get_collection(conn, name)
        except CollectionNotFound:
            return False
        missing = missing_indexes(conn, collection)
    return collection.chunk_count == rows and not missing


def _pgvectorstore_ready(settings: Settings, table: str, rows: int) -> bool:
    with Engine(settings).connection() as conn:
        if conn.execute("SELECT to_regclass(%s)", (f"{LC_SCHEMA}.{table}",)).fetchone()[0] is None:  # type: ignore[index]
            return False
        count = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(LC_SCHEMA, table))).fetchone()[0]  # type: ignore[index]
        indexes = conn.execute(
            "SELECT count(*) FROM pg_indexes WHERE schemaname = %s AND indexname = ANY(%s)",
            (LC_SCHEMA, [f"{table}_hnsw", f"{table}_tsv_gin"]),
        ).fetchone()[0]  # type: ignore[index]
    return count == rows and indexes == 2


def prepare_stores(
    settings: Settings, corpus: Corpus, vectors: np.ndarray, model: EmbeddingModel, *, fresh: bool = False
) -> tuple[str, str]:
    """Our collection and a PGVectorStore table over the same rows; reused when already built."""
    collection, table = _names(corpus, model)
    rows = len(corpus.chunks)
    if fresh or not _ours_ready(settings, collection, rows):
        drop_ours(settings, collection)
        click.echo(f"loading {rows} rows into collection {collection}", err=True)
        load_ours(settings, collection, corpus, vectors, model.name)
    if fresh or not _pgvectorstore_ready(settings, table, rows):
        drop_pgvectorstore(settings, table)
        click.echo(f"loading {rows} rows into PGVectorStore table {LC_SCHEMA}.{table}", err=True)
        embeddings = PrecomputedEmbeddings(corpus.texts, vectors)
        asyncio.run(load_pgvectorstore(primary_dsn(settings), table, corpus, vectors, embeddings))
        with Engine(settings).connection() as conn:
            conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(LC_SCHEMA, table)))
    return collection, table


def _ours(settings: Settings, conn: psycopg.Connection, collection: str, mode: str) -> Runner:
    params = SearchParams(k=K, mode=mode, candidates=CANDIDATES, collapse=True)  # type: ignore[arg-type]
    engine = Engine(settings)

    async def answer(text: str, vector: np.ndarray) -> tuple[Ranking, float]:
        embedding = None if mode == "text" else vector
        result = engine.search(collection, text, params, embedding=embedding, conn=conn)
        return [(hit.document_id, hit.score) for hit in result.hits], float(result.extra["db_ms"])

    return answer


def _langchain(store: Any, config: HybridSearchConfig, document_of: dict[str, str]) -> Runner:
    async def answer(text: str, vector: np.ndarray) -> tuple[Ranking, float]:
        embedding = vector.tolist()
        started = time.perf_counter()
        found = await store.asimilarity_search_with_score_by_vector(embedding=embedding, k=2 * K, fts_query=text)
        ms = (time.perf_counter() - started) * 1000
        # a text pinned into the shared config would silently serve every later query (issue #288)
        assert not config.fts_query, "langchain-postgres pinned a query text into its HybridSearchConfig"
        return [(document_of[document.id], float(score)) for document, score in found], ms

    return answer


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else 0.0


async def _measure(systems: list[System], queries: list[tuple[str, str, np.ndarray]], warmup: int) -> None:
    for _qid, text, vector in queries[:warmup]:
        for system in systems:
            await system.answer(text, vector)
    for position, (qid, text, vector) in enumerate(queries):
        turn = position % len(systems)
        for system in systems[turn:] + systems[:turn]:
            ranking, ms = await system.answer(text, vector)
            system.run[qid] = chunks_to_documents(ranking, K) if ranking else {}
            system.ms.append(ms)


def run_query_bench(
    settings: Settings,
    dataset_dir: Path,
    model: EmbeddingModel,
    *,
    split: str = "test",
    fresh: bool = False,
    warmup: int = WARMUP,
) -> dict[str, Any]:
    """Run the query benchmark and return its JSON-ready results."""
    loaded = load_benchmark(settings, dataset_dir, model, split)
    dataset, corpus, vectors, queries = loaded.dataset, loaded.corpus, loaded.vectors, loaded.queries
    collection, table = prepare_stores(settings, corpus, vectors, model, fresh=fresh)
    document_of = {chunk.id: chunk.document_id for chunk in corpus.chunks}
    embeddings = PrecomputedEmbeddings(corpus.texts, vectors)
    click.echo(f"running {len(queries)} queries ({split}) against 5 systems", err=True)

    async def main() -> list[System]:
        url = sqlalchemy_url(primary_dsn(settings))
        engines = {ef: create_async_engine(url) for ef in (40, 100)}
        try:
            # both systems on the primary: a replica (DATABASE_READ_URL) would not be a like-for-like comparison
            engine = Engine(settings)
            with engine.connection() as hybrid, engine.connection() as vector, engine.connection() as text:
                systems = [
                    System(
                        "hybrid",
                        "hybrid-rag hybrid (HNSW + BM25, weighted RRF, 1 statement)",
                        _ours(settings, hybrid, collection, "hybrid"),
                    ),
                    System("vector", "hybrid-rag vector", _ours(settings, vector, collection, "vector")),
                    System("text", "hybrid-rag text (BM25, postings)", _ours(settings, text, collection, "text")),
                ]
                for ef, engine in engines.items():
                    config = hybrid_config(table)
                    store = await open_pgvectorstore(engine, table, embeddings, ef_search=ef, config=config)
                    systems.append(
                        System(
                            f"lc_ef{ef}",
                            f"langchain-postgres hybrid, RRF 100/100, ef_search {ef}",
                            _langchain(store, config, document_of),
                        )
                    )
                await _measure(systems, queries, min(warmup, len(queries)))
                return systems
        finally:
            for engine in engines.values():
                await engine.dispose()

    systems = asyncio.run(main())
    return _results(dataset_dir, split, dataset.qrels, systems, len(corpus.chunks))


def _scores(qrels: dict[str, dict[str, int]], system: System) -> dict[str, float]:
    metrics = score_run(qrels, system.run)
    return {
        "ndcg@10": metrics["ndcg@10"],
        "recall@10": metrics["recall@10"],
        "p50_ms": _percentile(system.ms, 50),
        "p95_ms": _percentile(system.ms, 95),
        "mean_ms": float(np.mean(system.ms)) if system.ms else 0.0,
    }


def _results(
    dataset_dir: Path, split: str, qrels: dict[str, dict[str, int]], systems: list[System], rows: int
) -> dict[str, Any]:
    by_key = {system.key: (system, _scores(qrels, system)) for system in systems}
    modes = {key: {"label": by_key[key][0].label, **by_key[key][1]} for key in ("hybrid", "vector", "text")}
    ef40, ef100 = by_key["lc_ef40"][1], by_key["lc_ef100"][1]
    hybrid = modes["hybrid"]
    return {
        "dataset": str(dataset_dir),
        "split": split,
        "queries": len(qrels),
        "rows": rows,
        "candidates": CANDIDATES,
        "ours": {
            "params": {"k": K, "collapse": True, **_params(SearchParams())},
            "ndcg@10": hybrid["ndcg@10"],
            "recall@10": hybrid["recall@10"],
            "p50_ms": hybrid["p50_ms"],
            "p95_ms": hybrid["p95_ms"],
            "modes": modes,
        },
        "langchain_postgres": {
            "params": {"fusion": "reciprocal_rank_fusion", "rrf_k": 60, "primary_top_k": 100, "secondary_top_k": 100},
            "ndcg@10": ef40["ndcg@10"],
            "recall@10": ef40["recall@10"],
            "p50_ms": ef40["p50_ms"],
            "p95_ms": ef40["p95_ms"],
            "ndcg@10_ef100": ef100["ndcg@10"],
            "recall@10_ef100": ef100["recall@10"],
            "p50_ms_ef100": ef100["p50_ms"],
            "p95_ms_ef100": ef100["p95_ms"],
        },
        "ratios": {
            "ndcg@10_gain_vs_lc_ef40": hybrid["ndcg@10"] - ef40["ndcg@10"],
            "ndcg@10_gain_vs_lc_ef100": hybrid["ndcg@10"] - ef100["ndcg@10"],
            "lc_ef40_p50_over_ours": ratio(ef40["p50_ms"], hybrid["p50_ms"]),
            "lc_ef100_p50_over_ours": ratio(ef100["p50_ms"], hybrid["p50_ms"]),
        },
    }


def _params(params: SearchParams) -> dict[str, Any]:
    """The fusion settings ours ran with: the product's defaults, whatever they are today."""
    return {"candidates": CANDIDATES, "rrf_k": params.rrf_k, "weights": list(params.weights)}


def ratio(a: float, b: float) -> float:
    """a / b, infinite when b is 0: a figure against its anchor, measured in the same run."""
    return a / b if b else float("inf")


def query_table(results: dict[str, Any]) -> str:
    """The results as a table people read; the anchor is langchain-postgres at ef_search 40."""
    lc = results["langchain_postgres"]
    anchor_ndcg, anchor_p50 = lc["ndcg@10"], lc["p50_ms"]
    rows = [
        (mode["label"], mode["ndcg@10"], mode["recall@10"], mode["p50_ms"], mode["p95_ms"])
        for mode in results["ours"]["modes"].values()
    ]
    rows.append(
        (
            "langchain-postgres hybrid, RRF 100/100, ef_search 40 (anchor)",
            anchor_ndcg,
            lc["recall@10"],
            anchor_p50,
            lc["p95_ms"],
        )
    )
    rows.append(
        (
            "langchain-postgres hybrid, RRF 100/100, ef_search 100",
            lc["ndcg@10_ef100"],
            lc["recall@10_ef100"],
            lc["p50_ms_ef100"],
            lc["p95_ms_ef100"],
        )
    )
    header = f"{'system':<62} {'nDCG@10':>7} {'Δ':>7} {'R@10':>6} {'p50 ms':>7} {'p95 ms':>7} {'p50 vs anchor':>14}"
    lines = [
        f"query: {results['queries']} {results['split']} queries over {results['rows']} rows, "
        f"{results['candidates']} candidates per leg, database time, warm, one client",
        header,
        "-" * len(header),
    ]
    for label, ndcg, recall, p50, p95 in rows:
        speed = anchor_p50 / p50 if p50 else float("inf")
        lines.append(
            f"{label:<62} {ndcg:>7.3f} {ndcg - anchor_ndcg:>+7.3f} {recall:>6.3f} {p50:>7.2f} {p95:>7.2f}"
            f" {speed:>12.2f}×"
        )
    lines.append("")
    params = results["ours"]["params"]
    lines.append(
        f"ours: rrf_k {params['rrf_k']}, weights (vector, text) {tuple(params['weights'])}, ef_search ≥ 100; "
        "langchain-postgres: rrf_k 60, weights 1/1."
    )
    lines.append("p50 vs anchor: how many times faster than the anchor (>1 is faster).")
    return "\n".join(lines)
