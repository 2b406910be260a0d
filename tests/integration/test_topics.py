"""Topics: k-means over a collection's chunk vectors, labelled, stored in each chunk's metadata, kept on ingest.

Specification, on SciFact's 5,183 abstracts: every chunk gets exactly one topic; labels are
non-empty and distinct; a search filtered by a topic returns only that topic's chunks, in
every mode; chunks ingested afterwards get the nearest topic; a rerun replaces the topics;
a metadata key the documents use themselves is refused. The vectors here are the tests'
deterministic fake embeddings: what is checked is the plumbing, not how good the topics are.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from hybrid_rag.cli import main
from ingest import ChunkingConfig, SourceDocument
from retriever import Engine, InputError, SearchParams
from retriever.connections import open_primary
from retriever.store.collections import drop_collection

SCIFACT = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "scifact"
CHUNKING = ChunkingConfig(chunk_size=4000, chunk_overlap=200)
K = 8


@pytest.fixture(scope="module")
def scifact(settings, fake_model) -> Iterator[str]:
    name = "t_topics_scifact"
    engine = Engine(settings, model=fake_model)
    report = engine.ingest_paths(name, [SCIFACT / "corpus.jsonl.gz"], CHUNKING)
    assert report.new_documents == 5183
    engine.find_topics(name, K)
    yield name
    with open_primary(settings) as conn:
        drop_collection(conn, name)


@pytest.fixture
def engine(settings, fake_model) -> Engine:
    return Engine(settings, model=fake_model)


def chunk_topics(settings, collection: str, key: str = "topic") -> list[object]:
    with open_primary(settings) as conn:
        rows = conn.execute(f'SELECT metadata -> %s FROM hybrid_rag."{collection}"', (key,)).fetchall()
    return [value for (value,) in rows]


def test_every_chunk_has_one_topic_and_the_sizes_add_up(engine, scifact, settings):
    assigned = chunk_topics(settings, scifact)
    report = engine.topics(scifact)

    assert all(isinstance(topic, int) and 0 <= topic < K for topic in assigned)
    assert [topic.topic for topic in report.topics] == list(range(K))
    assert {topic.topic: topic.size for topic in report.topics} == dict(Counter(assigned))
    assert sum(topic.size for topic in report.topics) == engine.collection(scifact).chunk_count


def test_labels_are_distinctive_terms_non_empty_and_distinct(engine, scifact):
    labels = [topic.label for topic in engine.topics(scifact).topics]

    assert all(label.strip() for label in labels)
    assert len(set(labels)) == K
    for topic in engine.topics(scifact).topics:
        assert topic.terms and topic.label.startswith(" / ".join(topic.terms[:1]))


@pytest.mark.parametrize("mode", ["hybrid", "vector", "text"])
def test_a_search_filtered_by_topic_returns_only_that_topics_chunks(engine, scifact, mode):
    for topic in (0, 3, K - 1):
        hits = engine.search(scifact, "cell protein expression", SearchParams(k=50, mode=mode, filter={"topic": topic}))
        assert hits.hits and {hit.metadata["topic"] for hit in hits.hits} == {topic}


def test_chunks_ingested_later_get_the_nearest_topic(engine, scifact, settings):
    before = chunk_topics(settings, scifact)
    extra = [
        SourceDocument(f"extra-{i}", f"protein expression in tumour cells, sample {i}", None, "t", {}) for i in range(3)
    ]
    engine.ingest(scifact, extra, CHUNKING)
    try:
        hits = engine.search(
            scifact,
            "tumour cells sample",
            SearchParams(k=10, mode="text", filter={"document_id": {"$in": ["extra-0", "extra-1", "extra-2"]}}),
        )
        assert len(hits.hits) == 3
        assert [hit.metadata.get("topic") for hit in hits.hits] == [
            nearest_topic(settings, scifact, hit.id) for hit in hits.hits
        ]
    finally:
        engine.delete_documents(scifact, [document.document_id for document in extra])
    assert Counter(chunk_topics(settings, scifact)) == Counter(before)


def nearest_topic(settings, collection: str, chunk_id: str) -> int:
    """The topic whose stored centroid is nearest (cosine) to the chunk's vector, computed here."""
    with open_primary(settings) as conn:
        (vector,) = conn.execute(
            f'SELECT embedding FROM hybrid_rag."{collection}" WHERE id = %s', (chunk_id,)
        ).fetchone()
        centroids = conn.execute("SELECT topic, centroid FROM hybrid_rag.topics WHERE collection = %s", (collection,))
        rows = centroids.fetchall()
    vector = np.asarray(vector, dtype=np.float64)
    distances = {
        topic: 1 - float(np.dot(vector, c) / (np.linalg.norm(vector) * np.linalg.norm(c))) for topic, c in rows
    }
    return min(distances, key=distances.get)


