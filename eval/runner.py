"""The eval runner: ingest a BEIR corpus, run every judged query through each mode, score, write.

Latency, per query: end to end = the query's embedding time (measured once, up front, with
the real model; `text` and `bm25` embed nothing) + the `search` call; database time = the
search statement alone (`SearchResult.extra["db_ms"]`). `bm25` is timed end to end only.

Every judged query is scored, whole (`MAX_QUERY_CHARS` guards requests, not test collections);
one longer than the model's token window is reported as truncated, one whose search is refused
as its own fault (e.g. empty) scores as an empty ranking and is reported as failed.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from eval.baseline import Bm25Baseline
from eval.beir import BeirDataset, iter_corpus
from eval.documents import chunks_to_documents
from eval.metrics import score_run
from eval.report import write_chart, write_markdown, write_results, write_trec_run
from ingest import ChunkingConfig, SkippedSource
from retriever import EmbeddingMismatch, EmbeddingModel, Engine, IngestReport, InputError, SearchParams, Settings
from retriever.embeddings import LocalEmbeddings

__all__ = [
    "DEFAULT_CHUNKING",
    "EVAL_MODES",
    "EvalParams",
    "ModeRun",
    "default_collection_name",
    "embed_queries",
    "eval_settings",
    "ingest_corpus",
    "run_eval",
]

EVAL_MODES = ("hybrid", "vector", "text", "bm25")
# BEIR documents are passages: about one chunk per abstract, as in BEIR's own protocol.
DEFAULT_CHUNKING = ChunkingConfig(chunk_size=4000, chunk_overlap=200)
BM25_TOKENIZER = "lowercase \\w+ tokens, Lucene's 33 English stop words removed, no stemming"

Echo = Callable[[str], None]
Run = dict[str, dict[str, float]]


@dataclass(frozen=True, slots=True)
class EvalParams:
    """What a run measures with; all of it is recorded in results.json."""

    modes: tuple[str, ...] = EVAL_MODES
    k: int = 100
    """Documents ranked per query (and scored: Recall@100 needs 100)."""
    candidates: int = SearchParams().candidates
    rrf_k: int = SearchParams().rrf_k
    """RRF's constant; unused by linear fusion."""
    weights: tuple[float, float] = SearchParams().weights
    chunking: ChunkingConfig = DEFAULT_CHUNKING
    fusion: str = SearchParams().fusion
    """How hybrid combines its legs: "rrf", "linear" or "linear_max" (`retriever.fusion`)."""

    def search_params(self, mode: str) -> SearchParams:
        """One document per result (collapse); a single leg runs at least k deep so it can fill k."""
        depth = self.candidates if mode == "hybrid" else max(self.candidates, self.k)
        return SearchParams(
            k=self.k,
            mode=mode,  # type: ignore[arg-type]
            candidates=depth,
            fusion=self.fusion,  # type: ignore[arg-type]
            rrf_k=self.rrf_k,
            weights=self.weights,
            collapse=True,
        )

    def describe(self, embeddings: str | None) -> dict[str, Any]:
        """The parameters as results.json records them (`embeddings`: the collection's model)."""
        return {
            "k": self.k,
            "candidates": self.candidates,
            "fusion": self.fusion,
            "rrf_k": self.rrf_k,
            "weights": {"vector": self.weights[0], "text": self.weights[1]},
            "collapse": True,
            "chunk_size": self.chunking.chunk_size,
            "chunk_overlap": self.chunking.chunk_overlap,
            "embeddings": embeddings,
            "bm25": {"implementation": "rank_bm25.BM25Okapi", "k1": 1.2, "b": 0.75, "tokenizer": BM25_TOKENIZER},
        }


@dataclass
class ModeRun:
    """One mode's answers to every query, and what each cost."""

    run: Run = field(default_factory=dict)
    latency_ms: list[float] = field(default_factory=list)
    db_ms: list[float] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    """Query id -> why its search was refused (it is scored as an empty ranking)."""


def default_collection_name(root: Path) -> str:
    """`beir_<folder name>`, reduced to what a collection name allows (e.g. `beir_scifact`)."""
    stem = re.sub(r"[^a-z0-9]+", "_", root.resolve().name.lower()).strip("_")
    return ("beir_" + stem)[:40].rstrip("_")


def eval_settings(settings: Settings, depth: int, queries: Iterable[str] = ()) -> Settings:
    """`settings` with limits raised (never lowered) for an evaluation's own searches: a search may return
    `depth` chunks from legs `depth` deep, and each of `queries` (the judged ones) is searched whole."""
    return dataclasses.replace(
        settings,
        max_k=max(settings.max_k, depth),
        max_candidates=max(settings.max_candidates, depth),
        max_query_chars=max(settings.max_query_chars, max(map(len, queries), default=0)),
    )


