"""The ingest pipeline: documents → chunks → (skip unchanged) → embeddings → bulk writes.

Embedding the next batch overlaps with writing the previous ones (`BatchWriter` writes
in background threads on their own connections), so the database hides behind the model.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from ingest import ChunkingConfig, SkippedSource, SourceDocument, document_hash, document_problem, split_document
from retriever.embeddings import EmbeddingModel
from retriever.store.batches import BatchWriter, Connect
from retriever.store.collections import check_embeddings
from retriever.store.progress import Progress
from retriever.store.tables import Collection
from retriever.store.writer import PreparedDocument, existing_hashes

__all__ = ["IngestReport", "ingest_documents"]


@dataclass
class IngestReport:
    """What an ingest did, and where its time went."""

    new_documents: int = 0
    replaced_documents: int = 0
    unchanged_documents: int = 0
    new_chunks: int = 0
    unchanged_chunks: int = 0
    skipped: list[SkippedSource] = field(default_factory=list)
    pruned_documents: int | None = None
    """Documents deleted because their files are gone (`ingest --prune`); None without pruning."""
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
        if self.pruned_documents is not None:
            line += f"; {self.pruned_documents} pruned"
        return line

    def timing(self) -> str:
        """Where the wall time went: the model vs everything else."""
        outside = max(self.wall_s - self.embed_s, 0.0)
        share = outside / self.wall_s if self.wall_s else 0.0
        return (
            f"wall {self.wall_s:.1f}s: embedding {self.embed_s:.1f}s, "
            f"outside the model {outside:.1f}s ({share:.0%}; database writes {self.write_s:.1f}s, overlapped)"
        )


OnSkip = Callable[[SkippedSource], None]


def _batches(
    documents: Iterable[SourceDocument], chunking: ChunkingConfig, size: int, skip: OnSkip
) -> Iterator[list[PreparedDocument]]:
    batch: list[PreparedDocument] = []
    chunks = 0
    for document in documents:
        # what PostgreSQL cannot hold would fail its whole batch: skip the one document instead
        if problem := document_problem(document.document_id, document.title, document.text, document.metadata):
            skip(SkippedSource(document.source or document.document_id, f"{document.document_id}: {problem}"))
            continue
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


def ingest_documents(
    connect: Connect,
    collection: Collection,
    model: EmbeddingModel,
    documents: Iterable[SourceDocument],
    chunking: ChunkingConfig,
    *,
    batch_chunks: int = 256,
    progress: bool = False,
    total: int | None = None,
    on_skip: OnSkip | None = None,
) -> IngestReport:
    """Chunk, embed and write documents; unchanged ones (same hash) cost neither model nor writes.

    A document that cannot be stored (see `ingest.document_problem`) or that the database
    refuses (a data exception, a limit) is skipped: reported in `IngestReport.skipped` and
    to `on_skip`, never failing the documents beside it. `progress` shows documents done
    against `total` (when known; see `Progress`).
    """
    report = IngestReport()
    started = time.perf_counter()

    def skip(item: SkippedSource) -> None:
        report.skipped.append(item)
        if on_skip is not None:
            on_skip(item)

    shown = Progress(collection.name, total) if progress else None
    kinds: dict[str, str] = {}  # document id -> "new" or "replaced", for documents that are written
    with connect() as reader, BatchWriter(connect, collection) as writer:
        try:
            for batch in _batches(documents, chunking, batch_chunks, skip):
                stored = existing_hashes(reader, collection, [d.document_id for d in batch])
                changed = [d for d in batch if stored.get(d.document_id) != d.hash]
                for document in batch:
                    if document.document_id not in stored:
                        report.new_documents += 1
                        kinds[document.document_id] = "new"
                    elif stored[document.document_id] != document.hash:
                        report.replaced_documents += 1
                        kinds[document.document_id] = "replaced"
                    else:
                        report.unchanged_documents += 1
                        report.unchanged_chunks += len(document.chunks)
                new_chunks = 0
                if changed:
                    begin = time.perf_counter()
                    vectors = model.embed_documents([c.content for d in changed for c in d.chunks])
                    report.embed_s += time.perf_counter() - begin
                    check_embeddings(collection, model.name, vectors.shape[1])  # a model may change size, not name
                    writer.submit(changed, vectors, replacing=any(d.document_id in stored for d in changed))
                    new_chunks = len(vectors)
                    report.new_chunks += new_chunks
                if shown is not None:
                    shown.advance(len(batch), new_chunks)
        except BaseException:
            # Whole batches are already committed: still count their terms and build the
            # indexes, so a failed run leaves a searchable collection (a rerun adds the rest).
            with contextlib.suppress(Exception):
                writer.finish()
            raise
        finally:
            if shown is not None:
                shown.close()
        writer.finish()
        report.write_s = writer.write_s
    for document, reason in writer.refused:
        report.new_chunks -= len(document.chunks)
        if kinds.get(document.document_id) == "new":
            report.new_documents -= 1
        else:
            report.replaced_documents -= 1
        skip(SkippedSource(document.document_id, f"refused by the database: {reason}"))
    report.wall_s = time.perf_counter() - started
    return report
