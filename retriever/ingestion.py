"""The ingest pipeline: documents → chunks → (skip unchanged) → embeddings → bulk writes.

Embedding batch i+1 overlaps with writing batch i (a single writer thread with its own
connection), so the database work hides behind the model.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import psycopg
from psycopg import sql
from tqdm import tqdm

from ingest import ChunkingConfig, SkippedSource, SourceDocument, document_hash, split_document
from retriever.collections import Collection, ensure_indexes, get_collection
from retriever.embeddings import EmbeddingModel
from retriever.writer import PreparedDocument, existing_hashes, write_documents

__all__ = ["IngestReport", "ingest_documents"]

# Above this many new chunks, index builds after the load beat incremental inserts.
BULK_THRESHOLD = 1000


@dataclass
class IngestReport:
    """What an ingest did, and where its time went."""

    new_documents: int = 0
    replaced_documents: int = 0
    unchanged_documents: int = 0
    new_chunks: int = 0
    unchanged_chunks: int = 0
    skipped: list[SkippedSource] = field(default_factory=list)
    embed_s: float = 0.0
    write_s: float = 0.0
    wall_s: float = 0.0

    def summary(self) -> str:
        """One line for people: '0 new, 5183 unchanged' style."""
        documents = self.new_documents + self.replaced_documents + self.unchanged_documents
        line = (
            f"{self.new_chunks} new, {self.unchanged_chunks} unchanged chunks from {documents} documents "
            f"({self.new_documents} new, {self.replaced_documents} changed, {self.unchanged_documents} unchanged)"
        )
        if self.skipped:
            line += f"; {len(self.skipped)} skipped"
        return line

    def timing(self) -> str:
        """Where the wall time went: the model vs everything else."""
        outside = max(self.wall_s - self.embed_s, 0.0)
        share = outside / self.wall_s if self.wall_s else 0.0
        return (
            f"wall {self.wall_s:.1f}s: embedding {self.embed_s:.1f}s, "
            f"outside the model {outside:.1f}s ({share:.0%}; database writes {self.write_s:.1f}s, overlapped)"
        )


def _batches(
    documents: Iterable[SourceDocument], chunking: ChunkingConfig, size: int
) -> Iterator[list[PreparedDocument]]:
    batch: list[PreparedDocument] = []
    chunks = 0
    for document in documents:
        pieces = split_document(document, chunking)
        if not pieces:
            continue
        batch.append(PreparedDocument(document.document_id, document_hash(document, chunking), pieces))
        chunks += len(pieces)
        if chunks >= size:
            yield batch
            batch, chunks = [], 0
    if batch:
        yield batch


def _drop_search_indexes(conn: psycopg.Connection, collection: Collection) -> None:
    with conn.cursor() as cur:
        for suffix in ("embedding_hnsw", "tsv_gin"):
            cur.execute(
                sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier("hybrid_rag", f"{collection.name}_{suffix}"))
            )


def ingest_documents(
    connect: Callable[[], psycopg.Connection],
    collection: Collection,
    model: EmbeddingModel,
    documents: Iterable[SourceDocument],
    chunking: ChunkingConfig,
    *,
    batch_chunks: int = 256,
    progress: bool = False,
) -> IngestReport:
    """Chunk, embed and write documents; unchanged ones (same hash) cost neither model nor writes."""
    report = IngestReport()
    started = time.perf_counter()
    with connect() as reader, connect() as writer, ThreadPoolExecutor(1, thread_name_prefix="writer") as pool:
        bulk = collection.chunk_count == 0
        if bulk:  # empty collection: build the search indexes once, after the load
            _drop_search_indexes(writer, collection)
        pending: Future[float] | None = None

        def write(batch: list[PreparedDocument], vectors: object) -> float:
            begin = time.perf_counter()
            write_documents(writer, collection, batch, vectors)  # type: ignore[arg-type]
            return time.perf_counter() - begin

        bar = tqdm(unit=" docs", disable=not progress, desc=collection.name)
        for batch in _batches(documents, chunking, batch_chunks):
            stored = existing_hashes(reader, collection, [d.document_id for d in batch])
            changed = [d for d in batch if stored.get(d.document_id) != d.hash]
            for document in batch:
                if document.document_id not in stored:
                    report.new_documents += 1
                elif stored[document.document_id] != document.hash:
                    report.replaced_documents += 1
                else:
                    report.unchanged_documents += 1
                    report.unchanged_chunks += len(document.chunks)
            bar.update(len(batch))
            if not changed:
                continue
            begin = time.perf_counter()
            vectors = model.embed_documents([c.content for d in changed for c in d.chunks])
            report.embed_s += time.perf_counter() - begin
            if pending is not None:
                report.write_s += pending.result()
            pending = pool.submit(write, changed, vectors)
            report.new_chunks += len(vectors)
            bar.set_postfix(new_chunks=report.new_chunks)
        if pending is not None:
            report.write_s += pending.result()
        bar.close()
        fresh = get_collection(writer, collection.name)
        built = ensure_indexes(writer, fresh)
        if built or report.new_chunks >= BULK_THRESHOLD:
            with writer.cursor() as cur:
                for suffix in ("", "postings", "terms", "documents"):
                    cur.execute(sql.SQL("ANALYZE {}").format(fresh.table(suffix)))
    report.wall_s = time.perf_counter() - started
    return report
