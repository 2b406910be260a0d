"""Request and response bodies of the HTTP API, as `msgspec.Struct`s.

The shape is checked when a body is decoded; the limits from the settings (MAX_K,
MAX_QUERY_CHARS, ...) by the service. Both answer 422, and `refine_openapi` writes both
into the OpenAPI document.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar.openapi.spec import Schema
from msgspec import UNSET, Meta, Struct, UnsetType

from ingest import SourceDocument
from retriever.errors import InputError, LimitExceeded
from retriever.http.collection_schemas import CollectionInfo, CollectionList, VectorIndexIn
from retriever.results import DEFAULTS, SearchParams, SearchResult
from retriever.settings import Settings
from retriever.store.documents import DocumentPage, StoredDocument
from retriever.store.pipeline import IngestReport

__all__ = [
    "MAX_PAGE",
    "AddDocuments",
    "ChunkOut",
    "CollectionInfo",
    "CollectionList",
    "DeleteWhere",
    "Deleted",
    "DocumentIn",
    "DocumentList",
    "DocumentOut",
    "DocumentSummary",
    "Hit",
    "IngestSummary",
    "SearchRequest",
    "SearchResponse",
    "Status",
    "Weights",
    "check_storable",
    "refine_openapi",
]

NonNegative = Annotated[float, Meta(ge=0, le=1e6)]


class Weights(Struct, forbid_unknown_fields=True):
    """Weights of the two legs in the fusion; at least one above 0."""

    vector: NonNegative = DEFAULTS["weights"][0]
    text: NonNegative = DEFAULTS["weights"][1]


class SearchRequest(Struct, forbid_unknown_fields=True, kw_only=True):
    """A search: `query` (text) or `like` (a stored document id), exactly one of them."""

    query: str | UnsetType = UNSET
    like: Annotated[str, Meta(min_length=1)] | UnsetType = UNSET
    k: Annotated[int, Meta(ge=1, description="results to return (at most MAX_K)")] = 10
    mode: Literal["hybrid", "vector", "text"] = "hybrid"
    filter: dict[str, Any] | None = None
    candidates: Annotated[int, Meta(ge=1, description="depth of each leg (at most MAX_CANDIDATES)")] = DEFAULTS[
        "candidates"
    ]
    fusion: Annotated[
        Literal["rrf", "linear", "linear_max"],
        Meta(
            description="linear_max: vector min-max, text over its best, weighted; "
            "linear: min-max normalised scores, weighted; rrf: reciprocal ranks"
        ),
    ] = DEFAULTS["fusion"]
    rrf_k: Annotated[int, Meta(ge=0, le=1_000_000, description="RRF constant (fusion rrf only)")] = DEFAULTS["rrf_k"]
    weights: Weights | None = None
    collapse: bool = False
    probes: Annotated[int, Meta(ge=1, le=32768, description="IVFFlat lists read (default √lists)")] | None = None

    def params(self) -> SearchParams:
        """The service's parameters, after the checks the shape alone cannot express."""
        if (self.query is UNSET) == (self.like is UNSET):
            raise InputError("give exactly one of `query` (text) or `like` (a document id)")
        check_storable(self.text, "query")
        check_storable(self.document_id, "like")
        check_storable(self.filter, "filter")
        weights = self.weights or Weights()
        return SearchParams(
            k=self.k,
            mode=self.mode,
            filter=self.filter,
            candidates=self.candidates,
            fusion=self.fusion,
            rrf_k=self.rrf_k,
            weights=(weights.vector, weights.text),
            collapse=self.collapse,
            probes=self.probes,
        )

    @property
    def text(self) -> str | None:
        return None if self.query is UNSET else self.query

    @property
    def document_id(self) -> str | None:
        return None if self.like is UNSET else self.like


class Hit(Struct):
    """One ranked chunk; a rank is null when that leg did not return the chunk."""

    id: str
    document_id: str
    content: str
    metadata: dict[str, Any]
    score: float
    vector_rank: int | None
    text_rank: int | None


class SearchResponse(Struct):
    """Ranked chunks, best first: the same JSON as `hybrid-rag search --json`."""

    results: list[Hit]
    took_ms: float

    @classmethod
    def of(cls, result: SearchResult) -> SearchResponse:
        return msgspec.convert(result.to_json(), cls)  # the CLI's --json shape, defined once


class DocumentIn(Struct, forbid_unknown_fields=True):
    """A document to ingest; without `id`, one is derived from the text (re-posting updates it)."""

    text: Annotated[str, Meta(min_length=1)]
    id: Annotated[str, Meta(min_length=1)] | None = None
    title: str | None = None
    metadata: dict[str, Any] | None = None


class AddDocuments(Struct, forbid_unknown_fields=True):
    """Documents to chunk, embed and upsert (at most MAX_DOCUMENTS_PER_REQUEST)."""

    documents: Annotated[list[DocumentIn], Meta(min_length=1)]
    language: Annotated[
        str | None,
        Meta(description="text search configuration of a new collection (german, simple, ...; default english)"),
    ] = None
    accent_insensitive: Annotated[
        bool, Meta(description="a new collection matches cafe and café alike (needs the unaccent extension)")
    ] = False
    index: VectorIndexIn | None = None

    def records(self, settings: Settings) -> list[dict[str, Any]]:
        """Checked records (`id`, `text`, `title`, `metadata`), ready for the engine's ingest."""
        if len(self.documents) > settings.max_documents_per_request:
            raise LimitExceeded(
                f"{len(self.documents)} documents in one request; the limit is {settings.max_documents_per_request}"
            )
        records = [msgspec.structs.asdict(document) for document in self.documents]
        for position, record in enumerate(records):
            check_storable(record, f"documents[{position}]")
        return records


