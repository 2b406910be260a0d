"""`HybridRetriever`, and `HybridVectorStore(...).as_retriever()`, are standard LangChain retrievers:
the langchain-tests suite, LCEL, async."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda
from langchain_tests.integration_tests import RetrieversIntegrationTests

from ingest import ChunkingConfig, SourceDocument
from retriever import Engine, HybridRetriever
from retriever.connections import open_primary
from retriever.store.collections import drop_collection
from retriever.vectorstore import HybridVectorStore
from retriever.vectorstore_retriever import HybridStoreRetriever

COLLECTION = f"t_lc_{uuid.uuid4().hex[:8]}"

PASSAGES = {
    "photosynthesis": (
        "biology",
        2019,
        "Photosynthesis lets plants turn sunlight, water and carbon dioxide into glucose and oxygen; "
        "chlorophyll in the chloroplasts absorbs the light.",
    ),
    "mitochondria": (
        "biology",
        2021,
        "Mitochondria release the energy stored in glucose by cellular respiration and make ATP, "
        "the cell's energy currency.",
    ),
    "derailleur": (
        "cycling",
        2020,
        "To adjust a rear derailleur, shift to the smallest cog and turn the barrel adjuster until "
        "the chain moves cleanly to the next sprocket.",
    ),
    "tyres": (
        "cycling",
        2023,
        "Tubeless bicycle tyres hold sealant that plugs small punctures, so you can ride at lower "
        "pressure without pinch flats.",
    ),
    "espresso": (
        "coffee",
        2022,
        "Espresso is brewed by pushing hot water through finely ground coffee at about nine bars "
        "of pressure for twenty-five seconds.",
    ),
    "cold-brew": (
        "coffee",
        2018,
        "Cold brew coffee steeps coarse grounds in cold water for twelve to twenty-four hours, "
        "which gives a smooth, less acidic drink.",
    ),
    "jupiter": (
        "astronomy",
        2017,
        "Jupiter is the largest planet in the solar system; its Great Red Spot is a storm larger than the Earth.",
    ),
    "telescope": (
        "astronomy",
        2024,
        "A telescope's aperture, the diameter of its main lens or mirror, decides how much light "
        "it gathers and how faint an object it shows.",
    ),
}


@pytest.fixture(scope="module", autouse=True)
def corpus(settings, local_model):
    """The passages, ingested once with the real model; the retriever reads settings from the environment."""
    documents = [
        SourceDocument(name, text, None, "test", {"topic": topic, "year": year})
        for name, (topic, year, text) in PASSAGES.items()
    ]
    Engine(settings, model=local_model).ingest(COLLECTION, documents, ChunkingConfig())
    yield
    with open_primary(settings) as conn:
        drop_collection(conn, COLLECTION)


@pytest.fixture
def retriever() -> HybridRetriever:
    found = HybridRetriever(collection=COLLECTION, k=4)
    yield found
    found.close()


class TestHybridRetrieverStandard(RetrieversIntegrationTests):
    """The langchain-tests retriever suite, unmodified."""

    @property
    def retriever_constructor(self) -> type[HybridRetriever]:
        return HybridRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"collection": COLLECTION, "k": 4}

    @property
    def retriever_query_example(self) -> str:
        return "how do plants turn sunlight into sugar?"


def store_retriever(collection: str, k: int = 4) -> HybridStoreRetriever:
    """The vector store's retriever over the ingested collection, in its default (hybrid) search."""
    return HybridVectorStore(collection).as_retriever(search_kwargs={"k": k})


class TestHybridVectorStoreRetrieverStandard(TestHybridRetrieverStandard):
    """The same suite, unmodified, for `HybridVectorStore(...).as_retriever()` over the same collection."""

    @property
    def retriever_constructor(self) -> Any:
        return store_retriever


def test_the_stores_retriever_ranks_like_the_hybrid_retriever(retriever):
    query = "how do plants turn sunlight into sugar?"
    from_store = store_retriever(COLLECTION).invoke(query)
    assert [doc.metadata["document_id"] for doc in retriever.invoke(query)] == [doc.id for doc in from_store]
    assert from_store[0].metadata["retrieval"] == retriever.invoke(query)[0].metadata["retrieval"]


