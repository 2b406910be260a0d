"""Records written whole, as a LangChain vector store writes them: id, text, metadata → one document.

A record becomes one stored document whose id is the record's. Unchunked (the default)
it is ONE chunk: its content is the text exactly, its metadata the record's exactly, its
chunk id `f"{id}:0"` (the rule every chunk id follows, `ingest.Chunk`). With a
`ChunkingConfig` it is split as ingest splits a document (no title; `source` is the
record's `source` metadata, else its id), and its chunks carry `chunk_index` and
`start_index`. Its hash covers text, metadata and chunking: writing an unchanged record
again embeds and writes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from psycopg import sql

from ingest import Chunk, ChunkingConfig, SourceDocument, document_problem, sha256_hex, split_document
from retriever.errors import InputError
from retriever.store.citus import NAMED, named
from retriever.store.tables import Collection
from retriever.store.writer import PreparedDocument

__all__ = ["batches", "changed", "chunks_of", "prepare_records"]


def _hash(text: str, metadata: Mapping[str, Any], chunking: ChunkingConfig | None) -> str:
    shape = None if chunking is None else [chunking.chunk_size, chunking.chunk_overlap]
    fields = {"record": 1, "text": text, "metadata": metadata, "chunking": shape}
    return sha256_hex(json.dumps(fields, sort_keys=True, separators=(",", ":")))


def _chunks(document_id: str, text: str, metadata: dict[str, Any], chunking: ChunkingConfig | None) -> list[Chunk]:
    if chunking is None:
        return [Chunk(f"{document_id}:0", document_id, 0, text, metadata, sha256_hex(text))]
    source = metadata.get("source")
    whole = SourceDocument(document_id, text, None, source if isinstance(source, str) else document_id, metadata)
    return split_document(whole, chunking) or _chunks(document_id, text, metadata, None)  # blank: kept whole


def prepare_records(
    ids: Sequence[str], texts: Sequence[str], metadatas: Sequence[Mapping[str, Any]], chunking: ChunkingConfig | None
) -> list[PreparedDocument]:
    """The records as documents ready to embed and write, in the given order (a repeated id: the last wins).

    Raises `InputError` naming the first record PostgreSQL cannot hold (a NUL character, an
    unpaired surrogate, metadata that is not JSON) or one whose id is not a non-empty string,
    before anything is written.
    """
    if not len(ids) == len(texts) == len(metadatas):
        raise InputError(f"{len(ids)} ids, {len(texts)} texts and {len(metadatas)} metadatas: give one each")
    prepared: dict[str, PreparedDocument] = {}
    for document_id, text, metadata in zip(ids, texts, metadatas, strict=True):
        if not isinstance(document_id, str) or not document_id:
            raise InputError(f"a document id must be a non-empty string, got {document_id!r}")
        if not isinstance(text, str):
            raise InputError(f"document {document_id!r}: the text must be a string, got {type(text).__name__}")
        if problem := document_problem(document_id, None, text, dict(metadata or {})):
            raise InputError(f"document {document_id!r} cannot be stored: {problem}")
        metadata = dict(metadata or {})
        chunks = _chunks(document_id, text, metadata, chunking)
        prepared.pop(document_id, None)
        prepared[document_id] = PreparedDocument(document_id, _hash(text, metadata, chunking), chunks)
    return list(prepared.values())


def changed(documents: Sequence[PreparedDocument], stored: Mapping[str, str]) -> list[PreparedDocument]:
    """The documents whose stored hash (`stored`: id → hash) differs: those to embed and write."""
    return [document for document in documents if stored.get(document.document_id) != document.hash]


def batches(documents: Sequence[PreparedDocument], chunks: int) -> Iterator[list[PreparedDocument]]:
    """Consecutive runs of whole documents of about `chunks` chunks each: one transaction each."""
    batch: list[PreparedDocument] = []
    size = 0
    for document in documents:
        batch.append(document)
        size += len(document.chunks)
        if size >= chunks:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


_CHUNKS_OF = f"""
SELECT document_id, content, metadata FROM {{chunks}}
WHERE {NAMED}
ORDER BY document_id, chunk_index
"""


def chunks_of(collection: Collection, document_ids: Sequence[str]) -> tuple[sql.Composed, dict[str, Any]]:
    """The statement that reads these documents' chunks: rows of (document id, content, metadata), in order."""
    return sql.SQL(_CHUNKS_OF).format(chunks=collection.table()), named(collection.anchors, document_ids)
