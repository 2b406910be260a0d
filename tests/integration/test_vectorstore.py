"""`HybridVectorStore` writes what ingest writes and reads what every edge sees: documents, postings, searches."""

from __future__ import annotations

import dataclasses

import psycopg
import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings

from ingest import ChunkingConfig, SourceDocument
from retriever import Engine
from retriever.errors import (
    CollectionNotFound,
    DatabaseUnavailable,
    EmbeddingMismatch,
    InputError,
    InvalidFilter,
    InvalidName,
)
from retriever.results import SearchParams
from retriever.vectorstore import HybridVectorStore
from retriever.vectorstore_plan import embedding_name

DOCUMENTS = [
    Document(
        id="espresso", page_content="Espresso is brewed under nine bars of pressure.", metadata={"topic": "coffee"}
    ),
    Document(id="tea", page_content="Green tea steeps at eighty degrees for two minutes.", metadata={"topic": "tea"}),
    Document(id="cocoa", page_content="Cocoa is whisked into warm milk.", metadata={"topic": "cocoa", "year": 2020}),
]


class Counting(Embeddings):
    """Wraps embeddings, counting the texts it embeds."""

    def __init__(self, inner: Embeddings) -> None:
        self.inner, self.texts = inner, 0

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.texts += len(texts)
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.inner.embed_query(text)


@pytest.fixture
def store(settings, collection_name, fake_model) -> HybridVectorStore:
    return HybridVectorStore(collection_name, fake_model.embeddings, settings=settings, embedding_name=fake_model.name)


def test_written_documents_are_what_the_engine_lists_gets_and_finds_by_text(
    store, settings, collection_name, fake_model
):
    assert store.add_documents(DOCUMENTS) == ["espresso", "tea", "cocoa"]
    engine = Engine(settings, model=fake_model)
    assert [d.id for d in engine.documents(collection_name).documents] == ["cocoa", "espresso", "tea"]
    stored = engine.document(collection_name, "tea")
    assert stored.metadata == {"topic": "tea"} and [c.content for c in stored.chunks] == [DOCUMENTS[1].page_content]
    found = engine.search(collection_name, "pressure", SearchParams(mode="text", k=3)).hits
    assert [(hit.document_id, hit.id) for hit in found] == [("espresso", "espresso:0")]


async def test_a_history_of_writes_leaves_the_postings_of_one_write_of_the_outcome(
    settings, names, fake_model, collection_state
):
    """Sync and async adds, a changed document and deletes keep documents, postings, document
    frequencies and BM25 statistics exactly as writing the surviving documents once would."""
    history, once = f"t_vs_history_{len(names)}", f"t_vs_once_{len(names)}"
    names.extend([history, once])
    options = {"settings": settings, "embedding_name": fake_model.name}
    written = HybridVectorStore(history, fake_model.embeddings, **options)
    written.add_documents(DOCUMENTS)
    changed = Document(id="tea", page_content="Black tea steeps in boiling water.", metadata={"topic": "tea"})
    await written.aadd_documents([changed, Document(id="mate", page_content="Mate is sipped through a bombilla.")])
    written.delete(["cocoa"])
    await written.adelete(["mate", "never-written"])
    HybridVectorStore(once, fake_model.embeddings, **options).add_documents([DOCUMENTS[0], changed])
    assert collection_state(history) == collection_state(once)
    assert collection_state(history)["statistics"][0][0] == 2


def test_an_unchanged_document_is_not_embedded_again(settings, collection_name, fake_model):
    counting = Counting(fake_model.embeddings)
    store = HybridVectorStore(collection_name, counting, settings=settings, embedding_name=fake_model.name)
    store.add_documents(DOCUMENTS)
    store.add_documents([*DOCUMENTS[:2], Document(id="cocoa", page_content="Cocoa, now with cinnamon.")])
    assert counting.texts == 3 + 1


def test_chunking_is_off_unless_asked_and_then_splits_as_ingest_does(store):
    text = " ".join(f"Sentence number {i} about brewing coffee at home." for i in range(40))
    store.add_documents([Document(id="whole", page_content=text)])
    store.add_documents([Document(id="split", page_content=text, metadata={"a": 1})], chunking=ChunkingConfig(300, 0))
    (whole,) = store.get_by_ids(["whole"])
    assert whole.page_content == text and whole.metadata == {}
    pieces = store.get_by_ids(["split"])
    assert len(pieces) > 5 and {doc.id for doc in pieces} == {"split"}
    assert [doc.metadata["chunk_index"] for doc in pieces] == list(range(len(pieces)))
    assert all(doc.metadata["a"] == 1 for doc in pieces)
    store.delete(["split"])
    assert store.get_by_ids(["split", "whole"]) == [whole]


def test_the_configured_model_is_the_default_and_a_given_one_is_named_as_the_engine_names_it(settings, fake_model):
    assert HybridVectorStore("docs", settings=settings).model.name == "local:all-MiniLM-L6-v2"
    assert embedding_name(fake_model.embeddings) == "conftest.HashEmbeddings"
    from langchain_openai import OpenAIEmbeddings

    assert embedding_name(OpenAIEmbeddings(model="text-embedding-3-small", api_key="unused")) == (
        "openai:text-embedding-3-small"
    )


