"""The records that flow through ingest: source documents, chunks, settings."""

from dataclasses import dataclass
from typing import Any

from ._errors import IngestInputError


@dataclass(frozen=True, slots=True)
class SourceDocument:
    """One logical document: a file, or one line of a JSONL corpus."""

    document_id: str
    text: str
    """Body text, without the title."""
    title: str | None
    source: str
    """Where the document came from: a file path, or the caller's label."""
    metadata: dict[str, Any]
    """User metadata (a JSONL record's ``metadata``), else empty."""


@dataclass(frozen=True, slots=True)
class Chunk:
    """One piece of a document: the unit that is embedded, indexed and returned."""

    id: str
    """``f"{document_id}:{index}"``, so re-ingesting replaces rather than duplicates."""
    document_id: str
    index: int
    content: str
    """Title (when the document has one), a newline, then the chunk text."""
    metadata: dict[str, Any]
    content_hash: str
    """sha256 hex of ``content``."""


@dataclass(frozen=True, slots=True)
class ChunkingConfig:
    """How documents are cut into chunks; lengths are in characters."""

    chunk_size: int = 1000
    """About 200-250 tokens of English: fits a 256-token model (all-MiniLM-L6-v2)."""
    chunk_overlap: int = 150
    """Characters shared by neighbours, so a sentence cut at a border is still found."""

    def __post_init__(self) -> None:
        if not _is_int(self.chunk_size) or self.chunk_size <= 0:
            raise IngestInputError(f"chunk_size must be a positive integer, got {self.chunk_size!r}")
        if not _is_int(self.chunk_overlap) or not 0 <= self.chunk_overlap < self.chunk_size:
            raise IngestInputError(
                "chunk_overlap must be an integer from 0 to chunk_size - 1 "
                f"({self.chunk_size - 1}), got {self.chunk_overlap!r}"
            )


@dataclass(frozen=True, slots=True)
class SkippedSource:
    """A file or line that was not ingested, and why."""

    path: str
    reason: str


def _is_int(value: object) -> bool:
    # bool is an int subclass, but chunk_size=True is a mistake, not 1
    return isinstance(value, int) and not isinstance(value, bool)
