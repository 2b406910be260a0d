"""A collection's chunk table opens as a langchain-postgres `PGVectorStore` (v2), unchanged."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from langchain_postgres import PGEngine, PGVectorStore
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy.engine import URL

from ingest import ChunkingConfig, SourceDocument
from retriever import Engine
from retriever.connections import open_primary
from retriever.results import SearchParams
from retriever.store.database import primary_dsn
from retriever.store.tables import SCHEMA

PASSAGES = {
    "volcano": "A volcano erupts when magma rises through the crust and pressure from dissolved gases is released.",
    "bread": "Sourdough bread rises because wild yeast and lactic acid bacteria ferment the flour.",
    "chess": "In chess, castling moves the king two squares towards a rook, which jumps over it.",
    "tides": "Ocean tides are caused mainly by the Moon's gravity pulling on the Earth's oceans.",
    "violin": "A violin's sound comes from a bow drawn across strings; the body amplifies the vibration.",
}
QUERIES = {
    "what makes the sea rise and fall twice a day?": "tides",
    "why does molten rock explode out of a mountain?": "volcano",
    "how does a board game king swap places with a tower?": "chess",
}


def sqlalchemy_url(dsn: str) -> URL:
    """The libpq DSN as a SQLAlchemy psycopg URL; a socket folder as host travels as a query parameter."""
    params = {key: str(value) for key, value in conninfo_to_dict(dsn).items()}
    return URL.create(
        "postgresql+psycopg",
        username=params.pop("user", None),
        password=params.pop("password", None) or None,
        database=params.pop("dbname", None),
        query=params,
    )


@pytest.fixture
def engine(settings) -> Iterator[PGEngine]:
    pg_engine = PGEngine.from_connection_string(url=sqlalchemy_url(primary_dsn(settings)))
    yield pg_engine
    asyncio.run(pg_engine.close())


@pytest.fixture
def store(settings, collection_name, local_model, engine) -> PGVectorStore:
    documents = [SourceDocument(name, text, None, "test", {"name": name}) for name, text in PASSAGES.items()]
    Engine(settings, model=local_model).ingest(collection_name, documents, ChunkingConfig())
    return PGVectorStore.create_sync(
        engine,
        embedding_service=local_model.embeddings,
        table_name=collection_name,
        schema_name=SCHEMA,
        id_column="id",
        content_column="content",
        embedding_column="embedding",
        metadata_json_column="metadata",
        metadata_columns=[],
    )


@pytest.mark.parametrize("query", list(QUERIES))
def test_similarity_search_finds_the_same_top_chunk_as_vector_mode(
    settings, collection_name, local_model, store, query
):
    (found,) = store.similarity_search(query, k=1)
    with open_primary(settings) as conn:
        ours = Engine(settings, model=local_model).search(
            collection_name, query, SearchParams(k=1, mode="vector"), conn=conn
        )
    assert found.id == ours.hits[0].id == f"{QUERIES[query]}:0"
    assert found.page_content == ours.hits[0].content
    assert found.metadata == ours.hits[0].metadata


def test_similarity_search_ranks_every_chunk_like_vector_mode(settings, collection_name, local_model, store):
    query = "fermentation of dough"
    with_scores = store.similarity_search_with_score(query, k=len(PASSAGES))
    with open_primary(settings) as conn:
        ours = Engine(settings, model=local_model).search(
            collection_name, query, SearchParams(k=len(PASSAGES), mode="vector"), conn=conn
        )
    assert [doc.id for doc, _ in with_scores] == [hit.id for hit in ours.hits]
    distances = [distance for _, distance in with_scores]
    assert distances == sorted(distances)


def test_metadata_filters_of_pgvectorstore_work_on_our_metadata_column(store):
    found = store.similarity_search("anything at all", k=5, filter={"name": {"$eq": "violin"}})
    assert [doc.id for doc in found] == ["violin:0"]


def test_get_by_ids_reads_our_chunks(store):
    (found,) = store.get_by_ids(["bread:0"])
    assert "wild yeast" in found.page_content
    assert found.metadata["name"] == "bread"