def test_documents_carry_the_chunk_id_metadata_and_retrieval_scores(retriever):
    docs = retriever.invoke("how do plants turn sunlight into sugar?")
    assert len(docs) == 4
    top = docs[0]
    assert isinstance(top, Document)
    assert top.id == "photosynthesis:0"
    assert "chlorophyll" in top.page_content
    assert top.metadata["topic"] == "biology" and top.metadata["year"] == 2019
    assert top.metadata["document_id"] == "photosynthesis"
    retrieval = top.metadata["retrieval"]
    assert set(retrieval) == {"score", "vector_rank", "text_rank"}
    # first in both legs: Σ w under the linear fusions (each leg's best scores 1), Σ w / (rrf_k + 1) under rrf
    expected = sum(retriever.weights) / (retriever.rrf_k + 1 if retriever.fusion == "rrf" else 1)
    assert retrieval == {"score": pytest.approx(expected), "vector_rank": 1, "text_rank": 1}
    scores = [doc.metadata["retrieval"]["score"] for doc in docs]
    assert scores == sorted(scores, reverse=True)


def test_k_filter_and_mode_can_be_set_per_call(retriever):
    two = retriever.invoke("coffee", k=2)
    assert len(two) == 2
    cycling = retriever.invoke("how do I fix my bike?", k=8, filter={"topic": "cycling"})
    assert {doc.metadata["document_id"] for doc in cycling} == {"derailleur", "tyres"}
    recent = retriever.invoke("coffee", k=8, filter={"topic": "coffee", "year": {"$gte": 2020}})
    assert [doc.metadata["document_id"] for doc in recent] == ["espresso"]
    text_only = retriever.invoke("barrel adjuster", mode="text")
    assert text_only[0].metadata["document_id"] == "derailleur"
    assert all(doc.metadata["retrieval"]["vector_rank"] is None for doc in text_only)
    vector_only = retriever.invoke("a giant storm on a gas planet", mode="vector", k=1)
    assert vector_only[0].metadata["document_id"] == "jupiter"
    assert vector_only[0].metadata["retrieval"]["text_rank"] is None


def test_per_call_arguments_do_not_change_the_retrievers_defaults(retriever):
    retriever.invoke("coffee", k=1, mode="text")
    assert len(retriever.invoke("coffee")) == 4
    assert retriever.k == 4 and retriever.mode == "hybrid"


def test_an_unknown_search_argument_is_rejected(retriever):
    with pytest.raises(TypeError, match="top_n"):
        retriever.invoke("coffee", top_n=3)


async def test_ainvoke_returns_the_same_documents_as_invoke(retriever):
    query = "what makes ATP in a cell?"
    sync_docs = retriever.invoke(query, k=3)
    async_docs = await retriever.ainvoke(query, k=3)
    assert [doc.id for doc in async_docs] == [doc.id for doc in sync_docs]
    assert async_docs[0].metadata["document_id"] == "mitochondria"
    filtered = await retriever.ainvoke(query, k=8, filter={"topic": "astronomy"})
    assert {doc.metadata["document_id"] for doc in filtered} == {"jupiter", "telescope"}


class PromptSpy(BaseCallbackHandler):
    """Records the messages every chat model in the run received."""

    def __init__(self) -> None:
        self.prompts: list[str] = []

    def on_chat_model_start(self, serialized: Any, messages: list[list[Any]], **kwargs: Any) -> None:
        self.prompts.extend("\n".join(str(m.content) for m in batch) for batch in messages)


def format_docs(docs: list[Document]) -> str:
    return "\n\n".join(doc.page_content for doc in docs)


def test_retriever_feeds_an_lcel_chain_whose_model_sees_the_retrieved_text(retriever):
    prompt = ChatPromptTemplate.from_messages(
        [("system", "Answer from this context only:\n{context}"), ("human", "{question}")]
    )
    llm = FakeListChatModel(responses=["Brew it under nine bars of pressure."])
    chain = (
        {"context": retriever.with_config(run_name="hybrid") | RunnableLambda(format_docs), "question": lambda q: q}
        | prompt
        | llm
        | StrOutputParser()
    )
    spy = PromptSpy()
    answer = chain.invoke("how is espresso brewed?", config={"callbacks": [spy]})
    assert answer == "Brew it under nine bars of pressure."
    assert len(spy.prompts) == 1
    assert "finely ground coffee at about nine bars" in spy.prompts[0]
    assert "how is espresso brewed?" in spy.prompts[0]
    assert "Answer from this context only" in spy.prompts[0]


async def test_the_same_chain_runs_asynchronously(retriever):
    spy = PromptSpy()
    chain = retriever | RunnableLambda(format_docs) | ChatPromptTemplate.from_template("Context:\n{context}")
    chain = chain | FakeListChatModel(responses=["ok"]) | StrOutputParser()
    assert await chain.ainvoke("largest planet", config={"callbacks": [spy]}) == "ok"
    assert "Great Red Spot" in spy.prompts[0]
