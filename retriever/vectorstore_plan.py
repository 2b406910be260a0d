"""The vector store's pure steps, shared by its sync and async methods: ids, the model's identity, reads.

Nothing here touches a connection or a model: `retriever.vectorstore` and
`retriever.vectorstore_search` run these steps, each in a thin sync and a thin async wrapper.
"""

from __future__ import annotations

import uuid
from collections.abc import Generator, Iterable, Sequence
from typing import Any

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings

from ingest import ChunkingConfig
from retriever.embeddings import LOCAL_MODEL, EmbeddingModel, LocalEmbeddings, get_embedding_model
from retriever.errors import InputError
from retriever.query import REGISTRY
from retriever.search import Step, StepResult
from retriever.settings import Settings
from retriever.store.collections import check_embeddings
from retriever.store.records import chunks_of
from retriever.store.tables import Collection

__all__ = [
    "chunking_of",
    "delete_ids",
    "document_ids",
    "embedding_name",
    "get_steps",
    "registered",
    "store_model",
    "unknown",
]


def embedding_name(embeddings: Embeddings) -> str:
    """The identity a collection records for a LangChain `Embeddings` (what `EmbeddingModel.name` holds).

    The packaged model under either backend is `local:all-MiniLM-L6-v2`; an
    `OpenAIEmbeddings` is `openai:<model>`, as `EMBEDDINGS=openai:<model>` names it; any
    other is its class's dotted path, with `:<model>` when it has a `model` or `model_name`.
    """
    if isinstance(embeddings, LocalEmbeddings):
        return LOCAL_MODEL
    kind = type(embeddings)
    model = next(
        (value for attr in ("model", "model_name") if isinstance(value := getattr(embeddings, attr, None), str)), None
    )
    if kind.__module__.startswith("langchain_openai") and model:
        return f"openai:{model}"
    path = f"{kind.__module__}.{kind.__qualname__}"
    return f"{path}:{model}" if model else path


def store_model(embedding: Embeddings | None, settings: Settings, name: str | None = None) -> EmbeddingModel:
    """The configured model (EMBEDDINGS) for None; else `embedding` as is, named `name` or `embedding_name`."""
    if embedding is None:
        return get_embedding_model(settings)
    if not isinstance(embedding, Embeddings):
        raise InputError(f"embedding must be a LangChain Embeddings or None, got {type(embedding).__name__}")
    return EmbeddingModel(name or embedding_name(embedding), embedding)


def chunking_of(chunking: ChunkingConfig | bool | None) -> ChunkingConfig | None:
    """None or False: one chunk per document; True: ingest's default chunking; else the given one."""
    if chunking is True:
        return ChunkingConfig()
    if chunking is None or chunking is False or isinstance(chunking, ChunkingConfig):
        return chunking or None
    raise InputError(f"chunking must be a ChunkingConfig, True or False, got {chunking!r}")


def unknown(options: dict[str, Any]) -> None:
    """Refuse keywords a method does not take (`TypeError`, as Python does)."""
    if options:
        raise TypeError(f"unknown arguments: {', '.join(sorted(options))}")


def document_ids(documents: Sequence[Document], ids: Sequence[str] | None) -> list[str]:
    """The id of each document: `ids` first (LangChain's precedence), else its own, else a new UUID."""
    if ids is not None and len(ids) != len(documents):
        raise InputError(f"{len(ids)} ids for {len(documents)} documents: give one id per document")
    given = list(ids) if ids is not None else [document.id for document in documents]
    return [str(uuid.uuid4()) if document_id is None else document_id for document_id in given]


def delete_ids(ids: Iterable[str] | None, options: dict[str, Any]) -> list[str]:
    """The ids to delete; deleting without ids (everything, in LangChain's words) is `delete_collection`'s job."""
    unknown(options)
    if ids is None:
        raise InputError("give the ids of the documents to delete (delete_collection() drops them all)")
    return list(ids)


def registered(collection_name: str, model_name: str | None = None) -> Generator[Step, StepResult, Collection | None]:
    """The collection's registry row, None when it does not exist (yet); `EmbeddingMismatch` when it was
    made by another model than `model_name`."""
    found = (yield Step([(REGISTRY, {"name": collection_name})])).rows
    collection = Collection(*found[0][:-1]) if found else None
    if collection is not None and model_name is not None:
        check_embeddings(collection, model_name)
    return collection


def get_steps(collection_name: str, ids: Sequence[str]) -> Generator[Step, StepResult, list[Document]]:
    """`get_by_ids`: the chunks of these documents, in id then chunk order (none when there is no collection)."""
    collection = yield from registered(collection_name)
    if collection is None or not ids:
        return []
    rows = (yield Step([chunks_of(collection, ids)])).rows
    return [
        Document(id=document_id, page_content=content, metadata=metadata) for document_id, content, metadata in rows
    ]
