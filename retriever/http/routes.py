"""The endpoints (DESIGN §5): each a few lines over the engine."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import unquote_to_bytes

from litestar import Request, Router, delete, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import Example
from litestar.params import Body, Parameter

from retriever.http import examples
from retriever.http.auth import Grant, require_key
from retriever.http.collection_schemas import VectorIndexInfo
from retriever.http.problems import problem_responses
from retriever.http.schemas import (
    MAX_PAGE,
    AddDocuments,
    CollectionInfo,
    CollectionList,
    Deleted,
    DeleteWhere,
    DocumentList,
    DocumentOut,
    IngestSummary,
    SearchRequest,
    SearchResponse,
    Status,
    check_storable,
)
from retriever.http.strict import strict_request
from retriever.serving import ServingEngine

__all__ = ["routers"]

CollectionName = Annotated[
    str,
    Parameter(
        description="collection name: lowercase letters, digits and single underscores, starting with a letter",
        pattern=r"^[a-z](_?[a-z0-9])*_?$",
        max_length=40,
        examples=examples.COLLECTION_NAME,
    ),
]
DocumentId = Annotated[
    str,
    Parameter(
        description="the document's id, percent-encoded (its slashes may stay as they are)",
        examples=examples.DOCUMENT_ID,
    ),
]


Limit = Annotated[int, Parameter(description="documents per page", ge=1, le=MAX_PAGE, examples=examples.LIMIT)]
After = Annotated[
    str | None,
    Parameter(
        description="the cursor: list the documents after this id (a page's `next_after`)", examples=examples.AFTER
    ),
]
Prefix = Annotated[
    str | None, Parameter(description="only documents whose id starts with this", examples=examples.PREFIX)
]

EngineDep = NamedDependency[ServingEngine]


def _ok(container: type, samples: list[Example], description: str) -> ResponseSpec:
    return ResponseSpec(container, description=description, generate_examples=False, examples=samples)


@post(
    "/collections/{name:str}/search",
    status_code=200,
    summary="Search a collection",
    description="Hybrid (vector + BM25, fused by RRF), vector or text search, by `query` or by `like`: a stored "
    "document's id, ranking the collection against its mean embedding and most distinctive terms (the document "
    "itself left out). The response is the JSON of `hybrid-rag search --json`.",
    responses={
        200: _ok(SearchResponse, examples.SEARCH_RESULTS, "Ranked chunks, best first"),
        **problem_responses(400, 401, 404, 409, 413, 422, 503),
    },
)
async def search(
    name: CollectionName, data: Annotated[SearchRequest, Body(examples=examples.SEARCH)], engine: EngineDep
) -> SearchResponse:
    result = await engine.asearch(name, data.text, data.params(), like=data.document_id)
    return SearchResponse.of(result)


@post(
    "/collections/{name:str}/documents",
    status_code=200,
    summary="Add or replace documents",
    description="Chunk, embed and upsert documents (the collection is created on first use). A document whose "
    "text, title and metadata are unchanged costs neither embedding nor writes; a changed one has its chunks "
    "replaced atomically, so a concurrent search sees the old version or the new one, never a mix.",
    responses={
        200: _ok(IngestSummary, examples.INGESTED, "What the ingest did"),
        **problem_responses(400, 401, 404, 409, 413, 422, 503),
    },
)
async def add_documents(
    name: CollectionName, data: Annotated[AddDocuments, Body(examples=examples.ADD_DOCUMENTS)], engine: EngineDep
) -> IngestSummary:
    documents, report = await engine.aingest_records(
        name,
        data.records(engine.settings),
        source=f"http:{name}",
        language=data.language,
        accent_insensitive=data.accent_insensitive,
        index=data.index.index() if data.index else None,
    )
    return IngestSummary.of(documents, report)


@get(
    "/collections/{name:str}/documents",
    summary="List documents",
    description="The collection's documents in id order, a page at a time: each with its number of chunks and when "
    "it was last written. Pass a page's `next_after` as `after` for the next page; `prefix` keeps the ids that start "
    "with it (a file's id is its real path, so `prefix=/srv/docs/` lists one folder).",
    responses={
        200: _ok(DocumentList, examples.DOCUMENT_LIST, "A page of documents"),
        **problem_responses(400, 401, 404, 422, 503),
    },
)
async def list_documents(
    name: CollectionName, engine: EngineDep, limit: Limit = 100, after: After = None, prefix: Prefix = None
) -> DocumentList:
    check_storable(after, "after")
    check_storable(prefix, "prefix")
    return DocumentList.of(await engine.adocuments(name, limit=limit, after=after, prefix=prefix))


@get(
    "/collections/{name:str}/documents/{document_id:path}",
    summary="Get a document",
    description="A stored document: its hash (what re-ingest compares), when it was last written, the metadata its "
    "chunks share, and its chunks' content in order. The JSON of `hybrid-rag document --json`.",
    responses={
        200: _ok(DocumentOut, examples.DOCUMENT, "The document and its chunks"),
        **problem_responses(400, 401, 404, 422, 503),
    },
)
async def get_document(
    request: Request[Any, Any, State], name: CollectionName, document_id: DocumentId, engine: EngineDep
) -> DocumentOut:
    document_id = _exact_document_id(request, name) or document_id.removeprefix("/")
    check_storable(document_id, "document_id")
    return DocumentOut.of(await engine.adocument(name, document_id))


@delete(
    "/collections/{name:str}/documents/{document_id:path}",
    status_code=204,
    summary="Delete a document",
    description="Delete a document and all its chunks.",
    responses=problem_responses(400, 401, 404, 422, 503),
)
async def remove_document(
    request: Request[Any, Any, State], name: CollectionName, document_id: DocumentId, engine: EngineDep
) -> None:
    document_id = _exact_document_id(request, name) or document_id.removeprefix("/")
    check_storable(document_id, "document_id")
    await engine.adelete_document(name, document_id)


@post(
    "/collections/{name:str}/delete",
    status_code=200,
    summary="Delete documents by filter",
    description="Delete every document with at least one chunk matching `filter` (the filter language of search), "
    "whole: a document is never left with part of its chunks. Answers how many documents were deleted (0 when none "
    "matched). An empty filter is refused; to delete everything, drop the collection.",
    responses={
        200: _ok(Deleted, examples.DELETED, "How many documents were deleted"),
        **problem_responses(400, 401, 404, 413, 422, 503),
    },
)
async def delete_where(
    name: CollectionName, data: Annotated[DeleteWhere, Body(examples=examples.DELETE_WHERE)], engine: EngineDep
) -> Deleted:
    return Deleted(await engine.adelete_where(name, data.checked()))


@delete(
    "/collections/{name:str}",
    status_code=204,
    summary="Drop a collection",
    description="Delete the collection with all its documents, chunks and indexes. A write racing the drop either "
    "finishes before it or answers 404.",
    responses=problem_responses(400, 401, 404, 422, 503),
)
async def drop_collection(name: CollectionName, engine: EngineDep) -> None:
    await engine.adrop_collection(name)


def _exact_document_id(request: Request[Any, Any, State], name: str) -> str | None:
    # Routing normalises the path (a doubled or trailing "/" goes), but ids such as "/abs/a.md" or
    # "dir/" keep theirs: read the id from the path as the client sent it.
    raw: bytes | None = request.scope.get("raw_path")
    marker = f"/collections/{name}/documents/".encode()
    if not raw or marker not in raw:
        return None
    tail = raw.split(b"?", 1)[0].split(marker, 1)[1]
    return unquote_to_bytes(tail).decode("utf-8", "replace") or None


@get(
    "/collections",
    summary="List collections",
    description="Collections with their sizes and embedding model (those the API key may use).",
    responses={
        200: _ok(CollectionList, examples.COLLECTIONS, "Collections by name"),
        **problem_responses(400, 401, 422, 503),
    },
)
async def collections(request: Request[Any, Any, State], engine: EngineDep) -> CollectionList:
    grant: Grant = request.state.grant
    found = await engine.acollections()
    return CollectionList(
        [
            CollectionInfo(
                c.name,
                c.chunk_count,
                c.embedding_model,
                c.dimensions,
                c.text_config,
                c.complete,
                c.language,
                c.accent_insensitive,
                VectorIndexInfo.of(c.vector_index),
            )
            for c in found
            if grant.allows(c.name)
        ]
    )


@get(
    "/healthz",
    summary="Liveness",
    description="The process is alive (no database involved).",
    responses={200: _ok(Status, examples.ALIVE, "Alive"), **problem_responses(400, 422)},
)
async def healthz() -> Status:
    return Status("ok")


@get(
    "/readyz",
    summary="Readiness",
    description="Every configured database answers; 503 when one does not.",
    responses={200: _ok(Status, examples.READY, "Ready"), **problem_responses(400, 422, 503)},
)
async def readyz(engine: EngineDep) -> Status:
    await engine.ready()
    return Status("ready")


def _engine(state: State) -> ServingEngine:
    return state.engine


def routers(*, secured: bool) -> list[Router]:
    """The /v1 API behind the key guard, and the probes; the OpenAPI names the bearer scheme when keys are set."""
    v1 = Router(
        "/v1",
        route_handlers=[
            search,
            add_documents,
            list_documents,
            get_document,
            remove_document,
            delete_where,
            drop_collection,
            collections,
        ],
        guards=[require_key],
        before_request=strict_request,  # undeclared query parameters and lax body types are 422s
        security=[{"bearer": []}] if secured else None,
        dependencies={"engine": Provide(_engine, sync_to_thread=False)},
        tags=["search and documents"],
    )
    probes = Router(
        "/",
        route_handlers=[healthz, readyz],
        before_request=strict_request,
        dependencies={"engine": Provide(_engine, sync_to_thread=False)},
        tags=["probes"],
    )
    return [v1, probes]
