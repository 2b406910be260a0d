"""The vector store's searches: MMR pushes near-duplicates down, relevance thresholds follow the documented
scale (cosine similarity), and its retriever's default search is the fused query, steered by `search_kwargs`."""

from __future__ import annotations

import numpy as np
import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings

from retriever.results import SearchParams
from retriever.vectorstore import HybridVectorStore


def unit(*values: float) -> list[float]:
    vector = np.asarray(values, dtype=np.float64)
    return (vector / np.linalg.norm(vector)).tolist()


class Designed(Embeddings):
    """Embeddings whose vectors the test designs, text by text (3 dimensions)."""

    def __init__(self, vectors: dict[str, list[float]]) -> None:
        self.vectors = vectors

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.vectors[text] for text in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.vectors[text]


QUERY = "how is espresso made"
# three near-duplicates of one passage, all nearer the query than the two different ones
NEAR_DUPLICATES = {
    "Espresso: hot water forced through fine coffee.": unit(0.99, 0.14, 0.0),
    "Espresso: hot water pushed through fine coffee.": unit(0.99, 0.142, 0.002),
    "Espresso: hot water pressed through fine coffee.": unit(0.99, 0.138, -0.002),
    "A moka pot brews on the stove with steam pressure.": unit(0.8, 0.0, 0.6),
    "Cold brew steeps coffee grounds overnight.": unit(0.75, -0.66, 0.0),
}
# passages at known cosine similarities to the query
AT_COSINE = {
    "similar 0.95": unit(0.95, (1 - 0.95**2) ** 0.5, 0.0),
    "similar 0.70": unit(0.70, 0.0, (1 - 0.70**2) ** 0.5),
    "similar 0.30": unit(0.30, (1 - 0.30**2) ** 0.5, 0.0),
    "opposite -0.50": unit(-0.50, 0.0, (1 - 0.50**2) ** 0.5),
}


def designed_store(settings, name: str, passages: dict[str, list[float]]) -> HybridVectorStore:
    embeddings = Designed({QUERY: unit(1.0, 0.0, 0.0), **passages})
    store = HybridVectorStore(name, embeddings, settings=settings, embedding_name="test:designed-3")
    store.add_texts(list(passages), ids=[f"p{i}" for i in range(len(passages))])
    return store


def test_mmr_returns_k_diverse_results_and_pushes_near_duplicates_down(settings, collection_name):
    store = designed_store(settings, collection_name, NEAR_DUPLICATES)
    nearest = [doc.page_content for doc in store.similarity_search(QUERY, k=3)]
    assert all(text.startswith("Espresso") for text in nearest)
    diverse = [doc.page_content for doc in store.max_marginal_relevance_search(QUERY, k=3, fetch_k=5)]
    assert len(diverse) == 3 and diverse[0] == nearest[0]
    assert sorted(diverse[1:]) == [
        "A moka pot brews on the stove with steam pressure.",
        "Cold brew steeps coffee grounds overnight.",
    ]
    # lambda_mult 1 is similarity alone; fetch_k bounds the candidates MMR picks from
    assert [d.page_content for d in store.max_marginal_relevance_search(QUERY, k=3, lambda_mult=1.0)] == nearest
    assert len(store.max_marginal_relevance_search(QUERY, k=3, fetch_k=1)) == 1


async def test_async_mmr_and_the_mmr_retriever_agree_with_sync_mmr(settings, collection_name):
    store = designed_store(settings, collection_name, NEAR_DUPLICATES)
    expected = store.max_marginal_relevance_search(QUERY, k=3, fetch_k=5)
    assert await store.amax_marginal_relevance_search(QUERY, k=3, fetch_k=5) == expected
    by_vector = await store.amax_marginal_relevance_search_by_vector(unit(1.0, 0.0, 0.0), k=3, fetch_k=5)
    assert by_vector == expected
    retriever = store.as_retriever(search_type="mmr", search_kwargs={"k": 3, "fetch_k": 5})
    assert await retriever.ainvoke(QUERY) == expected == retriever.invoke(QUERY)