def truncated_queries(model: EmbeddingModel, queries: Mapping[str, str]) -> dict[str, Any] | None:
    """The queries longer than the model's token window (it embeds only their first `limit_tokens` tokens), or
    None when the model exposes no window (an OpenAI model, a test double)."""
    # a local model cuts every text at `max_seq_length` tokens, [CLS] and [SEP] included
    embeddings = model.embeddings
    if not isinstance(embeddings, LocalEmbeddings):
        return None
    limit = embeddings.max_seq_length
    ids = [qid for qid, text in queries.items() if embeddings.token_count(text) > limit]
    return {"count": len(ids), "limit_tokens": limit, "ids": ids}


def search_one(
    engine: Engine, collection: str, qid: str, text: str, params: SearchParams, failed: dict[str, str], **kwargs: Any
) -> Any:
    """`engine.search`, or None with the reason in `failed[qid]` when it refuses the query as the query's own fault.

    A batch never dies on one item; a collection of another model (`EmbeddingMismatch`) or an outage
    (`DatabaseUnavailable`) is no one item's fault, and still ends the run."""
    try:
        return engine.search(collection, text, params, **kwargs)
    except EmbeddingMismatch:
        raise
    except InputError as exc:
        failed[qid] = str(exc)
        return None


def failed_queries(failed_by_mode: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
    """Every query a search refused in some mode: ids, each one's reason, and the modes it failed in."""
    reasons: dict[str, str] = {}
    for failed in failed_by_mode.values():
        for qid, reason in failed.items():
            reasons.setdefault(qid, reason)
    by_mode = {mode: list(failed) for mode, failed in failed_by_mode.items() if failed}
    return {"count": len(reasons), "ids": list(reasons), "reasons": reasons, "modes": by_mode}


def ingest_corpus(
    settings: Settings, collection: str, dataset: BeirDataset, chunking: ChunkingConfig, *, progress: bool, echo: Echo
) -> IngestReport:
    """Ingest the corpus through the normal path; an unchanged collection costs a hash check per document."""

    def warn(item: SkippedSource) -> None:
        echo(f"warning: skipped {item.path}: {item.reason}")

    report = Engine(settings).ingest_paths(collection, [dataset.corpus_path], chunking, on_skip=warn, progress=progress)
    echo(f"ingest into {collection!r}: {report.summary()}; {report.timing()}")
    return report


def embed_queries(
    model: EmbeddingModel, queries: Mapping[str, str], *, progress: bool
) -> dict[str, tuple[np.ndarray, float]]:
    """Embed each query on its own, as a live search would: query id -> (vector, milliseconds)."""
    model.embed_query("warm-up")  # the first call pays one-time setup that no live query sees
    embedded = {}
    for qid, text in tqdm(queries.items(), desc="embed queries", unit=" q", disable=not progress):
        if not text.strip():
            continue  # nothing to embed: its search fails as that one query's
        start = time.perf_counter()
        vector = model.embed_query(text)
        embedded[qid] = (vector, (time.perf_counter() - start) * 1000)
    return embedded


def run_database_mode(
    settings: Settings,
    collection: str,
    queries: Mapping[str, str],
    params: SearchParams,
    embedded: Mapping[str, tuple[np.ndarray, float]],
    *,
    progress: bool,
) -> ModeRun:
    """Every query through `search` on one connection; the first one that runs runs twice (warm-up)."""
    result = ModeRun()
    uses_vector = params.mode in ("hybrid", "vector")
    engine = Engine(settings)
    params.validate(settings)  # a bad parameter is the run's fault, not each query's
    with engine.reader() as conn:

        def one(qid: str) -> Any:
            vector = embedded[qid][0] if uses_vector and qid in embedded else None
            return search_one(engine, collection, qid, queries[qid], params, result.failed, embedding=vector, conn=conn)

        any(one(qid) is not None for qid in queries)  # warm-up: up to the first query that runs
        for qid in tqdm(queries, desc=params.mode, unit=" q", disable=not progress):
            found = one(qid)
            if found is None:
                result.run[qid] = {}
                continue
            embed_ms = embedded[qid][1] if uses_vector else 0.0
            result.latency_ms.append(embed_ms + found.took_ms)
            result.db_ms.append(found.extra["db_ms"])
            hits = ((hit.document_id, hit.score) for hit in found.hits)
            result.run[qid] = chunks_to_documents(hits, params.k) if found.hits else {}
    return result


def run_bm25(baseline: Bm25Baseline, queries: Mapping[str, str], k: int, *, progress: bool) -> ModeRun:
    """Every query through the in-memory baseline, timed end to end."""
    result = ModeRun()
    for qid, text in tqdm(queries.items(), desc="bm25", unit=" q", disable=not progress):
        start = time.perf_counter()
        hits = baseline.search(text, k)
        result.latency_ms.append((time.perf_counter() - start) * 1000)
        result.run[qid] = chunks_to_documents(hits, k) if hits else {}
    return result


def percentiles(values: list[float]) -> dict[str, float]:
    """p50 and p95 in milliseconds, rounded to microseconds (0 when no query ran)."""
    if not values:
        return {"p50": 0.0, "p95": 0.0}
    p50, p95 = np.percentile(values, [50, 95])
    return {"p50": round(float(p50), 3), "p95": round(float(p95), 3)}


def run_eval(
    dataset: BeirDataset,
    settings: Settings,
    collection: str,
    params: EvalParams,
    out_dir: Path,
    *,
    progress: bool = False,
    echo: Echo = lambda _: None,
) -> dict[str, Any]:
    """Ingest, run each mode over the judged queries, score, and write every output into `out_dir`."""
    started = time.perf_counter()
    settings = eval_settings(settings, max(params.k, params.candidates), dataset.queries.values())
    database_modes = [mode for mode in params.modes if mode != "bm25"]
    ingest, embedded, embeddings, truncated = None, {}, None, None
    if database_modes:
        ingest = ingest_corpus(settings, collection, dataset, params.chunking, progress=progress, echo=echo)
        embeddings = Engine(settings).collection(collection).embedding_model
    if {"hybrid", "vector"} & set(params.modes):
        model = Engine(settings).model
        embedded = embed_queries(model, dataset.queries, progress=progress)
        truncated = truncated_queries(model, dataset.queries)

    runs: dict[str, ModeRun] = {}
    for mode in params.modes:
        if mode == "bm25":
            baseline = Bm25Baseline(iter_corpus(dataset.corpus_path))
            runs[mode] = run_bm25(baseline, dataset.queries, params.k, progress=progress)
        else:
            search_params = params.search_params(mode)
            runs[mode] = run_database_mode(
                settings, collection, dataset.queries, search_params, embedded, progress=progress
            )

    results: dict[str, Any] = {
        "dataset": dataset.root.resolve().name,
        "split": dataset.split,
        "queries": len(dataset.queries),
        "skipped_queries": dataset.skipped_queries,
        "failed_queries": failed_queries({mode: measured.failed for mode, measured in runs.items()}),
        **({"truncated_queries": truncated} if truncated is not None else {}),
        "collection": collection,
        "parameters": params.describe(embeddings),
        "modes": {},
    }
    for mode, measured in runs.items():
        scores: dict[str, Any] = score_run(dataset.qrels, measured.run)
        scores["latency_ms"] = percentiles(measured.latency_ms)
        if measured.db_ms:
            scores["db_latency_ms"] = percentiles(measured.db_ms)
        results["modes"][mode] = scores
    if ingest is not None:
        results["ingest"] = {"summary": ingest.summary(), "new_chunks": ingest.new_chunks, "wall_s": ingest.wall_s}
    results["wall_s"] = round(time.perf_counter() - started, 1)
    write_outputs(out_dir, results, {mode: measured.run for mode, measured in runs.items()})
    return results


def write_outputs(out_dir: Path, results: Mapping[str, Any], runs: Mapping[str, Run]) -> None:
    """results.json, `<mode>.trec` per mode, report.md (table, then the parameters) and chart.png."""
    write_results(out_dir, results)
    for mode, run in runs.items():
        write_trec_run(out_dir / f"{mode}.trec", run, tag=f"hybrid-rag-{mode}")
    report = write_markdown(out_dir, results)
    used = results["parameters"]
    fusion = used.get("fusion", "rrf")
    described = (
        f"k {used['k']}, candidates {used['candidates']}, "
        + (f"rrf_k {used['rrf_k']}, " if fusion == "rrf" else "")
        + f"fusion {fusion}, weights vector {used['weights']['vector']:g} / text {used['weights']['text']:g}, "
        f"one document per result, chunks of {used['chunk_size']} characters (overlap {used['chunk_overlap']}), "
        f"embeddings {used['embeddings']}"
    )
    with report.open("a", encoding="utf-8") as markdown:
        markdown.write(
            f"\nParameters: {described}.\n\n"
            f"Latency per query: end to end (query embedding + search call) at p50/p95, and the search "
            f"statement's database time (db). `bm25` is {used['bm25']['implementation']} in "
            f"memory ({BM25_TOKENIZER}).\n"
        )
    write_chart(out_dir, results)
