"""Collections in the API: the vector index an ingest asks a new one for, and the collection list."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta, Struct

from retriever.errors import InputError
from retriever.store.vector_index import VectorIndex

__all__ = ["CollectionInfo", "CollectionList", "VectorIndexIn", "VectorIndexInfo"]

_DEFAULT = VectorIndex()


class VectorIndexIn(Struct, forbid_unknown_fields=True, kw_only=True):
    """The vector index of a new collection, fixed at creation (an existing one must match): HNSW with `m` and
    `ef_construction` (≥ 2 × m), or IVFFlat with `lists`; over `vector` columns (≤ 2000 dimensions) or
    `halfvec` (2 bytes a dimension, ≤ 4000)."""

    kind: Literal["hnsw", "ivfflat"] = "hnsw"
    storage: Literal["vector", "halfvec"] = "vector"
    m: Annotated[int, Meta(ge=2, le=100, description=f"HNSW links per node (default {_DEFAULT.m})")] | None = None
    ef_construction: (
        Annotated[int, Meta(ge=4, le=1000, description=f"HNSW build candidates (default {_DEFAULT.ef_construction})")]
        | None
    ) = None
    lists: Annotated[int, Meta(ge=1, le=32768, description=f"IVFFlat lists (default {_DEFAULT.lists})")] | None = None

    def index(self) -> VectorIndex:
        """The `VectorIndex` asked for (its dimensions are checked where the collection is created).

        Raises `InputError` for a parameter of the other kind (`lists` for HNSW, `m` or `ef_construction` for IVFFlat).
        """
        given = {"m": self.m, "ef_construction": self.ef_construction, "lists": self.lists}
        foreign = ("lists",) if self.kind == "hnsw" else ("m", "ef_construction")
        if wrong := [field for field in foreign if given[field] is not None]:
            raise InputError(f"{', '.join(wrong)} does not apply to a {self.kind} index")
        return VectorIndex(self.kind, self.storage, **{k: v for k, v in given.items() if v is not None})  # type: ignore[arg-type]


class VectorIndexInfo(Struct, omit_defaults=True):
    """A collection's vector index: `m` and `ef_construction` for HNSW, `lists` for IVFFlat (the other kind's
    are left out): the shape `hybrid-rag collections --json` prints."""

    kind: str
    storage: str
    m: int | None = None
    ef_construction: int | None = None
    lists: int | None = None

    @classmethod
    def of(cls, index: VectorIndex) -> VectorIndexInfo:
        return cls(**index.to_json())


class CollectionInfo(Struct):
    """One collection: its size, the embeddings it was built with, and whether its load finished
    (`complete` false: a first load is running or was interrupted; text search answers 409 until
    `hybrid-rag maintain` or the next ingest completes it)."""

    name: str
    chunks: int
    embedding_model: str
    dimensions: int
    text_config: str
    complete: bool
    language: str
    accent_insensitive: bool
    vector_index: VectorIndexInfo


class CollectionList(Struct):
    """The collections this key may see, by name."""

    collections: list[CollectionInfo]
