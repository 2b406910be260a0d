"""The names `retriever` exports: what users import, and nothing else."""

from __future__ import annotations

import retriever


def test_public_names_are_pinned():
    assert sorted(retriever.__all__) == sorted(
        [
            "CollectionIncomplete",
            "CollectionNotFound",
            "ConfigurationError",
            "DatabaseDiskFull",
            "DatabaseFault",
            "DatabaseUnavailable",
            "DocumentInfo",
            "DocumentNotFound",
            "DocumentPage",
            "EmbeddingMismatch",
            "EmbeddingModel",
            "Engine",
            "Hit",
            "HybridRagError",
            "HybridRetriever",
            "HybridVectorStore",
            "IngestReport",
            "InputError",
            "InvalidFilter",
            "InvalidName",
            "LimitExceeded",
            "NotFound",
            "SearchParams",
            "SearchResult",
            "Settings",
            "StoredChunk",
            "StoredDocument",
            "VectorIndex",
            "get_settings",
            "rrf_fuse",
            "validate_name",
        ]
    )
    assert all(hasattr(retriever, name) for name in retriever.__all__)


def test_hybrid_retriever_is_a_langchain_retriever():
    from langchain_core.retrievers import BaseRetriever

    from retriever import HybridRetriever

    assert issubclass(HybridRetriever, BaseRetriever)
    assert HybridRetriever(collection="docs", k=5).k == 5


def test_hybrid_vector_store_is_a_langchain_vector_store_exported_lazily():
    from langchain_core.vectorstores import VectorStore

    from retriever import HybridVectorStore

    assert issubclass(HybridVectorStore, VectorStore)
    assert "HybridVectorStore" not in vars(retriever)  # imported on first use, as HybridRetriever is


def test_every_error_derives_from_the_one_base():
    exported = [getattr(retriever, name) for name in retriever.__all__]
    errors = [item for item in exported if isinstance(item, type) and issubclass(item, Exception)]
    assert len(errors) == 14
    assert all(issubclass(error, retriever.HybridRagError) for error in errors)
