"""The vector store's retriever: LangChain's `VectorStoreRetriever`, whose default search is the hybrid one."""

from __future__ import annotations

from typing import Any, ClassVar

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.vectorstores import VectorStoreRetriever

__all__ = ["HybridStoreRetriever"]


class HybridStoreRetriever(VectorStoreRetriever):
    """`search_type` "hybrid" (the default) runs the fused query (`HybridVectorStore.hybrid_search`) with
    `search_kwargs` `k`, `mode`, `filter`, `weights`, `rrf_k`, `candidates`, `fusion`, `collapse`, `probes`;
    "similarity", "mmr" and "similarity_score_threshold" are LangChain's."""

    search_type: str = "hybrid"
    allowed_search_types: ClassVar[tuple[str, ...]] = ("hybrid", "similarity", "similarity_score_threshold", "mmr")

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        if self.search_type == "hybrid":
            return self.vectorstore.hybrid_search(query, **(self.search_kwargs | kwargs))  # type: ignore[attr-defined]
        return super()._get_relevant_documents(query, run_manager=run_manager, **kwargs)

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        if self.search_type == "hybrid":
            search = self.vectorstore.ahybrid_search  # type: ignore[attr-defined]
            return await search(query, **(self.search_kwargs | kwargs))
        return await super()._aget_relevant_documents(query, run_manager=run_manager, **kwargs)