async def test_relevance_is_cosine_similarity_and_the_threshold_filters_on_it(settings, collection_name):
    store = designed_store(settings, collection_name, AT_COSINE)
    scored = store.similarity_search_with_relevance_scores(QUERY, k=4)
    assert [doc.page_content for doc, _ in scored] == list(AT_COSINE)
    assert [score for _, score in scored] == pytest.approx([0.95, 0.70, 0.30, 0.0], abs=1e-5)
    distances = [distance for _, distance in await store.asimilarity_search_with_score(QUERY, k=4)]
    assert distances == pytest.approx([0.05, 0.30, 0.70, 1.50], abs=1e-5)
    retriever = store.as_retriever(search_type="similarity_score_threshold", search_kwargs={"score_threshold": 0.6})
    assert [doc.page_content for doc in retriever.invoke(QUERY)] == ["similar 0.95", "similar 0.70"]
    assert [doc.page_content for doc in await retriever.ainvoke(QUERY, k=1)] == ["similar 0.95"]


LIBRARY = [
    Document(id="breaker", page_content="Reset the breaker by switching it off and on.", metadata={"room": "hall"}),
    Document(id="boiler", page_content="Reset the boiler with the red button.", metadata={"room": "cellar"}),
    Document(id="fuse", page_content="A blown fuse must be replaced, never reset.", metadata={"room": "hall"}),
    Document(id="garden", page_content="Water the garden at dawn in summer.", metadata={"room": "garden"}),
]


@pytest.fixture
def library(settings, collection_name, fake_model) -> HybridVectorStore:
    store = HybridVectorStore(collection_name, fake_model.embeddings, settings=settings, embedding_name=fake_model.name)
    store.add_documents(LIBRARY)
    return store


def test_the_retrievers_default_search_is_the_fused_query(library):
    retriever = library.as_retriever()
    assert retriever.search_type == "hybrid"
    found = retriever.invoke("reset the breaker")
    assert found[0].id == "breaker" and len(found) == 4  # k 4, LangChain's default
    assert found[0].metadata["room"] == "hall"
    retrieval = found[0].metadata["retrieval"]  # only the fused query ranks by both legs
    assert retrieval["text_rank"] == 1 and retrieval["vector_rank"] is not None
    assert 0 < retrieval["score"] <= sum(SearchParams().weights)  # the default fusion's bound


async def test_search_kwargs_mode_filter_k_and_weights_reach_the_fused_query(library):
    text_only = library.as_retriever(search_kwargs={"mode": "text", "k": 10}).invoke("reset")
    assert {doc.id for doc in text_only} == {"breaker", "boiler", "fuse"}  # BM25 finds only the word
    assert all(doc.metadata["retrieval"]["vector_rank"] is None for doc in text_only)
    hall = library.as_retriever(search_kwargs={"filter": {"room": "hall"}, "k": 10})
    assert {doc.id for doc in await hall.ainvoke("reset")} == {"breaker", "fuse"}
    assert len(library.as_retriever(search_kwargs={"k": 1}).invoke("reset the breaker")) == 1
    # linear fusion: a leg's best scores its weight; weighing one leg alone puts its first chunk first
    linear = {"fusion": "linear", "k": 1}
    (by_vector,) = library.as_retriever(search_kwargs={"weights": (1.0, 0.0), **linear}).invoke("reset the breaker")
    assert by_vector.metadata["retrieval"]["vector_rank"] == 1 and by_vector.metadata["retrieval"]["score"] == 1.0
    (by_text,) = library.as_retriever(search_kwargs={"weights": (0.0, 3.0), **linear}).invoke("reset the breaker")
    assert by_text.metadata["retrieval"]["text_rank"] == 1 and by_text.metadata["retrieval"]["score"] == 3.0
    rrf = library.as_retriever(search_kwargs={"fusion": "rrf", "rrf_k": 10, "weights": (0.0, 1.0), "candidates": 50})
    top = (await rrf.ainvoke("reset the breaker"))[0].metadata["retrieval"]
    assert top["text_rank"] == 1 and top["score"] == pytest.approx(1 / 11)
    with pytest.raises(TypeError, match="top_n"):
        library.as_retriever(search_kwargs={"top_n": 2}).invoke("reset")
