"""LangChain's indexing API keeps a `HybridVectorStore` in step with its sources: added, changed and removed
documents, with incremental and full cleanup, sync and async."""

from __future__ import annotations

import pytest
from langchain_core.documents import Document
from langchain_core.indexing import InMemoryRecordManager, aindex, index

from retriever import Engine
from retriever.results import SearchParams
from retriever.vectorstore import HybridVectorStore


@pytest.fixture
def store(settings, collection_name, fake_model) -> HybridVectorStore:
    return HybridVectorStore(collection_name, fake_model.embeddings, settings=settings, embedding_name=fake_model.name)


@pytest.fixture
def records(collection_name) -> InMemoryRecordManager:
    manager = InMemoryRecordManager(namespace=f"hybrid-rag/{collection_name}")
    manager.create_schema()
    return manager


def page(source: str, text: str) -> Document:
    return Document(page_content=text, metadata={"source": source})


def stored(store: HybridVectorStore, records: InMemoryRecordManager) -> dict[str, str]:
    """source → text of every document in the store, read back by the ids the record manager holds."""
    documents = store.get_by_ids(records.list_keys())
    assert len(documents) == len(records.list_keys())
    return {doc.metadata["source"]: doc.page_content for doc in documents}


def counts(added: int = 0, updated: int = 0, skipped: int = 0, deleted: int = 0) -> dict[str, int]:
    return {"num_added": added, "num_updated": updated, "num_skipped": skipped, "num_deleted": deleted}


def test_incremental_then_full_cleanup_keep_the_store_in_step_with_the_sources(
    store, records, settings, collection_name, fake_model
):
    first = [page("a.md", "Espresso needs fine grounds."), page("b.md", "Tea needs hot water."), page("c.md", "Cocoa.")]
    assert index(first, records, store, cleanup="incremental", source_id_key="source", key_encoder="sha256") == counts(
        added=3
    )
    assert stored(store, records) == {
        "a.md": "Espresso needs fine grounds.",
        "b.md": "Tea needs hot water.",
        "c.md": "Cocoa.",
    }

    # a.md changes; b.md is the same; c.md is not in this batch, and incremental cleanup leaves it alone
    second = [page("a.md", "Espresso needs very fine grounds."), page("b.md", "Tea needs hot water.")]
    assert index(second, records, store, cleanup="incremental", source_id_key="source", key_encoder="sha256") == counts(
        added=1, skipped=1, deleted=1
    )
    assert stored(store, records) == {
        "a.md": "Espresso needs very fine grounds.",
        "b.md": "Tea needs hot water.",
        "c.md": "Cocoa.",
    }

    # full cleanup: whatever this run did not see is gone (c.md), and a changed b.md replaces its old version
    third = [page("a.md", "Espresso needs very fine grounds."), page("b.md", "Green tea needs cooler water.")]
    assert index(third, records, store, cleanup="full", source_id_key="source", key_encoder="sha256") == counts(
        added=1, skipped=1, deleted=2
    )
    assert stored(store, records) == {
        "a.md": "Espresso needs very fine grounds.",
        "b.md": "Green tea needs cooler water.",
    }

    # what the engine (CLI, HTTP) sees agrees: two documents, and the text leg no longer finds removed words
    engine = Engine(settings, model=fake_model)
    assert sorted(d.id for d in engine.documents(collection_name).documents) == sorted(records.list_keys())
    assert engine.search(collection_name, "cocoa hot", SearchParams(mode="text")).hits == []


async def test_aindex_does_the_same_through_the_async_methods(store, records):
    first = [page("a.md", "Espresso needs fine grounds."), page("b.md", "Tea needs hot water.")]
    assert await aindex(
        first, records, store, cleanup="incremental", source_id_key="source", key_encoder="sha256"
    ) == counts(added=2)
    again = [page("a.md", "Espresso needs fine grounds.")]
    assert await aindex(again, records, store, cleanup="full", source_id_key="source", key_encoder="sha256") == counts(
        skipped=1, deleted=1
    )
    assert [doc.metadata["source"] for doc in await store.aget_by_ids(records.list_keys())] == ["a.md"]
    assert [doc.page_content for doc in await store.asimilarity_search("tea", k=5)] == ["Espresso needs fine grounds."]