class IngestSummary(Struct):
    """What an ingest request did: unchanged documents cost neither embedding nor writes."""

    document_ids: list[str]
    new_documents: int
    replaced_documents: int
    unchanged_documents: int
    new_chunks: int
    unchanged_chunks: int
    took_ms: float

    @classmethod
    def of(cls, documents: list[SourceDocument], report: IngestReport) -> IngestSummary:
        return cls(
            document_ids=[document.document_id for document in documents],
            new_documents=report.new_documents,
            replaced_documents=report.replaced_documents,
            unchanged_documents=report.unchanged_documents,
            new_chunks=report.new_chunks,
            unchanged_chunks=report.unchanged_chunks,
            took_ms=round(report.wall_s * 1000, 3),
        )


MAX_PAGE = 1000  # documents per page of a listing


class DocumentSummary(Struct):
    """One document of a listing: its id, its number of chunks, when it was last written."""

    id: str
    chunks: int
    updated_at: datetime


class DocumentList(Struct):
    """A page of documents in id order; `next_after` is the `after` of the next page (null: this is the last)."""

    documents: list[DocumentSummary]
    next_after: str | None

    @classmethod
    def of(cls, page: DocumentPage) -> DocumentList:
        return cls([DocumentSummary(d.id, d.chunks, d.updated_at) for d in page.documents], page.next_after)


class ChunkOut(Struct):
    """One chunk of a stored document: id, position from 0, content (the title first, when there is one)."""

    id: str
    index: int
    content: str


class DocumentOut(Struct):
    """A stored document: `hash` is what re-ingest compares; `metadata` is what its chunks share (the user's,
    `source` and `title`); `chunks` in order. The shape of `hybrid-rag document --json`."""

    id: str
    hash: str
    updated_at: datetime
    metadata: dict[str, Any]
    chunks: list[ChunkOut]

    @classmethod
    def of(cls, stored: StoredDocument) -> DocumentOut:
        chunks = [ChunkOut(c.id, c.index, c.content) for c in stored.chunks]
        return cls(stored.id, stored.hash, stored.updated_at, stored.metadata, chunks)


class DeleteWhere(Struct, forbid_unknown_fields=True):
    """Documents to delete: every one with at least one chunk matching `filter` (search's filter language), whole.

    An empty filter is refused (422): it would delete every document; drop the collection instead.
    """

    filter: Annotated[dict[str, Any], Meta(min_length=1)]

    def checked(self) -> dict[str, Any]:
        """The filter, after the checks the shape alone cannot express."""
        check_storable(self.filter, "filter")
        return self.filter


class Deleted(Struct):
    """How many documents a delete removed, with all their chunks."""

    deleted: int


class Status(Struct):
    """A probe's answer."""

    status: Literal["ok", "ready"]


def refine_openapi(schemas: dict[str, Schema], settings: Settings) -> None:
    """Say in the OpenAPI document what the server enforces beyond the types: this server's limits too."""
    strict = (SearchRequest, Weights, DocumentIn, AddDocuments, DeleteWhere, VectorIndexIn)
    for struct in strict:  # unknown fields are rejected
        if struct.__name__ in schemas:
            schemas[struct.__name__].additional_properties = False
    search, add, where = schemas.get("SearchRequest"), schemas.get("AddDocuments"), schemas.get("DeleteWhere")
    if where is not None and where.properties:
        _limit(where.properties["filter"], min_properties=1)
    if search is not None and search.properties:
        search.one_of = [Schema(required=["query"]), Schema(required=["like"])]  # exactly one of them
        _limit(search.properties["k"], maximum=settings.max_k)
        _limit(search.properties["candidates"], maximum=settings.max_candidates)
        _limit(search.properties["query"], max_length=settings.max_query_chars)
    if add is not None and add.properties:
        _limit(add.properties["documents"], max_items=settings.max_documents_per_request)


def _limit(schema: object, **limits: int) -> None:
    if isinstance(schema, Schema):
        for name, value in limits.items():
            setattr(schema, name, value)


MAX_DEPTH = 32  # nesting of filters and metadata: deeper filters overflow the SQL composer's recursion


def check_storable(value: object, where: str) -> None:
    """Refuse what PostgreSQL cannot store or the service cannot compile: NUL characters,
    non-finite numbers, nesting deeper than MAX_DEPTH."""
    _check(value, where, where, 0)


def _check(value: object, where: str, root: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise InputError(f"{root} nests deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        if "\x00" in value:
            raise InputError(f"{where} contains a NUL character")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InputError(f"{where} is not a finite number")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _check(key, where, root, depth + 1)
            _check(item, f"{where}.{key}", root, depth + 1)
    elif isinstance(value, list | tuple):
        for position, item in enumerate(value):
            _check(item, f"{where}[{position}]", root, depth + 1)
