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

With `indexes` beyond the anchor (today's index, `default`: HNSW m 16, ef_construction 64 on
`vector`), every size also gets one collection per index variant, loaded from the same chunks
and vectors: the vector index's bytes, its build time alone (dropped and rebuilt once the
collection is loaded, nothing beside it), recall@10 against the same exact top 10, and the
vector and hybrid modes' p50/p95 (and the ef_search sweep, for HNSW), each with its ratio to
the anchor measured in the same run.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import click
import numpy as np
import psycopg
from tqdm import tqdm

from bench._data import load_benchmark
from bench._scale_build import (
    ANCHOR,
    INDEX_VARIANTS,
    Source,
    index_variants,
    prepare_collection,
    vector_index_of,
    vector_index_seconds,
)
from bench._scale_report import scale_table
from bench._stores import drop_ours
from bench._synthetic import ExactNeighbours, K, SyntheticCorpus, cached_neighbours, chunk_ids, overlap, recall
from eval import chunks_to_documents, score_run
from retriever import Engine, SearchParams, Settings
from retriever.embeddings import EmbeddingModel
from retriever.store.collections import get_collection
from retriever.store.maintenance import collection_stats
from retriever.store.vector_index import VectorIndex, default_probes

__all__ = ["ANCHOR", "INDEX_VARIANTS", "SIZES", "index_variants", "run_scale_bench"]

SIZES = (10_000, 100_000, 1_000_000)
WARMUP = 20
MODES = {  # key → (label, search parameters)
    "hybrid": ("hybrid (bounded BM25 + HNSW)", SearchParams(k=K, mode="hybrid", collapse=True)),
    "hybrid_exact_text": ("hybrid with exact BM25", SearchParams(k=K, mode="hybrid", collapse=True, exact_text=True)),
    "vector": ("vector (HNSW)", SearchParams(k=K, mode="vector")),  # chunks, as exact search ranks them
    "text": ("text (bounded BM25)", SearchParams(k=K, mode="text", collapse=True)),
    "text_exact": ("text, exact BM25 (every posting)", SearchParams(k=K, mode="text", collapse=True, exact_text=True)),
}


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
        point: dict[str, float] = {"ef_search": ef, "recall@10": recall(measured["vector"]["top10"], exact)}
        for key, mode in measured.items():
            point[f"{key}_p50_ms"] = mode["p50_ms"]
            point[f"{key}_p95_ms"] = mode["p95_ms"]
        sweep.append(point)
    return sweep


def _compare(
    settings: Settings,
    variants: dict[str, tuple[str, VectorIndex, float]],
    queries: list[tuple[str, str, np.ndarray]],
    qrels: dict[str, dict[str, int]],
    exact: dict[str, list[str]],
    ef_values: tuple[int, ...],
) -> dict[str, dict[str, Any]]:
    """Per variant (its collection, index, build seconds), one after another: its vector index as the
    catalogue has it, recall@10, vector and hybrid nDCG@10 and p50/p95 (and, for HNSW, the ef_search
    sweep), with ratios to the anchor's (index bytes, build seconds, p50 and p95 of each mode)."""
    compared: dict[str, dict[str, Any]] = {}
    for variant, (name, index, build_s) in variants.items():
        click.echo(f"comparing {variant}: {index.label} ({name})", err=True)
        with Engine(settings).connection() as conn:
            catalogued = vector_index_of(conn, name)
            rows = get_collection(conn, name).chunk_count
        settings_ = index.to_json()
        if index.kind == "ivfflat":  # the probes a search that names none reads, named
            settings_["probes"] = default_probes(index.lists, rows, MODES["vector"][1].candidates)
        probes = settings_.get("probes")
        modes = {key: (MODES[key][0], replace(MODES[key][1], probes=probes)) for key in ("vector", "hybrid")}
        measured = _measure(settings, name, queries, qrels, modes)
        compared[variant] = {
            "collection": name,
            "label": index.label + (f", probes {probes}" if probes else ""),
            "settings": settings_,
            "index": catalogued,
            "build_s": build_s,
            "recall@10": recall(measured["vector"]["top10"], exact),
            "modes": {key: {k: v for k, v in m.items() if k != "top10"} for key, m in measured.items()},
            "ef_search_sweep": _ef_sweep(settings, name, queries, qrels, exact, ef_values)
            if index.kind == "hnsw"
            else [],
        }
    anchor = compared[ANCHOR]
    for entry in compared.values():
        ratios = {"index_bytes": entry["index"]["bytes"] / anchor["index"]["bytes"]}
        ratios["build_s"] = entry["build_s"] / anchor["build_s"]
        for key, mode in entry["modes"].items():
            for stat in ("p50_ms", "p95_ms"):
                ratios[f"{key}_{stat}"] = mode[stat] / anchor["modes"][key][stat]
        entry["ratios"] = ratios
    return compared


