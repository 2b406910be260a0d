"""Worked examples for the OpenAPI document: one request and one response per endpoint."""

from __future__ import annotations

from litestar.openapi.spec import Example

__all__ = [
    "ADD_DOCUMENTS",
    "AFTER",
    "ALIVE",
    "COLLECTIONS",
    "COLLECTION_NAME",
    "DELETED",
    "DELETE_WHERE",
    "DOCUMENT",
    "DOCUMENT_ID",
    "DOCUMENT_LIST",
    "INGESTED",
    "LIMIT",
    "PREFIX",
    "READY",
    "SEARCH",
    "SEARCH_RESULTS",
]

COLLECTION_NAME = [Example(summary="a collection", value="demo")]
# A file's id is its real path; an id posted over HTTP is whatever the client chose.
TELESCOPE = "/srv/corpus/astronomy/first-telescope.md"
BINOCULARS = "/srv/corpus/astronomy/binoculars.md"
DOCUMENT_ID = [
    Example(summary="an ingested file's id: its real path (slashes may stay as they are)", value=TELESCOPE),
    Example(summary="an id posted over HTTP", value="faq-espresso"),
]
LIMIT = [Example(summary="a page of 50", value=50)]
AFTER = [Example(summary="the previous page's next_after", value=TELESCOPE)]
PREFIX = [Example(summary="one folder's files", value="/srv/corpus/astronomy/")]

SEARCH = [
    Example(
        summary="hybrid search",
        value={"query": "what should I buy someone who wants to start stargazing", "k": 3},
    ),
    Example(
        summary="filtered keyword search",
        value={"query": "brewing tips", "mode": "text", "k": 5, "filter": {"year": {"$gte": 2023}}},
    ),
    Example(
        summary="more like this document",
        value={"like": TELESCOPE, "k": 5, "collapse": True},
    ),
    Example(
        summary="every parameter",
        value={
            "query": "109P Swift-Tuttle",
            "k": 10,
            "mode": "hybrid",
            "filter": {"$or": [{"topic": "astronomy"}, {"lang": {"$in": ["en", "de"]}}]},
            "candidates": 100,
            "fusion": "rrf",
            "rrf_k": 60,
            "weights": {"vector": 1.0, "text": 0.5},
            "collapse": False,
        },
    ),
]

SEARCH_RESULTS = [
    Example(
        summary="two results",
        value={
            "results": [
                {
                    "id": f"{TELESCOPE}:0",
                    "document_id": TELESCOPE,
                    "content": "Choosing Your First Telescope\nA good first telescope is the one you will use...",
                    "metadata": {"source": TELESCOPE},
                    "score": 0.0328,
                    "vector_rank": 1,
                    "text_rank": 2,
                },
                {
                    "id": f"{BINOCULARS}:1",
                    "document_id": BINOCULARS,
                    "content": "Binoculars first\nA pair of 10x50 binoculars shows...",
                    "metadata": {"source": BINOCULARS},
                    "score": 0.0161,
                    "vector_rank": 3,
                    "text_rank": 5,
                },
            ],
            "took_ms": 12.4,
        },
    )
]

ADD_DOCUMENTS = [
    Example(
        summary="two documents",
        value={
            "documents": [
                {
                    "id": "faq-espresso",
                    "title": "Dialling in espresso",
                    "text": "Grind finer when the shot runs fast; aim for 25-30 seconds.",
                    "metadata": {"topic": "coffee", "year": 2024, "lang": "en"},
                },
                {"text": "A document without an id gets one derived from its text."},
            ]
        },
    )
]

INGESTED = [
    Example(
        summary="one new, one unchanged",
        value={
            "document_ids": ["faq-espresso", "5d41402abc4b2a76b9719d911017c592"],
            "new_documents": 1,
            "replaced_documents": 0,
            "unchanged_documents": 1,
            "new_chunks": 1,
            "unchanged_chunks": 1,
            "took_ms": 41.7,
        },
    )
]

COLLECTIONS = [
    Example(
        summary="one collection",
        value={
            "collections": [
                {
                    "name": "demo",
                    "chunks": 187,
                    "embedding_model": "local:all-MiniLM-L6-v2",
                    "dimensions": 384,
                    "text_config": "english",
                    "complete": True,
                    "language": "english",
                    "accent_insensitive": False,
                    "vector_index": {
                        "kind": "hnsw",
                        "storage": "vector",
                        "m": 16,
                        "ef_construction": 64,
                    },
                }
            ]
        },
    )
]

DOCUMENT_LIST = [
    Example(
        summary="a page with more after it",
        value={
            "documents": [
                {"id": BINOCULARS, "chunks": 3, "updated_at": "2026-03-02T09:14:05.120000+00:00"},
                {"id": TELESCOPE, "chunks": 2, "updated_at": "2026-03-02T09:14:05.120000+00:00"},
            ],
            "next_after": TELESCOPE,
        },
    )
]

DOCUMENT = [
    Example(
        summary="a file of two chunks",
        value={
            "id": TELESCOPE,
            "hash": "9f2c1e0b7a44d8e3c6b5a2f1e0d9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1",
            "updated_at": "2026-03-02T09:14:05.120000+00:00",
            "metadata": {"source": TELESCOPE, "title": "Choosing Your First Telescope"},
            "chunks": [
                {
                    "id": f"{TELESCOPE}:0",
                    "index": 0,
                    "content": "Choosing Your First Telescope\nA good first telescope is the one you will use...",
                },
                {
                    "id": f"{TELESCOPE}:1",
                    "index": 1,
                    "content": "Choosing Your First Telescope\nAperture matters more than magnification...",
                },
            ],
        },
    )
]

DELETE_WHERE = [
    Example(summary="documents older than 2020", value={"filter": {"year": {"$lt": 2020}}}),
    Example(summary="one topic in one language", value={"filter": {"topic": "coffee", "lang": {"$in": ["de", "fr"]}}}),
]

DELETED = [Example(summary="three documents deleted", value={"deleted": 3})]

ALIVE = [Example(summary="alive", value={"status": "ok"})]
READY = [Example(summary="the database answers", value={"status": "ready"})]
