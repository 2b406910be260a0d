"""hybrid-rag's retriever: hybrid (HNSW + BM25, RRF) search on PostgreSQL in one statement."""

from retriever.errors import (
    CollectionNotFound,
    ConfigurationError,
    DatabaseUnavailable,
    DocumentNotFound,
    EmbeddingMismatch,
    HybridRagError,
    InputError,
    InvalidFilter,
    InvalidName,
    LimitExceeded,
    NotFound,
)
from retriever.fusion import rrf_fuse
from retriever.query import Hit, SearchParams, SearchResult
from retriever.settings import Settings, get_settings

__all__ = [
    "CollectionNotFound",
    "ConfigurationError",
    "DatabaseUnavailable",
    "DocumentNotFound",
    "EmbeddingMismatch",
    "Hit",
    "HybridRagError",
    "HybridRetriever",
    "InputError",
    "InvalidFilter",
    "InvalidName",
    "LimitExceeded",
    "NotFound",
    "SearchParams",
    "SearchResult",
    "Settings",
    "get_settings",
    "rrf_fuse",
]


def __getattr__(name: str) -> object:
    # LangChain's retriever machinery costs a second or more to import; the CLI rarely needs it.
    if name == "HybridRetriever":
        from retriever.langchain import HybridRetriever

        return HybridRetriever
    raise AttributeError(f"module 'retriever' has no attribute {name!r}")