def test_a_document_that_carries_the_key_itself_keeps_its_value(engine, scifact, settings):
    own = SourceDocument("own-topic", "protein expression in tumour cells", None, "t", {"topic": "mine"})
    engine.ingest(scifact, [own], CHUNKING)
    try:
        assert chunk_topics_of(settings, scifact, "own-topic") == ["mine"]
    finally:
        engine.delete_documents(scifact, ["own-topic"])


def chunk_topics_of(settings, collection: str, document_id: str) -> list[object]:
    with open_primary(settings) as conn:
        rows = conn.execute(
            f'SELECT metadata -> %s FROM hybrid_rag."{collection}" WHERE document_id = %s', ("topic", document_id)
        ).fetchall()
    return [value for (value,) in rows]


def test_a_rerun_replaces_the_topics(engine, settings, fake_model, collection_name):
    documents = [
        SourceDocument(f"d{i}", f"{word} notes {i}", None, "t", {})
        for i, word in enumerate(["fern", "moss", "lichen", "algae", "kelp", "cactus"] * 3)
    ]
    engine.ingest(collection_name, documents, ChunkingConfig())
    engine.find_topics(collection_name, 4)

    replaced = engine.find_topics(collection_name, 2, key="group")

    assert [topic.topic for topic in replaced.topics] == [0, 1] and replaced.key == "group"
    assert set(chunk_topics(settings, collection_name, "group")) == {0, 1}
    assert set(chunk_topics(settings, collection_name, "topic")) == {None}  # the old key is gone


def test_a_key_the_documents_use_themselves_is_refused(engine, collection_name):
    documents = [SourceDocument(f"d{i}", f"note {i} about ferns", None, "t", {"topic": "botany"}) for i in range(4)]
    engine.ingest(collection_name, documents, ChunkingConfig())

    with pytest.raises(InputError, match="choose another key"):
        engine.find_topics(collection_name, 2)
    with pytest.raises(InputError, match="between 2 and"):
        engine.find_topics(collection_name, 5, key="cluster")
    with pytest.raises(InputError, match="names the chunk's document"):
        engine.find_topics(collection_name, 2, key="document_id")
    with pytest.raises(InputError, match="seed"):
        engine.find_topics(collection_name, 2, key="cluster", seed=-1)
    assert engine.find_topics(collection_name, 2, key="cluster").topics


def test_the_cli_prints_the_topics_and_draws_their_sizes(scifact, tmp_path):
    chart = tmp_path / "topics.png"

    listed = CliRunner().invoke(main, ["topics", "-c", scifact, "--list", "--chart", str(chart)])
    wrong = CliRunner().invoke(main, ["topics", "-c", "no_such_collection"])

    assert listed.exit_code == 0, listed.output
    assert len(re.findall(r"^ +\d+ +\d+  \S", listed.output, flags=re.MULTILINE)) == K
    assert chart.read_bytes().startswith(b"\x89PNG")
    assert wrong.exit_code == 2 and len(wrong.output.strip().splitlines()) == 1
