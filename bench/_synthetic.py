"""The synthetic chunks of `bench scale` (see `bench.scale`) and the exact nearest neighbours they are judged by."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench._data import Corpus
from ingest import Chunk, sha256_hex
from retriever.store.writer import PreparedDocument

__all__ = [
    "BATCH",
    "SEED",
    "ExactNeighbours",
    "K",
    "SyntheticCorpus",
    "cached_neighbours",
    "chunk_ids",
    "overlap",
    "recall",
    "synthetic_documents",
]

SEED = 20_261_123
NOISE = 0.3  # noise norm relative to the mixture's norm
BATCH = 2_000  # synthetic chunks generated at a time
K = 10  # nearest neighbours kept per query

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


def synthetic_documents(texts: list[str], offset: int) -> list[PreparedDocument]:
    """One single-chunk document per text, ids `syn-<offset + i>`."""
    documents = []
    for i, text in enumerate(texts, start=offset):
        document_id = f"syn-{i}"
        digest = sha256_hex(text)
        chunk = Chunk(f"{document_id}:0", document_id, 0, text, {}, digest)
        documents.append(PreparedDocument(document_id, digest, [chunk]))
    return documents


def chunk_ids(corpus: Corpus, size: int) -> list[str]:
    """The ids of a collection of `size` chunks, in load order: the real chunks, then `syn-<i>:0`."""
    real = [chunk.id for chunk in corpus.chunks]
    return real + [f"syn-{i}:0" for i in range(len(real), size)]


def cached_neighbours(
    path: Path,
    queries: list[tuple[str, str, np.ndarray]],
    vectors: np.ndarray,
    synthetic: SyntheticCorpus,
    ids: list[str],
) -> dict[str, list[str]]:
    """The exact top 10 of each query cached at `path`, or recomputed from the real and synthetic vectors."""
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


def recall(found: dict[str, list[str]], exact: dict[str, list[str]]) -> float:
    """Recall@10 of an approximate vector search (query id → ids) against the exact top 10, in [0, 1]."""
    return float(np.mean([len(set(exact[qid]) & set(found[qid][:K])) / K for qid in exact]))


def overlap(found: dict[str, list[str]], exact: dict[str, list[str]]) -> float:
    """Mean share of the exact top 10 that was found (queries with no exact results count as 1)."""
    return float(
        np.mean([len(set(found[q][:K]) & set(exact[q][:K])) / len(exact[q][:K]) if exact[q] else 1.0 for q in exact])
    )
