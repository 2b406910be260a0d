"""Turning files and posted records into chunk records: no database, no model."""

from ._clean import clean_text, document_problem, text_problem, value_problem
from ._errors import IngestInputError
from ._hash import document_hash
from ._models import Chunk, ChunkingConfig, SkippedSource, SourceDocument
from ._records import iter_records
from ._split import sha256_hex, split_document
from ._walk import count_documents, file_document_id, iter_documents

__all__ = [
    "Chunk",
    "ChunkingConfig",
    "IngestInputError",
    "SkippedSource",
    "SourceDocument",
    "clean_text",
    "count_documents",
    "document_hash",
    "document_problem",
    "file_document_id",
    "iter_documents",
    "iter_records",
    "sha256_hex",
    "split_document",
    "text_problem",
    "value_problem",
]
