"""Cutting documents into chunks that each stand on their own."""

import hashlib
from bisect import bisect_right
from functools import lru_cache

from langchain_text_splitters import RecursiveCharacterTextSplitter

from ._models import MAX_TITLE_PREFIX, Chunk, ChunkingConfig, SourceDocument

__all__ = ["sha256_hex", "split_document", "title_prefix"]


def split_document(doc: SourceDocument, config: ChunkingConfig) -> list[Chunk]:
    """Cut a document into overlapping chunks, each prefixed with the document title.

    The prefix (``title_prefix(doc.title)``: the title, cut to ``MAX_TITLE_PREFIX``
    characters, and a newline) lets every chunk be matched by its title, by the
    embedding and the full-text index alike; ``start_index`` is the chunk's offset
    in ``doc.text``, not counting the prefix. Chunk metadata is the document's
    metadata plus ``source``, ``title`` (the whole title; null when the document has
    none), ``chunk_index`` and ``start_index``, and for a paged document ``page``
    (1-based, the page the chunk starts on); these win over user keys of the same
    name. A document with only whitespace has no chunks.
    """
    if not doc.text.strip():
        return []
    prefix = title_prefix(doc.title)
    pieces = _splitter(config).create_documents([doc.text])
    chunks: list[Chunk] = []
    for index, piece in enumerate(pieces):
        content = prefix + piece.page_content
        start = piece.metadata["start_index"]
        metadata = {
            **doc.metadata,
            "source": doc.source,
            "title": doc.title,
            "chunk_index": index,
            "start_index": start,
        }
        if doc.page_starts is not None:
            metadata["page"] = max(1, bisect_right(doc.page_starts, start))
        chunks.append(
            Chunk(
                id=f"{doc.document_id}:{index}",
                document_id=doc.document_id,
                index=index,
                content=content,
                metadata=metadata,
                content_hash=sha256_hex(content),
            )
        )
    return chunks


def title_prefix(title: str | None) -> str:
    """What a title puts at the head of each chunk: ``""``, or at most ``MAX_TITLE_PREFIX`` characters and a newline."""
    if not title:
        return ""
    if len(title) > MAX_TITLE_PREFIX:
        cut = title[: MAX_TITLE_PREFIX - 1]
        # end at a word when there is one to end at, and show that the title goes on
        title = (cut.rsplit(" ", 1)[0] if " " in cut else cut).rstrip() + "…"
    return f"{title}\n"


def sha256_hex(text: str) -> str:
    """sha256 hex of text; a lone surrogate (valid in JSON) must not crash hashing."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@lru_cache(maxsize=16)
def _splitter(config: ChunkingConfig) -> RecursiveCharacterTextSplitter:
    # add_start_index finds each chunk in the text after the previous one, so
    # repeated passages still get their own offsets
    return RecursiveCharacterTextSplitter(
        chunk_size=config.chunk_size,
        chunk_overlap=config.chunk_overlap,
        add_start_index=True,
    )
