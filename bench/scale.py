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
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import click
import numpy as np
import psycopg
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from tqdm import tqdm

from bench._data import Corpus, load_benchmark
from bench._stores import BATCH_CHUNKS, HNSW_EF_CONSTRUCTION, HNSW_M, document_batches, drop_ours
from eval import chunks_to_documents, score_run
from ingest import Chunk
from ingest._hash import sha256_hex
from retriever.collections import SCHEMA, create_collection, get_collection, missing_indexes
from retriever.database import open_primary
from retriever.embeddings import EmbeddingModel
from retriever.errors import CollectionNotFound
from retriever.loader import BatchWriter
from retriever.maintenance import collection_stats
from retriever.query import SearchParams
from retriever.service import search
from retriever.settings import Settings
from retriever.writer import PreparedDocument

__all__ = ["SIZES", "ExactNeighbours", "SyntheticCorpus", "run_scale_bench", "scale_table", "write_plot"]

SIZES = (10_000, 100_000, 1_000_000)
SEED = 20_261_123
NOISE = 0.3  # noise norm relative to the mixture's norm
BATCH = 2_000
K = 10
WARMUP = 20
MODES = {  # key → (label, search parameters)
    "hybrid": ("hybrid (bounded BM25 + HNSW)", SearchParams(k=K, mode="hybrid", collapse=True)),
    "hybrid_exact_text": ("hybrid with exact BM25", SearchParams(k=K, mode="hybrid", collapse=True, exact_text=True)),
    "vector": ("vector (HNSW)", SearchParams(k=K, mode="vector")),  # chunks, as exact search ranks them
    "text": ("text (bounded BM25)", SearchParams(k=K, mode="text", collapse=True)),
    "text_exact": ("text, exact BM25 (every posting)", SearchParams(k=K, mode="text", collapse=True, exact_text=True)),
}
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\[])")


@dataclass(frozen=True)
class SyntheticCorpus:
    """Sentences of the real corpus with their source documents, and the real embeddings."""

    sentences: list[str]
    by_document: list[np.ndarray]  # document index → indices into `sentences`
    vectors: np.ndarray  # one real embedding per document

    @classmethod
    def of(cls, corpus: Corpus, vectors: np.ndarray) -> SyntheticCorpus:
        """Split every real chunk into sentences (a chunk stands for its document)."""
        sentences: list[str] = []
        by_document = []
        for text in corpus.texts:
            parts = [part.strip() for part in _SENTENCE.split(text.replace("\n", " ")) if part.strip()] or [text]
            by_document.append(np.arange(len(sentences), len(sentences) + len(parts)))
            sentences.extend(parts)
        return cls(sentences, by_document, vectors)

    def batches(self, count: int, *, seed: int = SEED, batch: int = BATCH) -> Iterator[tuple[list[str], np.ndarray]]:
        """`count` synthetic chunks (texts, unit vectors) in batches; the same for the same seed."""
        rng = np.random.default_rng(seed)
        documents, dims = len(self.by_document), self.vectors.shape[1]
        for start in range(0, count, batch):
            size = min(batch, count - start)
            texts, mixtures = [], np.zeros((size, dims), dtype=np.float32)
            for row in range(size):
                sources = rng.choice(documents, size=rng.integers(2, 5), replace=False)
                shares = rng.dirichlet(np.ones(len(sources)))
                target = rng.integers(400, 1001)
                picked, length = [], 0
                counts = np.zeros(len(sources))
                while length < target:  # draws in rounds of 8: one sentence each, until long enough
                    for which, u in zip(rng.choice(len(sources), size=8, p=shares), rng.random(8), strict=True):
                        pool = self.by_document[sources[which]]
                        sentence = self.sentences[pool[int(u * len(pool))]]
                        picked.append(sentence)
                        counts[which] += 1
                        length += len(sentence) + 1
                        if length >= target:
                            break
                texts.append(" ".join(picked))
                mixtures[row] = (counts / counts.sum()) @ self.vectors[sources]
            noise = rng.standard_normal(mixtures.shape).astype(np.float32)
            noise *= (NOISE * np.linalg.norm(mixtures, axis=1, keepdims=True)) / np.linalg.norm(
                noise, axis=1, keepdims=True
            )
            mixed = mixtures + noise
            yield texts, mixed / np.linalg.norm(mixed, axis=1, keepdims=True)


class ExactNeighbours:
    """The exact top 10 (cosine) of each query over vectors seen in batches: no copy of them all."""

    def __init__(self, queries: list[tuple[str, str, np.ndarray]]) -> None:
        self.qids = [qid for qid, _text, _vector in queries]
        matrix = np.stack([vector for _qid, _text, vector in queries]).astype(np.float32)
        self.queries = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
        self.scores = np.full((len(queries), K), -np.inf, dtype=np.float32)
        self.rows = np.zeros((len(queries), K), dtype=np.int64)

    def add(self, vectors: np.ndarray, offset: int) -> None:
        """Fold in `vectors`, rows `offset`… of the collection."""
        scores = np.concatenate([self.scores, self.queries @ vectors.T], axis=1)
        rows = np.concatenate(
            [self.rows, np.broadcast_to(np.arange(offset, offset + len(vectors)), (len(scores), len(vectors)))], axis=1
        )
        best = np.argpartition(-scores, K - 1, axis=1)[:, :K]
        self.scores = np.take_along_axis(scores, best, axis=1)
        self.rows = np.take_along_axis(rows, best, axis=1)

    def ids(self, ids: list[str]) -> dict[str, list[str]]:
        """Query id → the ids of its exact nearest rows."""
        return {qid: [ids[row] for row in rows] for qid, rows in zip(self.qids, self.rows.tolist(), strict=True)}


