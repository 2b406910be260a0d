"""Fingerprints of documents, so that unchanged documents are not embedded again."""

import json

from ._errors import IngestInputError
from ._models import ChunkingConfig, SourceDocument
from ._split import sha256_hex

# Bump when split_document changes its output, so every stored document is re-chunked.
_CHUNKING_SCHEME = 2  # 2: HTML main text, PDF pages, titles capped in chunk content


def document_hash(doc: SourceDocument, config: ChunkingConfig) -> str:
    """sha256 of all that shapes a document's stored chunks: same hash, same chunks."""
    fields = {
        "scheme": _CHUNKING_SCHEME,
        "text": doc.text,
        "title": doc.title,
        "source": doc.source,
        "metadata": doc.metadata,
        "page_starts": doc.page_starts,
        "chunk_size": config.chunk_size,
        "chunk_overlap": config.chunk_overlap,
    }
    try:
        canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError) as error:
        raise IngestInputError(f"metadata of {doc.document_id!r} is not JSON: {error}") from None
    return sha256_hex(canonical)
