"""The collections `bench scale` measures: built from the same chunks and vectors, one per size
and index variant, kept and reused while their vector index is still built as asked."""

from __future__ import annotations

import json
import math
import sys
import time
from typing import Any

import click
import numpy as np
import psycopg
from psycopg import sql
from tqdm import tqdm

from bench._data import Corpus
from bench._stores import BATCH_CHUNKS, checkpoint, drop_ours
from bench._synthetic import ExactNeighbours, SyntheticCorpus, synthetic_documents
from retriever import CollectionNotFound, Engine, Settings
from retriever.store.batches import BatchWriter
from retriever.store.collections import create_collection, ensure_indexes, get_collection, missing_indexes
from retriever.store.records import batches
from retriever.store.tables import SCHEMA
from retriever.store.vector_index import VectorIndex

__all__ = [
    "ANCHOR",
    "INDEX_VARIANTS",
    "Source",
    "index_variants",
    "prepare_collection",
    "vector_index_of",
    "vector_index_seconds",
]

Source = tuple[Corpus, np.ndarray, SyntheticCorpus, str]  # the real chunks, their vectors, the generator, model name

ANCHOR = "default"  # today's index, against which the variants are compared
INDEX_VARIANTS = (ANCHOR, "halfvec", "hnsw-m32", "ivfflat")


def index_variants(size: int) -> dict[str, VectorIndex]:
    """Variant name → its vector index, for a collection of `size` chunks.

    IVFFlat follows pgvector's advice, lists rows / 1000 up to 1M rows and √rows beyond; its
    searches read the default probes (`retriever.store.vector_index.default_probes`: √lists here).
    """
    lists = max(1, size // 1000 if size <= 1_000_000 else round(math.sqrt(size)))
    return {
        ANCHOR: VectorIndex(),
        "halfvec": VectorIndex(storage="halfvec"),
        "hnsw-m32": VectorIndex(m=32, ef_construction=128),
        "ivfflat": VectorIndex(kind="ivfflat", lists=lists),
    }


def _build(
    settings: Settings,
    name: str,
    size: int,
    loaded: Source,
    index: VectorIndex,
    nearest: ExactNeighbours | None,
) -> dict[str, float]:
    """Bulk-load the real chunks then the synthetic ones (`loaded`: corpus, its vectors, generator,
    model name), folding every vector into `nearest` if given; returns seconds per phase."""
    corpus, vectors, synthetic, model = loaded
    extra = size - len(corpus.texts)
    if nearest is not None:
        nearest.add(vectors, 0)
    started = time.perf_counter()
    generate_s = 0.0
    with Engine(settings).connection() as conn:
        collection = create_collection(conn, name, embedding_model=model, dimensions=int(vectors.shape[1]), index=index)
    with BatchWriter(Engine(settings).connection, collection) as writer:
        offset = 0
        for batch in batches(corpus.documents, BATCH_CHUNKS):
            count = sum(len(document.chunks) for document in batch)
            writer.submit(batch, vectors[offset : offset + count], replacing=False)
            offset += count
        with tqdm(total=extra, unit=" chunks", desc=f"loading {name}", disable=not sys.stderr.isatty()) as bar:
            generated = synthetic.batches(extra)
            while True:
                tick = time.perf_counter()
                item = next(generated, None)
                generate_s += time.perf_counter() - tick
                if item is None:
                    break
                texts, batch_vectors = item
                if nearest is not None:
                    nearest.add(batch_vectors, offset)
                writer.submit(synthetic_documents(texts, offset), batch_vectors, replacing=False)
                offset += len(texts)
                bar.update(len(texts))
        load_s = time.perf_counter() - started
        phases = writer.finish()
        if writer.refused:  # a collection short of chunks would compare nothing
            document, reason = writer.refused[0]
            raise click.ClickException(
                f"{name}: the database refused {len(writer.refused)} documents, e.g. {document.document_id}: {reason}"
            )
    total = time.perf_counter() - started
    return {
        "total_s": total,  # wall, synthesis included (the writes run beside it, on two connections)
        "generate_s": generate_s,
        "load_s": load_s,  # until the last batch was handed over
        "finish_s": total - load_s,  # the last writes, postings, HNSW and GIN builds, ANALYZE
        "indexes_s": phases.get("indexes", 0.0),
        "analyze_s": phases.get("analyze", 0.0),
    }


_VECTOR_INDEX = """
SELECT c.relname, am.amname, opc.opcname, coalesce(c.reloptions, '{}'), pg_relation_size(c.oid)
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam
JOIN pg_opclass opc ON opc.oid = i.indclass[0]
WHERE i.indrelid = to_regclass(format('%%I.%%I', %(schema)s::text, %(table)s::text))
  AND am.amname IN ('hnsw', 'ivfflat')
"""


def vector_index_of(conn: psycopg.Connection, name: str) -> dict[str, Any] | None:
    """The collection's vector index as the catalogue has it: name, method, operator class,
    options (sorted `key=value`) and bytes; None when it has none."""
    row = conn.execute(_VECTOR_INDEX, {"schema": SCHEMA, "table": name}).fetchone()
    if row is None:
        return None
    index_name, method, opclass, options, size = row
    return {"name": index_name, "method": method, "opclass": opclass, "options": sorted(options), "bytes": size}


def _expected(index: VectorIndex) -> tuple[str, str, list[str]]:
    """(method, operator class, options) a collection built with `index` must have in the catalogue."""
    if index.kind == "ivfflat":
        options = [f"lists={index.lists}"]
    else:
        options = [f"m={index.m}", f"ef_construction={index.ef_construction}"]
    return index.kind, f"{index.storage}_cosine_ops", sorted(options)


def _ready(settings: Settings, name: str, size: int, index: VectorIndex) -> bool:
    """Whether the collection holds `size` chunks and every index, its vector index built as `index` says."""
    try:
        with Engine(settings).connection() as conn:
            collection = get_collection(conn, name)
            if not collection.vector_index.same_as(index) or collection.chunk_count != size:
                return False
            if missing_indexes(conn, collection):
                return False
            found = vector_index_of(conn, name)
    except CollectionNotFound:
        return False
    return found is not None and (found["method"], found["opclass"], found["options"]) == _expected(index)


def _time_vector_index(settings: Settings, name: str) -> float:
    """Seconds to rebuild the collection's vector index alone (dropped, then built from its settings)."""
    with Engine(settings).connection() as conn:
        found = vector_index_of(conn, name)
        if found is not None:
            conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(SCHEMA, found["name"])))
        checkpoint(settings)  # the drop's and earlier loads' dirty pages are not the build's to write
        started = time.perf_counter()
        ensure_indexes(conn, get_collection(conn, name))
        return time.perf_counter() - started


