"""`HybridVectorStore` is a standard LangChain vector store: the langchain-tests suite, sync and async, unmodified."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from langchain_tests.integration_tests import VectorStoreIntegrationTests

from retriever.vectorstore import HybridVectorStore


class TestHybridVectorStoreStandard(VectorStoreIntegrationTests):
    """Every test gets an empty store over a fresh collection, with the suite's own fake embeddings."""

    @pytest.fixture
    def vectorstore(self, settings, collection_name) -> Iterator[HybridVectorStore]:  # type: ignore[override]
        store = HybridVectorStore(collection_name, self.get_embeddings(), settings=settings)
        try:
            yield store
        finally:
            store.delete_collection()
