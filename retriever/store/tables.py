"""Names of everything a collection owns, and the lock its writers share.

A collection `docs` owns, in schema `hybrid_rag`:
- `docs`             the chunks (PGVectorStore-readable: id, content, embedding, metadata),
                     with the vector index `docs_embedding_hnsw` or `docs_embedding_ivfflat`
- `docs__documents`  one row per source document: its hash, for idempotent re-ingest
- `docs__postings`   BM25 posting blocks (see `retriever.store.postings`)
- `docs__terms`      term → document frequency

Collection names cannot contain `__`, so no side table of one collection is named like
another collection or its side tables.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from psycopg import sql

from retriever.errors import InvalidName
from retriever.store.vector_index import VectorIndex

__all__ = [
    "REGISTERED_EMBEDDINGS",
    "SCHEMA",
    "SHARED_WRITE_LOCK",
    "SIDE_TABLES",
    "TABLE_SUFFIXES",
    "WRITE_LOCK",
    "Collection",
    "statements",
    "table_of",
    "validate_name",
]

SCHEMA = "hybrid_rag"
SIDE_TABLES = ("documents", "postings", "terms")
TABLE_SUFFIXES = ("", *SIDE_TABLES)  # every table of a collection: the chunks, then its side tables
_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")

# Writers of one collection serialise on this lock; bulk-load batches share it (they only add
# new documents and leave term statistics to the final rebuild, which takes it exclusively).
# A writer also reads back what it wrote (the chunks it copied in, into posting blocks), which
# on Citus needs each node written over one connection: the lock switches that on for the
# transaction (`citus.multi_shard_modify_mode`; on plain PostgreSQL an unused placeholder).
_WRITING = "set_config('citus.multi_shard_modify_mode', 'sequential', true)"
WRITE_LOCK = f"SELECT pg_advisory_xact_lock(hashtext('hybrid_rag.write:' || %(collection)s)), {_WRITING}"
SHARED_WRITE_LOCK = f"SELECT pg_advisory_xact_lock_shared(hashtext('hybrid_rag.write:' || %(collection)s)), {_WRITING}"

# The model a collection's vectors come from, as its writers re-read it under the write lock:
# a re-embed may have swapped in another one since they read the collection.
REGISTERED_EMBEDDINGS = "SELECT embedding_model, dimensions FROM hybrid_rag.collections WHERE name = %(collection)s"


def validate_name(name: str) -> str:
    """Accept only plain lowercase identifiers, so names are safe everywhere they appear.

    Raises `InvalidName`.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name) or "__" in name:
        raise InvalidName(
            f"invalid collection name {name!r}: use 1-40 lowercase letters, digits and single "
            "underscores, starting with a letter"
        )
    return name


def statements(script: str) -> list[sql.SQL]:
    """A script's statements (separated by `;` at a line's end), to run one by one: a Citus coordinator
    cannot pass several commands in one string on to its workers."""
    return [sql.SQL(part) for part in (p.strip() for p in script.split(";\n")) if part]


def table_of(name: str, suffix: str = "") -> sql.Identifier:
    """`hybrid_rag.<name>` or its side table `hybrid_rag.<name>__<suffix>`, for a valid collection `name`."""
    return sql.Identifier(SCHEMA, f"{name}__{suffix}" if suffix else name)


@dataclass(frozen=True, slots=True)
class Collection:
    """A registry row, with the identifiers of the collection's tables."""

    name: str
    embedding_model: str
    dimensions: int
    text_config: str
    chunk_count: int  # N of BM25
    total_length: int  # Σ chunk lengths in lexemes: N × avgdl
    created_at: datetime
    complete: bool = True  # False while a first (bulk) load has not built the posting blocks
    language: str = "english"  # the text search configuration chosen at creation (`german`, `simple`...)
    accent_insensitive: bool = False  # then `text_config` is the language's `hybrid_rag.<language>_unaccent`
    index_kind: str = "hnsw"  # the vector index (`retriever.store.vector_index`), fixed at creation
    storage: str = "vector"  # the embedding column's type: `vector` or `halfvec`
    hnsw_m: int = 16
    ef_construction: int = 64
    ivfflat_lists: int = 100
    distributed: bool = False  # on a Citus coordinator: sharded over its workers (`retriever.store.citus`)
    anchors: list[str] | None = None  # then one anchor per shard: a document's chunks carry one of them

    @property
    def sharded(self) -> bool:
        """Whether its tables are sharded by anchor, each shard holding its own chunks' posting blocks (Citus)."""
        return bool(self.anchors)

    def chunk_join(self, row: str) -> sql.Composed:
        """The condition that finds the chunk `c` of the row aliased `row`: by key, and by anchor when sharded
        (so Citus joins each shard's rows there)."""
        condition = "c.anchor = {row}.anchor AND c.key = {row}.key" if self.sharded else "c.key = {row}.key"
        return sql.SQL(condition).format(row=sql.Identifier(row))

    @property
    def vector_index(self) -> VectorIndex:
        """The collection's vector index settings."""
        return VectorIndex(
            kind=self.index_kind,  # type: ignore[arg-type]
            storage=self.storage,  # type: ignore[arg-type]
            m=self.hnsw_m,
            ef_construction=self.ef_construction,
            lists=self.ivfflat_lists,
        )

    @property
    def language_label(self) -> str:
        """The language as people read it: `german`, or `french, accent-insensitive`."""
        return f"{self.language}, accent-insensitive" if self.accent_insensitive else self.language

    def table(self, suffix: str = "") -> sql.Identifier:
        """`hybrid_rag.<name>` or one of its side tables (`documents`, `postings`, `terms`)."""
        return table_of(self.name, suffix)

    def index(self, suffix: str) -> sql.Identifier:
        """Name of one of the collection's indexes (unqualified, as CREATE INDEX wants)."""
        return sql.Identifier(f"{self.name}_{suffix}")

    def qualified_index(self, suffix: str) -> sql.Identifier:
        """Schema-qualified name of one of its indexes (as DROP INDEX wants)."""
        return sql.Identifier(SCHEMA, f"{self.name}_{suffix}")

    def index_name(self, suffix: str) -> str:
        """The bare name of one of its indexes, as `pg_indexes` lists it."""
        return f"{self.name}_{suffix}"
