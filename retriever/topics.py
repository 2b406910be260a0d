"""Topics: k-means over a collection's chunk vectors, each topic labelled by its most distinctive terms.

k-means is scikit-learn's (Lloyd's algorithm with k-means++ seeding, Arthur & Vassilvitskii
2007; its mini-batch variant, Sculley 2010, past `MINI_BATCH_FROM` chunks) on the
unit-length embeddings, where squared Euclidean distance is 2 − 2·cosine: the topics group
chunks by the cosine similarity the vector leg ranks by. Each topic's label joins its most
distinctive terms (`retriever.store.topics.distinctive_terms`: frequency in the topic ×
BM25 idf), as many as it takes to tell it from every other label.

Needs scikit-learn (the `topics` extra).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import psycopg

from ingest import text_problem
from retriever.errors import ConfigurationError, InputError
from retriever.filters import DOCUMENT_ID
from retriever.store import topics as stored
from retriever.store.collections import get_collection

if TYPE_CHECKING:
    from sklearn.cluster import KMeans, MiniBatchKMeans

__all__ = ["LABEL_TERMS", "MINI_BATCH_FROM", "CollectionTopics", "TopicReport", "cluster", "label_topics"]

LABEL_TERMS = 3  # terms in a label, more when two labels would read the same
MINI_BATCH_FROM = 50_000  # chunks from which mini-batch k-means replaces full k-means
_MAX_KEY_CHARS = 256


@dataclass(frozen=True, slots=True)
class TopicReport:
    """A collection's topics and the metadata key its chunks carry their topic number under."""

    collection: str
    key: str | None
    topics: list[stored.StoredTopic]


def _kmeans(k: int, rows: int, seed: int) -> KMeans | MiniBatchKMeans:
    try:
        from sklearn.cluster import KMeans, MiniBatchKMeans
    except ImportError:
        raise ConfigurationError(
            "topics need scikit-learn: pip install 'hybrid-rag[topics]' (or scikit-learn)"
        ) from None
    if rows >= MINI_BATCH_FROM:
        return MiniBatchKMeans(n_clusters=k, random_state=seed, batch_size=4096, n_init=3)
    return KMeans(n_clusters=k, random_state=seed, n_init="auto")


def cluster(vectors: np.ndarray, k: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """k-means over `vectors` (n × d): each row's topic (shape (n,), 0..k−1) and the unit-length centroids (k × d).

    Rows are scaled to unit length first. Raises `InputError` unless 2 ≤ k ≤ n.
    """
    rows = len(vectors)
    if not 2 <= k <= rows:
        raise InputError(f"k must be between 2 and the collection's {rows} chunks, not {k}")
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    model = _kmeans(k, rows, seed).fit(unit)
    centroids = model.cluster_centers_.astype(np.float32)
    centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
    return model.labels_.astype(np.int32), centroids


def label_topics(terms: dict[int, list[str]], k: int) -> dict[int, str]:
    """Topic → label: its first LABEL_TERMS terms joined by " / ", lengthened until no other label reads the same.

    A topic whose terms run out before its label is unique (or that has none) gets its number appended.
    """
    labels: dict[int, str] = {}
    for topic in range(k):
        ranked = terms.get(topic, [])
        count = LABEL_TERMS
        label = " / ".join(ranked[:count])
        while label in labels.values() and count < len(ranked):
            count += 1
            label = " / ".join(ranked[:count])
        if not label or label in labels.values():
            label = f"{label or 'topic'} #{topic}"
        labels[topic] = label
    return labels


def _check_key(key: str) -> str:
    if not isinstance(key, str) or not key or len(key) > _MAX_KEY_CHARS or key.startswith("$"):
        raise InputError(f"the topic's metadata key must be 1-{_MAX_KEY_CHARS} characters, not starting with $")
    if key == DOCUMENT_ID:
        raise InputError(f"{DOCUMENT_ID!r} names the chunk's document in filters: choose another key")
    if problem := text_problem(key, "the topic's metadata key"):
        raise InputError(problem)
    return key


class CollectionTopics:
    """Mixed into `Engine`: topics found, stored and listed on a primary connection."""

    connection: Callable[[], contextlib.AbstractContextManager[psycopg.Connection]]

    def find_topics(self, collection: str, k: int = 10, *, key: str = "topic", seed: int = 0) -> TopicReport:
        """Cluster the collection's chunks into `k` topics, label them, and store them (replacing earlier ones).

        Each chunk's metadata gets `{key: topic number}`; chunks written later are given the
        nearest topic as they are written. Raises `CollectionNotFound`, `InputError` (k out of
        range, a key the documents' own metadata uses), `ConfigurationError` (no scikit-learn).
        """
        _check_key(key)
        if not 0 <= seed < 2**32:
            raise InputError(f"the seed must be between 0 and 2**32 - 1, not {seed}")
        with self.connection() as conn:
            found = get_collection(conn, collection)
            if stored.key_in_use(conn, found, key):
                raise InputError(
                    f"chunks of {collection!r} already have metadata {key!r} of their own: choose another key"
                )
            keys, vectors = stored.chunk_vectors(conn, found)
        assigned, centroids = cluster(vectors, k, seed=seed)  # no connection held through the CPU's work
        with self.connection() as conn:
            now = get_collection(conn, collection)  # its BM25 statistics as they are now
            terms = stored.distinctive_terms(conn, now, keys, assigned)
            labels = label_topics(terms, k)
            sizes = np.bincount(assigned, minlength=k)
            topics = [
                stored.StoredTopic(topic, labels[topic], terms.get(topic, []), int(sizes[topic])) for topic in range(k)
            ]
            # as the vectors were read: refused if a re-embed swapped in others meanwhile
            stored.save_topics(conn, found, topics, centroids, keys, assigned, key=key)
            return TopicReport(collection, key, stored.topics(conn, now)[1])

    def topics(self, collection: str) -> TopicReport:
        """The collection's stored topics with their current sizes (none before `find_topics`)."""
        with self.connection() as conn:
            key, topics = stored.topics(conn, get_collection(conn, collection))
        return TopicReport(collection, key, topics)
