"""hybrid-rag's retriever: hybrid (HNSW + BM25, fused) search on PostgreSQL in one statement.

The public surface: `Engine` (every operation: ingest, search, list, get and delete
documents, drop, maintain, backup and restore, topics), `HybridRetriever` and
`HybridVectorStore` (LangChain), `Settings`, `EmbeddingModel`, `VectorIndex` (a collection's
vector index), `SearchParams`, `SearchResult`, `Hit`, `IngestReport`, the stored documents' `DocumentPage`,
`DocumentInfo`, `StoredDocument` and `StoredChunk`, `rrf_fuse`, `validate_name`, and the
error hierarchy. Everything else is internal.
"""

from retriever.embeddings import EmbeddingModel
from retriever.engine import Engine
from retriever.errors import (
    CollectionIncomplete,
    CollectionNotFound,
    ConfigurationError,
    DatabaseDiskFull,
    DatabaseFault,
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
from retriever.results import Hit, SearchParams, SearchResult
from retriever.settings import Settings, get_settings
from retriever.store.documents import DocumentInfo, DocumentPage, StoredChunk, StoredDocument
from retriever.store.pipeline import IngestReport
from retriever.store.tables import validate_name
from retriever.store.vector_index import VectorIndex

__all__ = [
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


def __getattr__(name: str) -> object:
    # LangChain's retriever and vector store machinery costs a second or more to import; the CLI never needs it.
    if name == "HybridRetriever":
        from retriever.langchain import HybridRetriever

        return HybridRetriever
    if name == "HybridVectorStore":
        from retriever.vectorstore import HybridVectorStore

        return HybridVectorStore
    raise AttributeError(f"module 'retriever' has no attribute {name!r}")
