"""The two stores under test, loaded from the same chunks and precomputed embeddings.

- ours: `create_collection` → `write_documents` per batch (as `ingest_documents` batches)
  → `ensure_indexes` (HNSW + GIN after the load) → ANALYZE;
- langchain-postgres `PGVectorStore` (v2): `init_vectorstore_table` with a tsvector column,
  `aadd_embeddings`, then its GIN (hybrid search) and HNSW indexes.

Both end with the same rows, the same `to_tsvector('english', content)`, a GIN index on it
and an HNSW index (cosine, m 16, ef_construction 64); ours also holds BM25 postings.
Changed documents are written again into the loaded stores the way each replaces them:
ours by ingest's normal (not bulk) path, PGVectorStore by `adelete` then `aadd_embeddings`.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import psycopg
from langchain_postgres import Column, PGEngine, PGVectorStore
from langchain_postgres.v2.hybrid_search_config import HybridSearchConfig, reciprocal_rank_fusion
from langchain_postgres.v2.indexes import HNSWIndex, HNSWQueryOptions
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bench._data import Corpus, PrecomputedEmbeddings
from retriever import CollectionNotFound, Engine, Settings
from retriever.store.batches import BatchWriter
from retriever.store.collections import create_collection, drop_collection, get_collection
from retriever.store.records import batches
from retriever.store.tables import Collection
from retriever.store.vector_index import VectorIndex
from retriever.store.writer import PreparedDocument, existing_hashes

__all__ = [
    "LC_SCHEMA",
    "checkpoint",
    "drop_ours",
    "drop_pgvectorstore",
    "final_state",
    "hybrid_config",
    "load_ours",
    "load_pgvectorstore",
    "open_pgvectorstore",
    "replace_ours",
    "replace_pgvectorstore",
    "sqlalchemy_url",
]

LC_SCHEMA = "public"
BATCH_CHUNKS = 256  # ingest_documents' default batch
HNSW_M, HNSW_EF_CONSTRUCTION = 16, 64


def load_ours(settings: Settings, name: str, corpus: Corpus, vectors: np.ndarray, model_name: str) -> dict[str, float]:
    """Our bulk path into a new collection (the BatchWriter that ingest uses); returns seconds per phase."""
    started = time.perf_counter()
    with Engine(settings).connection() as reader:
        index = VectorIndex(m=HNSW_M, ef_construction=HNSW_EF_CONSTRUCTION)  # as PGVectorStore's below
        dimensions = int(vectors.shape[1])
        collection = create_collection(reader, name, embedding_model=model_name, dimensions=dimensions, index=index)
        phases = _write(settings, reader, collection, corpus.documents, vectors)
    phases["total"] = time.perf_counter() - started
    return phases


def replace_ours(settings: Settings, name: str, documents: list[PreparedDocument], vectors: np.ndarray) -> float:
    """Write `documents` (with their chunks' `vectors`) again into our loaded collection as ingest replaces
    changed ones: per batch, one transaction takes their chunks and postings out and writes the new ones;
    then ANALYZE as ingest runs it. Returns seconds."""
    with Engine(settings).connection() as reader:
        collection = get_collection(reader, name)
        started = time.perf_counter()
        _write(settings, reader, collection, documents, vectors)
    return time.perf_counter() - started


def _write(
    settings: Settings,
    reader: psycopg.Connection,
    collection: Collection,
    documents: list[PreparedDocument],
    vectors: np.ndarray,
) -> dict[str, float]:
    """`documents` through the BatchWriter in ingest's batches, each replacing what is stored of it, as ingest
    does; returns `BatchWriter.finish`'s seconds per phase."""
    with BatchWriter(Engine(settings).connection, collection) as writer:
        offset = 0
        for batch in batches(documents, BATCH_CHUNKS):
            stored = existing_hashes(reader, collection, [document.document_id for document in batch])
            count = sum(len(document.chunks) for document in batch)
            writer.submit(batch, vectors[offset : offset + count], replacing=bool(stored))
            offset += count
        return writer.finish()


def drop_ours(settings: Settings, name: str) -> None:
    """Drop one of our collections if it exists."""
    with Engine(settings).connection() as conn:
        try:
            drop_collection(conn, name)
        except CollectionNotFound:
            pass


def sqlalchemy_url(dsn: str) -> URL:
    """A SQLAlchemy `postgresql+psycopg` URL for a libpq DSN (unix sockets included)."""
    parts = conninfo_to_dict(dsn)
    host = str(parts.get("host") or "") or None
    socket = host is not None and host.startswith("/")
    return URL.create(
        "postgresql+psycopg",
        username=str(parts.get("user") or "") or None,
        password=str(parts.get("password") or "") or None,
        host=None if socket else host,
        port=int(parts["port"]) if parts.get("port") and not socket else None,
        database=str(parts.get("dbname") or "") or None,
        query={"host": host, **({"port": str(parts["port"])} if parts.get("port") else {})} if socket else {},
    )


def hybrid_config(table: str) -> HybridSearchConfig:
    """langchain-postgres hybrid search at its best measured setting: RRF over 100 + 100 candidates.

    The GIN index gets a per-table name: the default `langchain_tsv_index` collides on a second table.
    """
    return HybridSearchConfig(
        tsv_column="content_tsv",
        tsv_lang="pg_catalog.english",
        fusion_function=reciprocal_rank_fusion,  # type: ignore[arg-type]
        fusion_function_parameters={"rrf_k": 60},
        primary_top_k=100,
        secondary_top_k=100,
        index_name=f"{table}_tsv_gin",
    )


async def open_pgvectorstore(
    engine: AsyncEngine,
    table: str,
    embeddings: PrecomputedEmbeddings,
    *,
    ef_search: int | None = None,
    config: HybridSearchConfig | None = None,
) -> PGVectorStore:
    """A `PGVectorStore` over an existing table, hybrid search on, `hnsw.ef_search` set per query."""
    return await PGVectorStore.create(
        PGEngine.from_engine(engine),
        embedding_service=embeddings,
        table_name=table,
        schema_name=LC_SCHEMA,
        hybrid_search_config=config or hybrid_config(table),
        index_query_options=HNSWQueryOptions(ef_search=ef_search) if ef_search else None,
    )


async def load_pgvectorstore(
    dsn: str, table: str, corpus: Corpus, vectors: np.ndarray, embeddings: PrecomputedEmbeddings
) -> dict[str, float]:
    """langchain-postgres' path into a new table; returns seconds per phase."""
    chunks = corpus.chunks
    texts = [chunk.content for chunk in chunks]
    metadatas = [dict(chunk.metadata) for chunk in chunks]
    ids = [chunk.id for chunk in chunks]
    rows = vectors.tolist()  # input preparation, outside the timing
    engine = create_async_engine(sqlalchemy_url(dsn))
    phases: dict[str, float] = {}
    try:
        started = time.perf_counter()
        pg = PGEngine.from_engine(engine)
        await pg.ainit_vectorstore_table(
            table,
            int(vectors.shape[1]),
            schema_name=LC_SCHEMA,
            id_column=Column("langchain_id", "TEXT", nullable=False),
            hybrid_search_config=hybrid_config(table),
        )
        store = await open_pgvectorstore(engine, table, embeddings)
        await store.aadd_embeddings(texts, rows, metadatas=metadatas, ids=ids)
        phases["insert"] = time.perf_counter() - started
        mark = time.perf_counter()
        await store.aapply_hybrid_search_index()
        phases["gin"] = time.perf_counter() - mark
        mark = time.perf_counter()
        await store.aapply_vector_index(HNSWIndex(name=f"{table}_hnsw", m=HNSW_M, ef_construction=HNSW_EF_CONSTRUCTION))
        phases["hnsw"] = time.perf_counter() - mark
        phases["total"] = time.perf_counter() - started
    finally:
        await engine.dispose()
    return phases


async def replace_pgvectorstore(
    dsn: str, table: str, documents: list[PreparedDocument], vectors: np.ndarray, embeddings: PrecomputedEmbeddings
) -> float:
    """The same documents written again into the loaded PGVectorStore table: their chunks deleted by id, then
    added. Returns seconds."""
    chunks = [chunk for document in documents for chunk in document.chunks]
    ids, texts = [chunk.id for chunk in chunks], [chunk.content for chunk in chunks]
    metadatas, rows = [dict(chunk.metadata) for chunk in chunks], vectors.tolist()
    engine = create_async_engine(sqlalchemy_url(dsn))
    try:
        store = await open_pgvectorstore(engine, table, embeddings)
        started = time.perf_counter()
        await store.adelete(ids)
        await store.aadd_embeddings(texts, rows, metadatas=metadatas, ids=ids)
        return time.perf_counter() - started
    finally:
        await engine.dispose()


def drop_pgvectorstore(settings: Settings, table: str) -> None:
    """Drop a PGVectorStore table (its indexes go with it)."""
    with Engine(settings).connection() as conn:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(LC_SCHEMA, table)))


