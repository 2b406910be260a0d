"""The packaged model on sentence-transformers and torch: the reference the ONNX backend is held to.

Selected with `EMBEDDINGS=local:torch`. Importing this module is cheap; creating the object imports
torch and sentence-transformers (seconds).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from retriever.local_model import LocalEmbeddings, missing_extra, packaged_model

__all__ = ["SentenceTransformerEmbeddings"]


class SentenceTransformerEmbeddings(LocalEmbeddings):
    """all-MiniLM-L6-v2 through `SentenceTransformer.encode` on the CPU."""

    def __init__(self, batch_size: int = 64) -> None:
        model = packaged_model()
        try:
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as transformers_logging
        except ImportError:
            raise missing_extra() from None
        transformers_logging.disable_progress_bar()  # no "Loading weights" bar on every start
        self._model = SentenceTransformer(str(model.folder), device="cpu")
        self._batch_size = batch_size
        self.max_seq_length = int(self._model.max_seq_length)

    def embed_array(self, texts: Sequence[str]) -> np.ndarray:
        return self._model.encode(
            list(texts),
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        ).astype(np.float32, copy=False)

    def token_count(self, text: str) -> int:
        return len(self._model.tokenizer(text, verbose=False)["input_ids"])
