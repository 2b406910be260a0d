"""`bench scale`: build time, sizes, latency and approximation error at 10K → 1M chunks.

Every collection holds the real BEIR corpus (one chunk per document, real embeddings),
so the real test queries still measure quality, plus synthetic chunks up to the size:

- Text: each synthetic chunk draws 2-4 real documents as its sources and resamples
  whole sentences from them (in proportions drawn from a flat Dirichlet) until it
  reaches a length drawn uniformly from 400-1000 characters, the size `hybrid-rag
  ingest` cuts. Words, their frequencies and co-occurrences are real text's, so term
  statistics grow like a real corpus of mixed topics, not like random words.
- Vectors: the sources' real embeddings mixed in the same proportions as the sentences,
  plus Gaussian noise at 30% of the mixture's norm, normalised. Every vector is a new
  point between a few real topics, tied to its own text: neither uniform noise (no
  structure for HNSW to exploit) nor near-copies of a few real vectors (clusters of
  near-duplicates, where HNSW recall collapses).

Per size the benchmark reports the build (bulk load, indexes, ANALYZE: `hybrid-rag
ingest`'s own path, embeddings precomputed), table and index sizes, nDCG@10 and p50/p95
database time of each mode over the test queries, HNSW recall@10 against exact search
(numpy, all vectors), and the bounded BM25 leg against exact BM25 over the same
collection (`SearchParams.exact_text`), alone and inside the hybrid.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import click
import numpy as np
import psycopg
from tqdm import tqdm

from bench._data import Corpus, load_benchmark
from bench._scale_report import scale_table
from bench._stores import BATCH_CHUNKS, HNSW_EF_CONSTRUCTION, HNSW_M, drop_ours
from bench._synthetic import ExactNeighbours, K, SyntheticCorpus, synthetic_documents
from eval import chunks_to_documents, score_run
from retriever import CollectionNotFound, Engine, SearchParams, Settings
from retriever.embeddings import EmbeddingModel
from retriever.store.batches import BatchWriter
from retriever.store.collections import create_collection, get_collection, missing_indexes
from retriever.store.maintenance import collection_stats
from retriever.store.records import batches
from retriever.store.tables import SCHEMA

__all__ = ["SIZES", "run_scale_bench"]

SIZES = (10_000, 100_000, 1_000_000)
WARMUP = 20
MODES = {  # key → (label, search parameters)
    "hybrid": ("hybrid (bounded BM25 + HNSW)", SearchParams(k=K, mode="hybrid", collapse=True)),
    "hybrid_exact_text": ("hybrid with exact BM25", SearchParams(k=K, mode="hybrid", collapse=True, exact_text=True)),
    "vector": ("vector (HNSW)", SearchParams(k=K, mode="vector")),  # chunks, as exact search ranks them
    "text": ("text (bounded BM25)", SearchParams(k=K, mode="text", collapse=True)),
    "text_exact": ("text, exact BM25 (every posting)", SearchParams(k=K, mode="text", collapse=True, exact_text=True)),
}


def _build(
    settings: Settings,
    name: str,
    size: int,
    corpus: Corpus,
    vectors: np.ndarray,
    synthetic: SyntheticCorpus,
    model: str,
    nearest: ExactNeighbours,
) -> dict[str, float]:
    """Bulk-load the real chunks then the synthetic ones, folding every vector into `nearest`;
    returns seconds per phase."""
    extra = size - len(corpus.texts)
    nearest.add(vectors, 0)
    started = time.perf_counter()
    generate_s = 0.0
    with Engine(settings).connection() as conn:
        collection = create_collection(conn, name, embedding_model=model, dimensions=int(vectors.shape[1]))
    with BatchWriter(
        Engine(settings).connection, collection, hnsw_m=HNSW_M, ef_construction=HNSW_EF_CONSTRUCTION
    ) as writer:
        offset = 0
        for batch in batches(corpus.documents, BATCH_CHUNKS):
            count = sum(len(document.chunks) for document in batch)
            writer.submit(batch, vectors[offset : offset + count], replacing=False)
            offset += count
        with tqdm(total=extra, unit=" chunks", desc=f"loading {size:,}", disable=not sys.stderr.isatty()) as bar:
            generated = synthetic.batches(extra)
            while True:
                tick = time.perf_counter()
                item = next(generated, None)
                generate_s += time.perf_counter() - tick
                if item is None:
                    break
                texts, batch_vectors = item
                nearest.add(batch_vectors, offset)
                writer.submit(synthetic_documents(texts, offset), batch_vectors, replacing=False)
                offset += len(texts)
                bar.update(len(texts))
        load_s = time.perf_counter() - started
        phases = writer.finish()
    total = time.perf_counter() - started
    return {
        "total_s": total,  # wall, synthesis included (the writes run beside it, on two connections)
        "generate_s": generate_s,
        "load_s": load_s,  # until the last batch was handed over
        "finish_s": total - load_s,  # the last writes, postings, HNSW and GIN builds, ANALYZE
        "indexes_s": phases.get("indexes", 0.0),
        "analyze_s": phases.get("analyze", 0.0),
    }


_HNSW_OPTIONS = """
SELECT c.reloptions FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s AND c.relname = %(index)s
"""


def _ready(settings: Settings, name: str, size: int) -> bool:
    """Whether the collection holds `size` chunks and every index, its HNSW built as this benchmark builds it."""
    try:
        with Engine(settings).connection() as conn:
            collection = get_collection(conn, name)
            if collection.chunk_count != size or missing_indexes(conn, collection):
                return False
            index = {"schema": SCHEMA, "index": f"{name}_embedding_hnsw"}
            options = conn.execute(_HNSW_OPTIONS, index).fetchone()[0]  # type: ignore[index]
            return sorted(options or []) == sorted([f"m={HNSW_M}", f"ef_construction={HNSW_EF_CONSTRUCTION}"])
    except CollectionNotFound:
        return False


def _sizes(conn: psycopg.Connection, name: str) -> dict[str, Any]:
    stats = collection_stats(conn, get_collection(conn, name))
    tables = {table.partition("__")[2] or "chunks": v["heap_bytes"] for table, v in stats.tables.items()}
    indexes = {index.removeprefix(f"{name}_").lstrip("_"): size for index, size in stats.indexes.items()}
    return {
        "tables_bytes": tables,
        "indexes_bytes": indexes,
        "total_bytes": stats.total_bytes(),
        "postings": stats.postings,
    }


def _measure(
    settings: Settings,
    name: str,
    queries: list[tuple[str, str, np.ndarray]],
    qrels: dict[str, dict[str, int]],
    modes: dict[str, tuple[str, SearchParams]] = MODES,
) -> dict[str, dict[str, Any]]:
    """nDCG@10, p50/p95 database time and top 10s of each mode, modes in rotating order per query."""
    runs: dict[str, dict[str, list[str]]] = {key: {} for key in modes}
    documents: dict[str, dict[str, dict[str, float]]] = {key: {} for key in modes}
    times: dict[str, list[float]] = {key: [] for key in modes}
    warmup = min(WARMUP, len(queries) // 5)  # discarded: caches fill during the first queries
    # the exact references read every posting of every term: run beside the bounded modes,
    # they would evict the working set those are timed with, so they get a pass of their own
    bounded = [key for key in modes if not modes[key][1].exact_text]
    passes = [keys for keys in (bounded, [key for key in modes if key not in bounded]) if keys]
    engine = Engine(settings)
    with engine.connection() as conn:
        for keys in passes:
            progress = tqdm(queries, desc="queries", unit=" q", leave=False, disable=not sys.stderr.isatty())
            for position, (qid, text, vector) in enumerate(progress):
                turn = position % len(keys)
                for key in keys[turn:] + keys[:turn]:
                    params = modes[key][1]
                    embedding = None if params.mode == "text" else vector
                    result = engine.search(name, text, params, embedding=embedding, conn=conn)
                    runs[key][qid] = [hit.id for hit in result.hits]
                    documents[key][qid] = chunks_to_documents([(h.document_id, h.score) for h in result.hits], K)
                    if position >= warmup:
                        times[key].append(result.took_ms)
    measured = {}
    for key, (label, _params) in modes.items():
        metrics = score_run(qrels, documents[key])
        measured[key] = {
            "label": label,
            "ndcg@10": metrics["ndcg@10"],
            "p50_ms": float(np.percentile(times[key], 50)),
            "p95_ms": float(np.percentile(times[key], 95)),
            "top10": runs[key],
        }
    return measured


def _ef_sweep(
    settings: Settings,
    name: str,
    queries: list[tuple[str, str, np.ndarray]],
    qrels: dict[str, dict[str, int]],
    exact: dict[str, list[str]],
    ef_values: tuple[int, ...],
) -> list[dict[str, float]]:
    """HNSW recall@10 and the vector leg's and the hybrid's database time at each `hnsw.ef_search`."""
    sweep = []
    for ef in ef_values:
        modes = {key: (MODES[key][0], replace(MODES[key][1], ef_search=ef)) for key in ("vector", "hybrid")}
        measured = _measure(settings, name, queries, qrels, modes)
        point: dict[str, float] = {"ef_search": ef, "recall@10": _recall(measured["vector"]["top10"], exact)}
        for key, mode in measured.items():
            point[f"{key}_p50_ms"] = mode["p50_ms"]
            point[f"{key}_p95_ms"] = mode["p95_ms"]
        sweep.append(point)
    return sweep


def _overlap(found: dict[str, list[str]], exact: dict[str, list[str]]) -> float:
    """Mean share of the exact top 10 that was found (queries with no exact results count as 1)."""
    return float(
        np.mean([len(set(found[q][:K]) & set(exact[q][:K])) / len(exact[q][:K]) if exact[q] else 1.0 for q in exact])
    )


def _recall(found: dict[str, list[str]], exact: dict[str, list[str]]) -> float:
    """Recall@10 of the HNSW leg against exact cosine search over every vector."""
    return float(np.mean([len(set(exact[qid]) & set(found[qid][:K])) / K for qid in exact]))


def _exact_neighbours(
    path: Path,
    queries: list[tuple[str, str, np.ndarray]],
    vectors: np.ndarray,
    synthetic: SyntheticCorpus,
    ids: list[str],
) -> dict[str, list[str]]:
    """The cached exact neighbours of a collection built earlier, or recomputed from its vectors."""
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    nearest = ExactNeighbours(queries)
    nearest.add(vectors, 0)
    offset = len(vectors)
    for _texts, batch in synthetic.batches(len(ids) - len(vectors)):
        nearest.add(batch, offset)
        offset += len(batch)
    exact = nearest.ids(ids)
    path.write_text(json.dumps(exact), encoding="utf-8")
    return exact


def _ids(corpus: Corpus, size: int) -> list[str]:
    real = [chunk.id for chunk in corpus.chunks]
    return real + [f"syn-{i}:0" for i in range(len(real), size)]


def run_scale_bench(
    settings: Settings,
    dataset_dir: Path,
    model: EmbeddingModel,
    *,
    sizes: tuple[int, ...] = SIZES,
    split: str = "test",
    fresh: bool = False,
    keep: bool = True,
    ef_values: tuple[int, ...] = (),
) -> dict[str, Any]:
    """Build (or reuse) one collection per size, measure it; returns JSON-ready results."""
    loaded = load_benchmark(settings, dataset_dir, model, split)
    dataset, corpus, vectors, queries = loaded.dataset, loaded.corpus, loaded.vectors, loaded.queries
    synthetic = SyntheticCorpus.of(corpus, vectors)
    results: dict[str, Any] = {"dataset": str(dataset_dir), "split": split, "queries": len(queries), "sizes": []}
    for size in sizes:
        if size < len(corpus.texts):
            raise click.ClickException(f"size {size} is below the real corpus ({len(corpus.texts)} chunks)")
        name = f"bench_scale_{size}"
        sidecar = settings.data_home / "cache" / f"{name}.json"
        neighbours = sidecar.with_name(f"{name}.nearest-{split}.json")  # exact top 10 of each query
        ids = _ids(corpus, size)
        if fresh or not _ready(settings, name, size) or not sidecar.is_file():
            drop_ours(settings, name)
            for stale in sidecar.parent.glob(f"{name}.nearest-*.json"):  # other splits', of the old vectors
                stale.unlink()
            real = len(corpus.texts)
            click.echo(f"building {name}: {real} real + {size - real} synthetic chunks", err=True)
            nearest = ExactNeighbours(queries)
            build = _build(settings, name, size, corpus, vectors, synthetic, model.name, nearest)
            sidecar.parent.mkdir(parents=True, exist_ok=True)
            sidecar.write_text(json.dumps(build), encoding="utf-8")
            exact = nearest.ids(ids)
            neighbours.write_text(json.dumps(exact), encoding="utf-8")
        else:
            click.echo(f"reusing {name} (built earlier; --fresh rebuilds)", err=True)
            build = json.loads(sidecar.read_text(encoding="utf-8"))
            exact = _exact_neighbours(neighbours, queries, vectors, synthetic, ids)
        click.echo(f"querying {name}", err=True)
        with Engine(settings).connection() as conn:
            conn.execute("VACUUM (ANALYZE) hybrid_rag.collections")
            sizes_ = _sizes(conn, name)
        measured = _measure(settings, name, queries, dataset.qrels)
        entry = {
            "chunks": size,
            "build": build,
            **sizes_,
            "modes": {key: {k: v for k, v in m.items() if k != "top10"} for key, m in measured.items()},
            "hnsw_recall@10": _recall(measured["vector"]["top10"], exact),
            "ef_search_sweep": _ef_sweep(settings, name, queries, dataset.qrels, exact, ef_values),
            "text_top10_overlap_with_exact": _overlap(measured["text"]["top10"], measured["text_exact"]["top10"]),
            "hybrid_top10_overlap_with_exact_text": _overlap(
                measured["hybrid"]["top10"], measured["hybrid_exact_text"]["top10"]
            ),
        }
        entry["text_ndcg@10_minus_exact"] = entry["modes"]["text"]["ndcg@10"] - entry["modes"]["text_exact"]["ndcg@10"]
        entry["hybrid_ndcg@10_minus_exact_text"] = (
            entry["modes"]["hybrid"]["ndcg@10"] - entry["modes"]["hybrid_exact_text"]["ndcg@10"]
        )
        results["sizes"].append(entry)
        click.echo(scale_table({**results, "sizes": [entry]}), err=True)
        if not keep:
            drop_ours(settings, name)
    return results