def checkpoint(settings: Settings) -> None:
    """Flush earlier runs' dirty pages so that no timed load pays for another's writes."""
    with Engine(settings).connection() as conn:
        try:
            conn.execute("CHECKPOINT")
        except psycopg.Error:
            pass  # not allowed on managed servers: the runs are then a little noisier


_STATE = """
SELECT count(*), count({tsv}),
       md5(string_agg({id} || ' ' || {tsv}::text || ' ' || embedding::text, E'\n' ORDER BY {id} COLLATE "C"))
FROM {table}
"""

_INDEXES = """
SELECT indexdef FROM pg_indexes WHERE schemaname = %s AND tablename = %s
"""


def _state(conn: psycopg.Connection, schema: str, table: str, id_column: str, tsv: str) -> dict[str, Any]:
    rows, with_tsv, digest = conn.execute(
        sql.SQL(_STATE).format(
            table=sql.Identifier(schema, table), id=sql.Identifier(id_column), tsv=sql.Identifier(tsv)
        )
    ).fetchone()  # type: ignore[misc]
    definitions = [row[0] for row in conn.execute(_INDEXES, (schema, table)).fetchall()]
    return {
        "rows": rows,
        "rows_with_tsvector": with_tsv,
        "digest": digest,
        "gin_on_tsvector": any(f"USING gin ({tsv})" in d for d in definitions),
        "hnsw": any("USING hnsw (embedding vector_cosine_ops)" in d for d in definitions),
    }


def final_state(settings: Settings, collection: str, table: str) -> dict[str, Any]:
    """Rows, tsvectors, embeddings (digests) and search indexes of both stores, and whether they agree."""
    with Engine(settings).connection() as conn:
        ours = _state(conn, "hybrid_rag", collection, "id", "tsv")
        collection_row = get_collection(conn, collection)
        ours["postings"] = conn.execute(
            sql.SQL("SELECT coalesce(sum(cardinality(chunk_keys)), 0) FROM {}").format(collection_row.table("postings"))
        ).fetchone()[0]  # type: ignore[index]
        theirs = _state(conn, LC_SCHEMA, table, "langchain_id", "content_tsv")
    same = (
        ours["rows"] == theirs["rows"] == ours["rows_with_tsvector"] == theirs["rows_with_tsvector"]
        and ours["digest"] == theirs["digest"]
        and ours["gin_on_tsvector"]
        and theirs["gin_on_tsvector"]
        and ours["hnsw"]
        and theirs["hnsw"]
    )
    return {"same": same, "ours": ours, "pgvectorstore": theirs}
