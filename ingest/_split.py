"""Cutting documents into chunks that each stand on their own."""

import hashlib
from functools import lru_cache

from langchain_text_splitters import RecursiveCharacterTextSplitter

from ._models import Chunk, ChunkingConfig, SourceDocument


def split_document(doc: SourceDocument, config: ChunkingConfig) -> list[Chunk]:
    """Cut a document into overlapping chunks, each prefixed with the document title.

    The prefix (``f"{title}\\n"``) lets every chunk be matched by its title, by
    the embedding and the full-text index alike; ``start_index`` is the chunk's
    offset in ``doc.text``, not counting the prefix. Chunk metadata is the
    document's metadata plus ``source``, ``title`` (null when the document has
    none), ``chunk_index`` and ``start_index``; these four win over user keys of
    the same name. A document with only whitespace has no chunks.
    """
    if not doc.text.strip():
        return []
    prefix = f"{doc.title}\n" if doc.title else ""
    pieces = _splitter(config).create_documents([doc.text])
    chunks: list[Chunk] = []
    for index, piece in enumerate(pieces):
        content = prefix + piece.page_content
        metadata = {
            **doc.metadata,
            "source": doc.source,
            "title": doc.title,
            "chunk_index": index,
            "start_index": piece.metadata["start_index"],
        }
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
