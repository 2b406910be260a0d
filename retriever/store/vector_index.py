"""A collection's vector index: its kind (HNSW or IVFFlat), build parameters and storage (vector or halfvec).

Chosen at creation and kept in the registry. The limits are pgvector's (0.8, `src/hnsw.h`,
`src/ivfflat.h`): HNSW `m` 2–100 and `ef_construction` 4–1000 and ≥ 2·m; IVFFlat `lists`
1–32768 (its `probes`, chosen per search, are `retriever.results.SearchParams`'); an index
over at most 2,000 dimensions stored as `vector` (4 B each) or 4,000 as `halfvec` (2 B
each: half the memory, pgvector ≥ 0.7).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from psycopg import sql

from retriever.errors import InputError

__all__ = [
    "INDEX_KINDS",
    "MAX_INDEX_DIMENSIONS",
    "STORAGES",
    "VectorIndex",
    "build_memory_mb",
    "column_type",
    "default_probes",
    "index_statement",
]

IndexKind = Literal["hnsw", "ivfflat"]
Storage = Literal["vector", "halfvec"]
INDEX_KINDS: tuple[IndexKind, ...] = ("hnsw", "ivfflat")
STORAGES: tuple[Storage, ...] = ("vector", "halfvec")
MAX_INDEX_DIMENSIONS: dict[str, int] = {"vector": 2000, "halfvec": 4000}
MAX_COLUMN_DIMENSIONS = 16000  # either type's own limit
_M = (2, 100)
_EF_CONSTRUCTION = (4, 1000)
_LISTS = (1, 32768)


@dataclass(frozen=True, slots=True)
class VectorIndex:
    """How a collection's embeddings are stored and indexed (cosine distance either way).

    `m` and `ef_construction` apply to HNSW, `lists` to IVFFlat; the other kind's are kept
    at their defaults and ignored.
    """

    kind: IndexKind = "hnsw"
    storage: Storage = "vector"
    m: int = 16  # HNSW: links per node
    ef_construction: int = 64  # HNSW: candidate list while building
    lists: int = 100  # IVFFlat: k-means cells

    def validate(self, dimensions: int) -> VectorIndex:
        """Self, when pgvector can build it over `dimensions`-wide vectors; else a one-line `InputError`."""
        if self.kind not in INDEX_KINDS:
            raise InputError(f"unknown vector index {self.kind!r}: use one of {', '.join(INDEX_KINDS)}")
        if self.storage not in STORAGES:
            raise InputError(f"unknown vector storage {self.storage!r}: use one of {', '.join(STORAGES)}")
        for field, value in (("m", self.m), ("ef_construction", self.ef_construction), ("lists", self.lists)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise InputError(f"{field} must be a whole number, got {value!r}")
        limit = MAX_INDEX_DIMENSIONS[self.storage]
        if dimensions > limit:
            wider = " (use storage halfvec, up to 4000)" if self.storage == "vector" and dimensions <= 4000 else ""
            raise InputError(
                f"a {self.storage} index holds at most {limit} dimensions, these embeddings have {dimensions}{wider}"
            )
        if self.kind == "hnsw":
            _between("m", self.m, _M)
            _between("ef_construction", self.ef_construction, _EF_CONSTRUCTION)
            if self.ef_construction < 2 * self.m:
                raise InputError(f"ef_construction must be at least 2 × m ({2 * self.m}), got {self.ef_construction}")
        else:
            _between("lists", self.lists, _LISTS)
        return self

    @property
    def suffix(self) -> str:
        """The index's name after the collection's: `embedding_hnsw` or `embedding_ivfflat`."""
        return f"embedding_{self.kind}"

    @property
    def label(self) -> str:
        """As people read it: `hnsw m 16, ef_construction 64, vector` or `ivfflat lists 100, halfvec`."""
        built = f"m {self.m}, ef_construction {self.ef_construction}" if self.kind == "hnsw" else f"lists {self.lists}"
        return f"{self.kind} {built}, {self.storage}"

    def to_json(self) -> dict[str, Any]:
        """The settings that apply to this kind: {"kind", "storage", "m", "ef_construction"} or {..., "lists"}."""
        built = {"m": self.m, "ef_construction": self.ef_construction} if self.kind == "hnsw" else {"lists": self.lists}
        return {"kind": self.kind, "storage": self.storage, **built}

    def same_as(self, other: VectorIndex) -> bool:
        """Whether both build the same index (parameters of the other kind do not count)."""
        return self.to_json() == other.to_json()


def _between(field: str, value: int, bounds: tuple[int, int]) -> None:
    if not bounds[0] <= value <= bounds[1]:
        raise InputError(f"{field} must be between {bounds[0]} and {bounds[1]}, got {value}")


def default_probes(lists: int, rows: int, candidates: int) -> int:
    """IVFFlat cells a search reads when it names none: √lists (pgvector's advice for recall),
    and enough cells of ~rows/lists rows each to hold `candidates` rows twice over; at most `lists`."""
    per_list = max(rows, 1) / max(lists, 1)
    return max(1, min(lists, max(math.ceil(math.sqrt(lists)), math.ceil(2 * candidates / per_list))))


def build_memory_mb(rows: int, dimensions: int) -> int:
    """`maintenance_work_mem` (MB) for building a vector index in memory: ~ rows × dims × 4 B × 2, in [64, 4096]."""
    return max(64, min(4096, rows * dimensions * 8 // 1_000_000 + 64))


def column_type(storage: str, dimensions: int) -> sql.Composable:
    """The embedding column's type: `vector(384)` or `halfvec(3072)`."""
    if storage not in STORAGES:
        raise InputError(f"unknown vector storage {storage!r}: use one of {', '.join(STORAGES)}")
    if not 1 <= int(dimensions) <= MAX_COLUMN_DIMENSIONS:
        raise InputError(f"embeddings must have 1 to {MAX_COLUMN_DIMENSIONS} dimensions, got {dimensions}")
    return sql.SQL("{}({})").format(sql.SQL(storage), sql.Literal(int(dimensions)))


def index_statement(
    index: VectorIndex, *, table: sql.Identifier, column: str, name: sql.Identifier, concurrently: bool = False
) -> sql.Composed:
    """`CREATE INDEX [CONCURRENTLY] IF NOT EXISTS name ON table USING hnsw|ivfflat (column <storage>_cosine_ops)
    WITH (...)`.

    Raises `InputError` for a kind or storage pgvector does not have (the rest is `validate`'s).
    """
    if index.kind not in INDEX_KINDS or index.storage not in STORAGES:
        raise InputError(f"unknown vector index {index.kind!r} over {index.storage!r}")
    if index.kind == "hnsw":
        options = sql.SQL("m = {}, ef_construction = {}").format(
            sql.Literal(int(index.m)), sql.Literal(int(index.ef_construction))
        )
    else:
        options = sql.SQL("lists = {}").format(sql.Literal(int(index.lists)))
    return sql.SQL(
        "CREATE INDEX {concurrently}IF NOT EXISTS {name} ON {table} "
        "USING {method} ({column} {opclass}) WITH ({options})"
    ).format(
        concurrently=sql.SQL("CONCURRENTLY " if concurrently else ""),
        name=name,
        table=table,
        method=sql.SQL(index.kind),
        column=sql.Identifier(column),
        opclass=sql.SQL(f"{index.storage}_cosine_ops"),
        options=options,
    )