def _documents(texts: list[str], offset: int) -> list[PreparedDocument]:
    documents = []
    for i, text in enumerate(texts, start=offset):
        document_id = f"syn-{i}"
        digest = sha256_hex(text)
        chunk = Chunk(f"{document_id}:0", document_id, 0, text, {}, digest)
        documents.append(PreparedDocument(document_id, digest, [chunk]))
    return documents


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
    with open_primary(settings) as conn:
        collection = create_collection(conn, name, embedding_model=model, dimensions=int(vectors.shape[1]))
    with BatchWriter(
        lambda: open_primary(settings), collection, hnsw_m=HNSW_M, ef_construction=HNSW_EF_CONSTRUCTION
    ) as writer:
        offset = 0
        for batch in document_batches(corpus.documents, BATCH_CHUNKS):
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
                writer.submit(_documents(texts, offset), batch_vectors, replacing=False)
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
        with open_primary(settings) as conn:
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
    with open_primary(settings) as conn:
        for keys in passes:
            progress = tqdm(queries, desc="queries", unit=" q", leave=False, disable=not sys.stderr.isatty())
            for position, (qid, text, vector) in enumerate(progress):
                turn = position % len(keys)
                for key in keys[turn:] + keys[:turn]:
                    params = modes[key][1]
                    embedding = None if params.mode == "text" else vector
                    result = search(conn, settings, name, text, params, embedding=embedding)
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
        with open_primary(settings) as conn:
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


def scale_table(results: dict[str, Any]) -> str:
    """One block per size: build, sizes, then a row per mode."""
    lines = [f"scale: {results['queries']} {results['split']} queries, database time, warm, one client"]
    for entry in results["sizes"]:
        build = entry["build"]
        lines.append("")
        lines.append(
            f"{entry['chunks']:,} chunks: built in {build['total_s']:.0f} s wall (loading {build['load_s']:.0f} s, "
            f"of which {build['generate_s']:.0f} s generating text and vectors; then postings and indexes "
            f"{build['indexes_s']:.0f} s, ANALYZE {build['analyze_s']:.0f} s), {entry['total_bytes'] / 1e9:.2f} GB: "
            + ", ".join(f"{k} {v / 1e6:.0f} MB" for k, v in {**entry["tables_bytes"], **entry["indexes_bytes"]}.items())
        )
        header = f"  {'mode':<36} {'nDCG@10':>8} {'p50 ms':>8} {'p95 ms':>8}"
        lines.append(header)
        for mode in entry["modes"].values():
            lines.append(f"  {mode['label']:<36} {mode['ndcg@10']:>8.4f} {mode['p50_ms']:>8.1f} {mode['p95_ms']:>8.1f}")
        lines.append(
            f"  HNSW recall@10 vs exact {entry['hnsw_recall@10']:.3f}; text vs exact BM25: "
            f"Δ nDCG@10 {entry['text_ndcg@10_minus_exact']:+.4f}, top-10 overlap "
            f"{entry['text_top10_overlap_with_exact']:.3f}; hybrid vs hybrid with exact BM25: "
            f"Δ nDCG@10 {entry['hybrid_ndcg@10_minus_exact_text']:+.4f}, top-10 overlap "
            f"{entry['hybrid_top10_overlap_with_exact_text']:.3f}"
        )
        for point in entry.get("ef_search_sweep", []):
            lines.append(
                f"  ef_search {point['ef_search']}: HNSW recall@10 {point['recall@10']:.3f}; p50 / p95 ms: "
                f"vector {point['vector_p50_ms']:.1f} / {point['vector_p95_ms']:.1f}, "
                f"hybrid {point['hybrid_p50_ms']:.1f} / {point['hybrid_p95_ms']:.1f}"
            )
    return "\n".join(lines)


def write_plot(results: dict[str, Any], path: Path) -> Path:
    """p50 and p95 database time of each mode against collection size (log-log)."""
    figure = Figure(figsize=(8, 5))
    axes = figure.add_subplot()
    sizes = [entry["chunks"] for entry in results["sizes"]]
    for key, (label, _params) in MODES.items():
        p50 = [entry["modes"][key]["p50_ms"] for entry in results["sizes"]]
        p95 = [entry["modes"][key]["p95_ms"] for entry in results["sizes"]]
        (line,) = axes.plot(sizes, p50, marker="o", label=f"{label} p50")
        axes.plot(sizes, p95, marker="x", linestyle="--", color=line.get_color(), alpha=0.6)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("chunks in the collection")
    axes.set_ylabel("database time per query, ms (solid p50, dashed p95)")
    axes.set_title("hybrid-rag bench scale: latency vs collection size")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure).print_png(str(path))
    return path
