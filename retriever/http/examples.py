"""Worked examples for the OpenAPI document: one request and one response per endpoint."""

from __future__ import annotations

from litestar.openapi.spec import Example

__all__ = [
    "ADD_DOCUMENTS",
    "ALIVE",
    "COLLECTIONS",
    "COLLECTION_NAME",
    "DOCUMENT_ID",
    "INGESTED",
    "READY",
    "SEARCH",
    "SEARCH_RESULTS",
]

COLLECTION_NAME = [Example(summary="a collection", value="demo")]
DOCUMENT_ID = [Example(summary="a document id (may contain slashes)", value="astronomy/first-telescope.md")]

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
        value={"like": "astronomy/first-telescope.md", "k": 5, "collapse": True},
    ),
    Example(
        summary="every parameter",
        value={
            "query": "109P Swift-Tuttle",
            "k": 10,
            "mode": "hybrid",
            "filter": {"$or": [{"topic": "astronomy"}, {"lang": {"$in": ["en", "de"]}}]},
            "candidates": 100,
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
                    "id": "astronomy/first-telescope.md:0",
                    "document_id": "astronomy/first-telescope.md",
                    "content": "Choosing Your First Telescope\nA good first telescope is the one you will use...",
                    "metadata": {"source": "astronomy/first-telescope.md"},
                    "score": 0.0328,
                    "vector_rank": 1,
                    "text_rank": 2,
                },
                {
                    "id": "astronomy/binoculars.md:1",
                    "document_id": "astronomy/binoculars.md",
                    "content": "Binoculars first\nA pair of 10x50 binoculars shows...",
                    "metadata": {"source": "astronomy/binoculars.md"},
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
                }
            ]
        },
    )
]

ALIVE = [Example(summary="alive", value={"status": "ok"})]
READY = [Example(summary="the database answers", value={"status": "ready"})]
