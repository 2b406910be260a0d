"""Ingest is idempotent and atomic; search is one statement whose fusion matches `rrf_fuse`."""

from __future__ import annotations

import pytest

from ingest import ChunkingConfig, SourceDocument
from retriever import Engine
from retriever.connections import open_primary
from retriever.errors import DocumentNotFound, EmbeddingMismatch
from retriever.fusion import rrf_fuse
from retriever.results import SearchParams
from retriever.store.collections import get_collection

TOPICS = ["coffee", "cycling", "astronomy", "gardening"]


def corpus(n: int = 40, *, version: str = "v1") -> list[SourceDocument]:
    return [
        SourceDocument(
            document_id=f"doc-{i}",
            text=f"{TOPICS[i % 4]} note {i} {version}: " + " ".join(f"word{(i * 7 + j) % 50}" for j in range(30)),
            title=f"Note {i}",
            source="test",
            metadata={"topic": TOPICS[i % 4], "n": i, "rare": i == 7},
        )
        for i in range(n)
    ]


def test_reingesting_unchanged_documents_writes_nothing(settings, collection_name, fake_model):
    first = Engine(settings, model=fake_model).ingest(collection_name, corpus(), ChunkingConfig())
    again = Engine(settings, model=fake_model).ingest(collection_name, corpus(), ChunkingConfig())
    assert first.new_chunks == 40 and first.new_documents == 40
    assert again.new_chunks == 0 and again.unchanged_documents == 40
    assert again.summary().startswith("0 new, 40 unchanged")


def test_changed_document_replaces_its_chunks(settings, collection_name, fake_model):
    Engine(settings, model=fake_model).ingest(collection_name, corpus(), ChunkingConfig())
    changed = corpus(version="v2")[:3]
    report = Engine(settings, model=fake_model).ingest(collection_name, changed, ChunkingConfig())
    assert report.replaced_documents == 3
    with open_primary(settings) as conn:
        collection = get_collection(conn, collection_name)
        rows = conn.execute(
            f'SELECT content FROM hybrid_rag."{collection_name}" WHERE document_id = %s', ("doc-1",)
        ).fetchall()
        assert collection.chunk_count == 40
        postings = conn.execute(
            f'SELECT count(DISTINCT k.key) FROM hybrid_rag."{collection_name}__postings" p, '
            f'unnest(p.chunk_keys) k(key) JOIN hybrid_rag."{collection_name}" c USING (key)'
        ).fetchone()
    assert [r[0] for r in rows] == [corpus(version="v2")[1].title + "\n" + corpus(version="v2")[1].text]
    assert postings[0] == 40


def test_sql_fusion_equals_rrf_fuse_of_the_two_legs(settings, collection_name, fake_model):
    Engine(settings, model=fake_model).ingest(collection_name, corpus(), ChunkingConfig())
    query = "astronomy word3 word12 note"
    with open_primary(settings) as conn:

        def ids(mode: str) -> list[str]:
            params = SearchParams(k=40, mode=mode, candidates=20, fusion="rrf", rrf_k=10, weights=(1.0, 0.7))  # type: ignore[arg-type]
            return [
                h.id for h in Engine(settings, model=fake_model).search(collection_name, query, params, conn=conn).hits
            ]

        vector, text = ids("vector"), ids("text")
        hybrid = (
            Engine(settings, model=fake_model)
            .search(
                collection_name,
                query,
                SearchParams(k=40, candidates=20, fusion="rrf", rrf_k=10, weights=(1.0, 0.7)),
                conn=conn,
            )
            .hits
        )
    expected = rrf_fuse({"vector": vector, "text": text}, weights={"vector": 1.0, "text": 0.7}, rrf_k=10)
    assert [h.id for h in hybrid] == [item for item, _, _ in expected]
    assert [h.score for h in hybrid] == pytest.approx([score for _, score, _ in expected], rel=1e-12)
    assert [(h.vector_rank, h.text_rank) for h in hybrid] == [(r["vector"], r["text"]) for _, _, r in expected]


def test_selective_filter_still_returns_k_results(settings, collection_name, fake_model):
    documents = [
        SourceDocument(f"d{i}", f"shared words about many things number {i}", None, "t", {"group": i % 100})
        for i in range(3000)
    ]
    Engine(settings, model=fake_model).ingest(collection_name, documents, ChunkingConfig())
    with open_primary(settings) as conn:
        hits = (
            Engine(settings, model=fake_model)
            .search(collection_name, "shared words", SearchParams(k=10, filter={"group": 42}, candidates=40), conn=conn)
            .hits
        )
    assert len(hits) == 10
    assert {h.metadata["group"] for h in hits} == {42}


def test_collection_refuses_other_embeddings(settings, collection_name, fake_model, local_model):
    Engine(settings, model=fake_model).ingest(collection_name, corpus(4), ChunkingConfig())
    with open_primary(settings) as conn, pytest.raises(EmbeddingMismatch, match="test:hash-32"):
        Engine(settings, model=local_model).search(collection_name, "coffee", SearchParams(), conn=conn)


def test_like_ranks_against_a_stored_document_and_leaves_it_out(settings, collection_name, fake_model):
    Engine(settings, model=fake_model).ingest(collection_name, corpus(), ChunkingConfig())
    with open_primary(settings) as conn:
        hits = (
            Engine(settings, model=fake_model)
            .search(collection_name, None, SearchParams(k=5), like="doc-3", conn=conn)
            .hits
        )
        assert hits and "doc-3" not in {h.document_id for h in hits}
        assert all(h.vector_rank is not None or h.text_rank is not None for h in hits)
        with pytest.raises(DocumentNotFound):
            Engine(settings, model=fake_model).search(
                collection_name, None, SearchParams(), like="no-such-doc", conn=conn
            )
