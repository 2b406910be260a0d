"""Embedding models behind LangChain's `Embeddings` interface, loaded once per process.

`EMBEDDINGS` chooses one: `local:torch` runs the packaged all-MiniLM-L6-v2 on sentence-transformers
(`retriever.torch_embeddings`), `local:onnx` the same model on ONNX Runtime (`retriever.onnx_embeddings`:
no torch at run time), `local` the one named by `DEFAULT_LOCAL_BACKEND`, `openai:<model>` an
OpenAI-compatible server. Both local backends give the same vectors (cosine ≥ 0.999 to each other) and
store the same model name, `local:all-MiniLM-L6-v2`, so a collection built with either is searched with either.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from langchain_core.embeddings import Embeddings

from retriever.errors import ConfigurationError
from retriever.local_model import LocalEmbeddings
from retriever.onnx_embeddings import OnnxEmbeddings
from retriever.settings import Settings
from retriever.torch_embeddings import SentenceTransformerEmbeddings

__all__ = ["EmbeddingModel", "LocalEmbeddings", "get_embedding_model", "model_named"]

LOCAL_MODEL = "local:all-MiniLM-L6-v2"
# What `EMBEDDINGS=local` runs: ONNX Runtime gives sentence-transformers' vectors at least as fast on ingest
# batches, embeds a question in a few milliseconds, and a process using it starts without importing torch
# (README, Performance). "torch" here would make sentence-transformers the default again.
DEFAULT_LOCAL_BACKEND = "onnx"


class EmbeddingModel:
    """A configured model: its LangChain object, the identity stored with collections, its dimensions."""

    def __init__(self, name: str, embeddings: Embeddings | Callable[[], Embeddings]) -> None:
        self.name = name
        self._embeddings = embeddings
        self._dimensions: int | None = None
        self._lock = threading.Lock()

    @property
    def embeddings(self) -> Embeddings:
        """The LangChain object, created on first use: an unchanged re-ingest never loads the model."""
        if not isinstance(self._embeddings, Embeddings):
            with self._lock:
                if not isinstance(self._embeddings, Embeddings):
                    self._embeddings = self._embeddings()
        return self._embeddings

    def load(self) -> EmbeddingModel:
        """Load the model now (not inside a timed call); returns self."""
        _ = self.embeddings
        return self

    @property
    def dimensions(self) -> int:
        """Vector size, probed once (OpenAI models differ by name and options)."""
        if self._dimensions is None:
            self._dimensions = len(self.embeddings.embed_query("dimension probe"))
        return self._dimensions

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Embed a batch of chunk texts into a float32 matrix."""
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        if isinstance(self.embeddings, LocalEmbeddings):
            return self.embeddings.embed_array(texts)
        return np.asarray(self.embeddings.embed_documents(list(texts)), dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        """Embed one query."""
        if isinstance(self.embeddings, LocalEmbeddings):
            return self.embeddings.embed_array([text])[0]
        return np.asarray(self.embeddings.embed_query(text), dtype=np.float32)


def _openai(model: str, settings: Settings) -> Embeddings:
    try:
        from langchain_openai import OpenAIEmbeddings
    except ImportError:
        raise ConfigurationError(
            "EMBEDDINGS=openai:* needs the 'openai' extra: pip install 'hybrid-rag[openai]'"
        ) from None
    return OpenAIEmbeddings(
        model=model,
        api_key=settings.openai_api_key or os.environ.get("OPENAI_API_KEY") or "unset",  # type: ignore[arg-type]
        base_url=settings.openai_base_url,
        check_embedding_ctx_length=settings.openai_check_ctx_length,
    )


@functools.cache
def _load(spec: str, base_url: str | None, api_key: str | None, check_ctx: bool, home: Path) -> EmbeddingModel:
    if spec == "local":
        spec = f"local:{DEFAULT_LOCAL_BACKEND}"
    if spec == "local:onnx":
        return EmbeddingModel(LOCAL_MODEL, functools.partial(OnnxEmbeddings, home / "cache" / "onnx"))
    if spec == "local:torch":
        return EmbeddingModel(LOCAL_MODEL, SentenceTransformerEmbeddings)
    if spec.startswith("openai:") and spec.removeprefix("openai:").strip():
        model = spec.removeprefix("openai:").strip()
        settings = Settings(openai_base_url=base_url, openai_api_key=api_key, openai_check_ctx_length=check_ctx)
        return EmbeddingModel(f"openai:{model}", functools.partial(_openai, model, settings))
    raise ConfigurationError(
        f"EMBEDDINGS={spec!r} is not supported: use 'local', 'local:onnx', 'local:torch' or 'openai:<model>'"
    )


def get_embedding_model(settings: Settings) -> EmbeddingModel:
    """The configured embedding model, created once per process and configuration."""
    return _load(
        settings.embeddings.strip(),
        settings.openai_base_url,
        settings.openai_api_key,
        settings.openai_check_ctx_length,
        settings.data_home,
    )


def model_named(name: str, settings: Settings) -> EmbeddingModel | None:
    """The model a collection's registry names, if this configuration can make it, else None.

    The configured model; the packaged model (on the configured local backend, else the
    default one); an `openai:<model>` when an OpenAI key or base URL is configured. Searches
    use it to embed a query for a collection re-embedded by another process.
    """
    configured = get_embedding_model(settings)
    if name == configured.name:
        return configured
    if name == LOCAL_MODEL:
        return get_embedding_model(dataclasses.replace(settings, embeddings="local"))
    has_openai = settings.openai_api_key or settings.openai_base_url or os.environ.get("OPENAI_API_KEY")
    if name.startswith("openai:") and has_openai:
        return get_embedding_model(dataclasses.replace(settings, embeddings=name))
    return None
