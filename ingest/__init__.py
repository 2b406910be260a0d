"""Turning files and posted records into chunk records: no database, no model."""

from ._errors import IngestInputError
from ._hash import document_hash
from ._models import Chunk, ChunkingConfig, SkippedSource, SourceDocument
from ._records import iter_records
from ._split import sha256_hex, split_document
from ._walk import iter_documents

__all__ = [
    "Chunk",
    "ChunkingConfig",
    "IngestInputError",
    "SkippedSource",
    "SourceDocument",
    "document_hash",
    "iter_documents",
    "iter_records",
    "sha256_hex",
    "split_document",
]
