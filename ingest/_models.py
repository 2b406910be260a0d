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
    page_starts: tuple[int, ...] | None = None
    """For paged sources (PDF): the offset in ``text`` where each page begins, page 1
    first, one entry per page (a page without text starts where the next one does);
    None for sources without pages. Chunks then carry the page they start on."""


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


MAX_CHUNK_SIZE = 100_000
"""The largest ``chunk_size``, in characters.

A chunk's content (title prefix, at most ``MAX_TITLE_PREFIX`` + 1 characters, plus the
chunk text) becomes one ``tsvector``, which PostgreSQL caps at 1 MB (1,048,575 bytes) of
lexemes and positions. A word costs its lexeme (up to 4 bytes a character in UTF-8), a
4-byte entry and 2 bytes a position: the worst text, one 4-byte character between
spaces, takes 6 bytes a character (measured with ``pg_column_size(to_tsvector(...))``:
600 KB for 100,000 characters; hyphenated compounds, which add lexemes, about 4). So
100,301 characters stay under the limit with room to spare, and are still far more
than any embedding model reads.
"""
MAX_TITLE_PREFIX = 300
"""At most this many characters of a title head a chunk's content (cut at a word, with "…").

The prefix makes every chunk findable by its title, but it is repeated in every chunk
and comes first in the embedding model's window: 300 characters (about 60-75 tokens)
holds any ordinary title, and a runaway one (a whole text pasted as the title) can
neither crowd the chunk's own text out of the 256-token window nor push the content
past what a ``tsvector`` holds. The full title stays in the chunk's ``title`` metadata.
"""


@dataclass(frozen=True, slots=True)
class ChunkingConfig:
    """How documents are cut into chunks; lengths are in characters.

    Raises IngestInputError when ``chunk_size`` is not an integer from 1 to
    ``MAX_CHUNK_SIZE`` or ``chunk_overlap`` not one from 0 to ``chunk_size - 1``.
    """

    chunk_size: int = 1000
    """About 200-250 tokens of English: fits a 256-token model (all-MiniLM-L6-v2)."""
    chunk_overlap: int = 150
    """Characters shared by neighbours, so a sentence cut at a border is still found."""

    def __post_init__(self) -> None:
        if not _is_int(self.chunk_size) or self.chunk_size <= 0:
            raise IngestInputError(f"chunk_size must be a positive integer, got {self.chunk_size!r}")
        if self.chunk_size > MAX_CHUNK_SIZE:
            raise IngestInputError(
                f"chunk_size must be at most {MAX_CHUNK_SIZE:,} characters (what one chunk's full-text "
                f"index entry can hold), got {self.chunk_size:,}"
            )
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
