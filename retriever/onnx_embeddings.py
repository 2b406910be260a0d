"""The packaged model on ONNX Runtime: the default local backend (`EMBEDDINGS=local`).

Runs the graph exported by `retriever.onnx_export` (by `make install` into the environment, else on first
use into `HYBRID_RAG_HOME/cache/onnx`) with the model's own `tokenizer.json` through `tokenizers`; at run
time it imports neither torch nor sentence-transformers, so a process that embeds a query starts in about
a second.

Texts are tokenised as sentence-transformers tokenises them (cut at the model's `max_seq_length`,
256 tokens, [CLS] and [SEP] included), sorted by length and run in batches padded to their
longest member; the attention mask keeps padding out of the mean, so a row's vector does not
depend on its batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from retriever.errors import ConfigurationError
from retriever.local_model import LocalEmbeddings, missing_extra, packaged_model
from retriever.onnx_export import cached_graph

__all__ = ["DEFAULT_BATCH_SIZE", "DEFAULT_THREADS", "OPTIMIZATION_LEVELS", "OnnxEmbeddings"]

# Chosen by `hybrid-rag bench embed --sweep` on this project's 2-core machine (README, Performance).
DEFAULT_BATCH_SIZE = 32
DEFAULT_THREADS = 0  # onnxruntime's default: one intra-op thread per physical core
OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")


class OnnxEmbeddings(LocalEmbeddings):
    """all-MiniLM-L6-v2 as an ONNX Runtime session on the CPU; `embed_array` is safe to call from many threads.

    `cache_folder` holds the exported graph when the install did not (exported there on first use).
    `threads` is onnxruntime's intra-op thread count (0: one per physical core); `optimization` one of
    `OPTIMIZATION_LEVELS`.
    Raises `ConfigurationError` when the `local` extra is missing or the export fails its check.
    """

    def __init__(
        self,
        cache_folder: Path,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        threads: int = DEFAULT_THREADS,
        optimization: str = "all",
    ) -> None:
        if optimization not in OPTIMIZATION_LEVELS or batch_size < 1 or threads < 0:
            raise ConfigurationError(f"invalid ONNX settings: {optimization=}, {batch_size=}, {threads=}")
        model = packaged_model()
        try:
            import onnxruntime
            from tokenizers import Tokenizer
        except ImportError:
            raise missing_extra() from None
        graph = cached_graph(model, cache_folder)
        self._tokenizer = Tokenizer.from_file(str(model.tokenizer_file))
        self._pad_id = int((self._tokenizer.padding or {}).get("pad_id", 0))
        self._tokenizer.no_padding()  # each batch is padded below, to its own longest text
        self._tokenizer.enable_truncation(model.max_seq_length)
        self._counter: Any = None
        self._session = onnxruntime.InferenceSession(
            str(graph), _session_options(onnxruntime, threads, optimization), providers=["CPUExecutionProvider"]
        )
        self.max_seq_length = model.max_seq_length
        self.dimensions = model.dimensions
        self.batch_size = batch_size
        self.threads = threads
        self.optimization = optimization

    def embed_array(self, texts: Sequence[str]) -> np.ndarray:
        vectors = np.empty((len(texts), self.dimensions), dtype=np.float32)
        if not texts:
            return vectors
        ids = [encoding.ids for encoding in self._tokenizer.encode_batch(list(texts))]
        order = sorted(range(len(ids)), key=lambda row: len(ids[row]))
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            vectors[rows] = self._run([ids[row] for row in rows])
        return vectors

    def _run(self, batch: list[list[int]]) -> np.ndarray:
        """One forward pass over token id lists, padded to the longest: (len(batch), 384) float32."""
        width = max(len(ids) for ids in batch)
        input_ids = np.full((len(batch), width), self._pad_id, dtype=np.int64)
        attention_mask = np.zeros((len(batch), width), dtype=np.int64)
        for row, ids in enumerate(batch):
            input_ids[row, : len(ids)] = ids
            attention_mask[row, : len(ids)] = 1
        feeds = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": np.zeros_like(input_ids)}
        return self._session.run(["sentence_embedding"], feeds)[0]

    def token_count(self, text: str) -> int:
        if self._counter is None:  # a copy that does not truncate; a race only builds it twice
            from tokenizers import Tokenizer

            counter = Tokenizer.from_str(self._tokenizer.to_str())
            counter.no_truncation()
            self._counter = counter
        return len(self._counter.encode(text).ids)


def _session_options(onnxruntime: Any, threads: int, optimization: str) -> Any:
    levels = onnxruntime.GraphOptimizationLevel
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = {
        "disable": levels.ORT_DISABLE_ALL,
        "basic": levels.ORT_ENABLE_BASIC,
        "extended": levels.ORT_ENABLE_EXTENDED,
        "all": levels.ORT_ENABLE_ALL,
    }[optimization]
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1  # the graph is one chain of layers: nothing runs beside it
    options.log_severity_level = 3  # errors only: no notices on a CLI's stderr
    return options