def prepare_collection(
    settings: Settings,
    name: str,
    size: int,
    loaded: Source,
    index: VectorIndex,
    fresh: bool,
    nearest: ExactNeighbours | None = None,
) -> tuple[dict[str, Any], bool]:
    """(build figures, whether built now) of the collection: built unless a ready one is kept;
    `nearest` is folded in only when it is built."""
    sidecar = settings.data_home / "cache" / f"{name}.json"
    if not fresh and _ready(settings, name, size, index) and sidecar.is_file():
        click.echo(f"reusing {name} (built earlier; --fresh rebuilds)", err=True)
        return json.loads(sidecar.read_text(encoding="utf-8")), False
    drop_ours(settings, name)
    for stale in sidecar.parent.glob(f"{name}.nearest-*.json"):  # other splits', of the old vectors
        stale.unlink()
    real = len(loaded[0].texts)
    click.echo(f"building {name}: {real} real + {size - real} synthetic chunks", err=True)
    build = _build(settings, name, size, loaded, index, nearest)
    sidecar.parent.mkdir(parents=True, exist_ok=True)
    sidecar.write_text(json.dumps(build), encoding="utf-8")
    return build, True


def vector_index_seconds(settings: Settings, name: str, build: dict[str, Any]) -> float:
    """The collection's vector index build time alone, timed once and kept in its sidecar."""
    if "vector_index_s" not in build:
        build["vector_index_s"] = _time_vector_index(settings, name)
        (settings.data_home / "cache" / f"{name}.json").write_text(json.dumps(build), encoding="utf-8")
    return build["vector_index_s"]
