"""Benchmark inputs: a BEIR corpus cut into chunks exactly as `hybrid-rag ingest` cuts it,
and embeddings computed once per model and cached as `.npy` under `HYBRID_RAG_HOME/cache`.

The cache key is the model name plus the sha256 of the texts, so a changed corpus,
chunking or model never reuses stale vectors.
"""

from __future__ import annotations

import hashlib
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np
from langchain_core.embeddings import Embeddings
from tqdm import tqdm

from eval import BeirDataset, DatasetError, load_beir
from ingest import Chunk, ChunkingConfig, SkippedSource, document_hash, iter_documents, split_document
from retriever.embeddings import EmbeddingModel
from retriever.settings import Settings
from retriever.store.writer import PreparedDocument

__all__ = [
    "CHUNKING",
    "Benchmark",
    "Corpus",
    "PrecomputedEmbeddings",
    "PrecomputedModel",
    "cached_embeddings",
    "corpus_file",
    "embedding_throughput",
    "load_benchmark",
    "load_corpus",
]

# What `hybrid-rag ingest --chunk-size 4000 --chunk-overlap 200` does: one chunk per SciFact abstract, mostly.
CHUNKING = ChunkingConfig(chunk_size=4000, chunk_overlap=200)
_BATCH = 256


@dataclass(frozen=True)
class Corpus:
    """Documents split and hashed as ingest would, in corpus order."""

    documents: list[PreparedDocument]

    @property
    def chunks(self) -> list[Chunk]:
        """Every chunk, in document then chunk order (the order embeddings are stored in)."""
        return [chunk for document in self.documents for chunk in document.chunks]

    @property
    def texts(self) -> list[str]:
        return [chunk.content for chunk in self.chunks]

    def fingerprint(self) -> str:
        """sha256 over ids and texts: names tables built from exactly this corpus."""
        digest = hashlib.sha256()
        for chunk in self.chunks:
            digest.update(f"{chunk.id}\0{chunk.content_hash}\0".encode())
        return digest.hexdigest()


def corpus_file(dataset_dir: Path) -> Path:
    """The `corpus.jsonl` or `corpus.jsonl.gz` of a BEIR folder."""
    for name in ("corpus.jsonl", "corpus.jsonl.gz"):
        if (dataset_dir / name).is_file():
            return dataset_dir / name
    raise DatasetError(f"corpus file not found in {dataset_dir} (expected corpus.jsonl or corpus.jsonl.gz)")


def load_corpus(corpus_path: Path, *, chunking: ChunkingConfig = CHUNKING, rows: int | None = None) -> Corpus:
    """Read a BEIR `corpus.jsonl(.gz)` through ingest's own loader and splitter.

    `rows` keeps whole documents until at least that many chunks are collected.
    """

    def warn(item: SkippedSource) -> None:
        click.echo(f"warning: skipped {item.path}: {item.reason}", err=True)

    documents: list[PreparedDocument] = []
    count = 0
    for document in iter_documents([corpus_path], warn):
        pieces = split_document(document, chunking)
        if not pieces:
            continue
        documents.append(PreparedDocument(document.document_id, document_hash(document, chunking), pieces))
        count += len(pieces)
        if rows is not None and count >= rows:
            break
    return Corpus(documents)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "model"


def _key(model_name: str, kind: str, texts: Sequence[str]) -> str:
    digest = hashlib.sha256(f"{model_name}\0{kind}\0{len(texts)}\0".encode())
    for text in texts:
        digest.update(text.encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
    return digest.hexdigest()


def cached_embeddings(
    settings: Settings, model: EmbeddingModel, texts: Sequence[str], *, kind: str = "documents"
) -> np.ndarray:
    """Embeddings of `texts` (`kind` "documents" or "queries"), from the cache or computed once."""
    folder = settings.data_home / "cache" / "embeddings"
    path = folder / f"{_slug(model.name)}-{kind}-{_key(model.name, kind, texts)[:24]}.npy"
    if path.is_file():
        vectors = np.load(path)
        if vectors.shape[0] == len(texts):
            return vectors
    embed: Callable[[list[str]], np.ndarray]
    if kind == "queries":
        embed = lambda batch: np.stack([model.embed_query(text) for text in batch])  # noqa: E731
    else:
        embed = model.embed_documents
    click.echo(f"embedding {len(texts)} {kind} with {model.name} (once; cached in {folder})", err=True)
    started = time.perf_counter()
    parts = []
    with tqdm(total=len(texts), unit=f" {kind}", disable=not sys.stderr.isatty()) as bar:
        for start in range(0, len(texts), _BATCH):
            batch = list(texts[start : start + _BATCH])
            parts.append(np.asarray(embed(batch), dtype=np.float32))
            bar.update(len(batch))
    vectors = np.concatenate(parts) if parts else np.zeros((0, model.dimensions), dtype=np.float32)
    click.echo(f"embedded {len(texts)} {kind} in {time.perf_counter() - started:.1f}s", err=True)
    folder.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.npy")
    np.save(partial, vectors)
    partial.replace(path)
    return vectors


def embedding_throughput(model: EmbeddingModel, texts: Sequence[str], *, sample: int = 256) -> float:
    """Chunks per second of the model on an evenly spread sample of `texts` (after a warm-up)."""
    if not texts:
        return 0.0
    step = max(1, len(texts) // sample)
    chosen = list(texts[::step][:sample])
    model.embed_documents(chosen[:8])
    started = time.perf_counter()
    model.embed_documents(chosen)
    return len(chosen) / (time.perf_counter() - started)


class PrecomputedEmbeddings(Embeddings):
    """A LangChain `Embeddings` that answers from precomputed vectors: no model time in any timing."""

    def __init__(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        self._rows = {text: row for row, text in enumerate(texts)}
        self._vectors = vectors

    def array(self, texts: Sequence[str]) -> np.ndarray:
        try:
            return self._vectors[[self._rows[text] for text in texts]]
        except KeyError:
            raise KeyError("text without a precomputed embedding") from None

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.array(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.array([text])[0].tolist()


class PrecomputedModel(EmbeddingModel):
    """Our `EmbeddingModel` over precomputed vectors, under the real model's name."""

    def __init__(self, name: str, embeddings: PrecomputedEmbeddings, dimensions: int) -> None:
        super().__init__(name, embeddings)
        self._dimensions = dimensions
        self._precomputed = embeddings

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self._precomputed.array(texts)

    def embed_query(self, text: str) -> np.ndarray:
        return self._precomputed.array([text])[0]


@dataclass(frozen=True)
class Benchmark:
    """A BEIR collection ready to query: judgements, chunks, their vectors, embedded queries."""

    dataset: BeirDataset
    corpus: Corpus
    vectors: np.ndarray  # one per chunk, in corpus order
    queries: list[tuple[str, str, np.ndarray]]  # (query id, text, embedding)


def load_benchmark(settings: Settings, dataset_dir: Path, model: EmbeddingModel, split: str) -> Benchmark:
    """The dataset's corpus and judged queries with their (cached) embeddings."""
    dataset = load_beir(dataset_dir, split)
    corpus = load_corpus(dataset.corpus_path)
    vectors = cached_embeddings(settings, model, corpus.texts)
    qids = list(dataset.queries)
    query_vectors = cached_embeddings(settings, model, [dataset.queries[q] for q in qids], kind="queries")
    queries = [(qid, dataset.queries[qid], query_vectors[i]) for i, qid in enumerate(qids)]
    return Benchmark(dataset, corpus, vectors, queries)