def test_a_collection_built_by_ingest_with_the_configured_model_is_searched_by_default(
    settings, collection_name, local_model
):
    passages = {"jupiter": "Jupiter's Great Red Spot is a storm.", "bread": "Sourdough rises with wild yeast."}
    documents = [SourceDocument(i, text, None, "test", {}) for i, text in passages.items()]
    Engine(settings, model=local_model).ingest(collection_name, documents, ChunkingConfig())
    (found,) = HybridVectorStore(collection_name, settings=settings).similarity_search("a giant storm on a planet", k=1)
    assert found.id == "jupiter" and found.metadata["chunk_index"] == 0


def test_another_model_or_vector_size_is_refused(store, settings, collection_name, fake_model):
    store.add_documents(DOCUMENTS[:1])
    other = HybridVectorStore(collection_name, fake_model.embeddings, settings=settings, embedding_name="other")
    with pytest.raises(EmbeddingMismatch):
        other.add_documents(DOCUMENTS[1:])
    with pytest.raises(EmbeddingMismatch):
        other.similarity_search("espresso")
    with pytest.raises(EmbeddingMismatch):
        store.similarity_search_by_vector([0.1] * 8)


async def test_mistakes_are_our_errors_before_anything_is_written(store, collection_name):
    with pytest.raises(InputError, match="'bad'"):
        store.add_documents([DOCUMENTS[0], Document(id="bad", page_content="nul \x00 inside")])
    with pytest.raises(InputError, match="'bad'"):
        await store.aadd_documents([DOCUMENTS[0], Document(id="bad", page_content="x", metadata={"n": float("nan")})])
    assert store.get_by_ids(["espresso"]) == []
    store.add_documents(DOCUMENTS)
    with pytest.raises(InvalidFilter):
        store.similarity_search("tea", filter={"topic": {"$near": 1}})
    with pytest.raises(InvalidFilter):
        await store.amax_marginal_relevance_search("tea", filter={"$where": "1"})
    with pytest.raises(InputError):
        store.delete()
    with pytest.raises(InvalidName):
        HybridVectorStore("Not A Name")


async def test_delete_collection_drops_it_and_a_new_write_creates_it_again(store, settings, collection_name):
    store.add_documents(DOCUMENTS)
    await store.adelete_collection()
    with pytest.raises(CollectionNotFound):
        Engine(settings).collection(collection_name)
    assert await store.asimilarity_search("tea") == [] and store.hybrid_search("tea") == []
    store.delete_collection()  # nothing left to drop: no error
    await store.aadd_documents(DOCUMENTS[:1])
    assert [doc.id for doc in store.get_by_ids(["espresso", "tea"])] == ["espresso"]


async def test_from_texts_and_afrom_documents_write_into_the_named_collection(settings, names, fake_model):
    names.extend(["t_vs_from_texts", "t_vs_from_documents"])
    options = {"settings": settings, "embedding_name": fake_model.name}
    store = HybridVectorStore.from_texts(
        ["one text"], fake_model.embeddings, [{"n": 1}], ids=["one"], collection="t_vs_from_texts", **options
    )
    assert store.get_by_ids(["one"]) == [Document(id="one", page_content="one text", metadata={"n": 1})]
    made = await HybridVectorStore.afrom_documents(
        DOCUMENTS, fake_model.embeddings, collection="t_vs_from_documents", **options
    )
    assert sorted(doc.id for doc in await made.aget_by_ids(["tea", "cocoa"])) == ["cocoa", "tea"]


async def test_async_methods_do_their_database_work_on_async_connections(store, monkeypatch):
    """Once the collection exists, no async method opens a synchronous connection (none runs in a thread)."""
    store.add_documents(DOCUMENTS[:1])

    def refuse(*args, **kwargs):
        raise AssertionError("a synchronous connection was opened")

    monkeypatch.setattr(psycopg, "connect", refuse)
    monkeypatch.setattr(psycopg.Connection, "connect", refuse)
    await store.aadd_documents(DOCUMENTS[1:])
    assert [doc.id for doc in await store.asimilarity_search("tea", k=3, filter={"topic": "tea"})] == ["tea"]
    assert len(await store.amax_marginal_relevance_search("tea", k=2)) == 2
    assert len(await store.as_retriever().ainvoke("tea")) == 3
    await store.adelete(["tea"])
    assert [doc.id for doc in await store.aget_by_ids(["tea", "cocoa"])] == ["cocoa"]
    await store.adelete_collection()
    assert await store.aget_by_ids(["cocoa"]) == []


async def test_an_unreachable_database_is_our_error_on_every_path(settings, fake_model):
    away = dataclasses.replace(settings, database_url="postgresql://user:secret@127.0.0.1:1/db")
    store = HybridVectorStore("docs", fake_model.embeddings, settings=away, embedding_name=fake_model.name)
    with pytest.raises(DatabaseUnavailable, match="unreachable") as raised:
        store.add_documents(DOCUMENTS)
    assert "secret" not in str(raised.value)
    with pytest.raises(DatabaseUnavailable):
        await store.aadd_documents(DOCUMENTS)
    with pytest.raises(DatabaseUnavailable):
        await store.asimilarity_search("tea")
    with pytest.raises(DatabaseUnavailable):
        store.as_retriever().invoke("tea")