def _variants(
    settings: Settings,
    name: str,
    size: int,
    loaded: Source,
    indexes: tuple[str, ...],
    anchor: dict[str, Any],
    fresh: bool,
) -> dict[str, tuple[str, VectorIndex, float]]:
    """The anchor (collection `name`, built already) and each variant in `indexes`, built beside it
    as `<name>_<variant>`: variant → (collection, index, its build seconds alone)."""
    chosen = {}
    for variant, index in index_variants(size).items():
        if variant != ANCHOR and variant not in indexes:
            continue
        own = name if variant == ANCHOR else f"{name}_{variant.replace('-', '_')}"
        build = anchor if variant == ANCHOR else prepare_collection(settings, own, size, loaded, index, fresh)[0]
        chosen[variant] = (own, index, vector_index_seconds(settings, own, build))
    return chosen


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
    indexes: tuple[str, ...] = (ANCHOR,),
) -> dict[str, Any]:
    """Build (or reuse) one collection per size, and one per index variant in `indexes` beyond the
    anchor (names in `INDEX_VARIANTS`), measure them; returns JSON-ready results."""
    loaded = load_benchmark(settings, dataset_dir, model, split)
    dataset, corpus, vectors, queries = loaded.dataset, loaded.corpus, loaded.vectors, loaded.queries
    synthetic = SyntheticCorpus.of(corpus, vectors)
    source = (corpus, vectors, synthetic, model.name)
    results: dict[str, Any] = {"dataset": str(dataset_dir), "split": split, "queries": len(queries), "sizes": []}
    for size in sizes:
        if size < len(corpus.texts):
            raise click.ClickException(f"size {size} is below the real corpus ({len(corpus.texts)} chunks)")
        name = f"bench_scale_{size}"
        neighbours = settings.data_home / "cache" / f"{name}.nearest-{split}.json"  # exact top 10 of each query
        ids = chunk_ids(corpus, size)
        nearest = ExactNeighbours(queries)
        build, built = prepare_collection(settings, name, size, source, VectorIndex(), fresh, nearest)
        if built:
            exact = nearest.ids(ids)
            neighbours.write_text(json.dumps(exact), encoding="utf-8")
        else:
            exact = cached_neighbours(neighbours, queries, vectors, synthetic, ids)
        variants = _variants(settings, name, size, source, indexes, build, fresh) if len(indexes) > 1 else {}
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
            "hnsw_recall@10": recall(measured["vector"]["top10"], exact),
            "ef_search_sweep": _ef_sweep(settings, name, queries, dataset.qrels, exact, ef_values),
            "text_top10_overlap_with_exact": overlap(measured["text"]["top10"], measured["text_exact"]["top10"]),
            "hybrid_top10_overlap_with_exact_text": overlap(
                measured["hybrid"]["top10"], measured["hybrid_exact_text"]["top10"]
            ),
        }
        entry["text_ndcg@10_minus_exact"] = entry["modes"]["text"]["ndcg@10"] - entry["modes"]["text_exact"]["ndcg@10"]
        entry["hybrid_ndcg@10_minus_exact_text"] = (
            entry["modes"]["hybrid"]["ndcg@10"] - entry["modes"]["hybrid_exact_text"]["ndcg@10"]
        )
        if variants:
            entry["indexes"] = _compare(settings, variants, queries, dataset.qrels, exact, ef_values)
        results["sizes"].append(entry)
        click.echo(scale_table({**results, "sizes": [entry]}), err=True)
        if not keep:
            for own in [collection for collection, _index, _seconds in variants.values()] or [name]:
                drop_ours(settings, own)
    return results
