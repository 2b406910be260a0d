"""The ONNX graph of the packaged model: exported once from its own weights, cached in `HYBRID_RAG_HOME`.

The graph is the whole sentence-transformers pipeline (BERT with eager attention, mean pooling over
the attention mask, L2 normalisation), traced by torch's exporter (`torch.onnx.export(dynamo=True)`, which needs `onnx`
and `onnxscript`) with batch and sequence length left dynamic, then rewritten by onnxscript's ONNX Runtime
fusions (`optimize_for_ort`): each layer's attention becomes one `Attention` operator (Q, K and V in one
matrix product), residual + LayerNorm a `SkipLayerNormalization`, bias + GELU a `BiasGelu`, all float32, so
the vectors are unchanged. Inputs `input_ids`, `attention_mask`, `token_type_ids` (int64, batch × tokens);
output `sentence_embedding` (float32, batch × 384).

Exporting imports torch (seconds) and takes about 30 s on two cores. `make install` (and the Dockerfile)
does it once into the environment's `share/hybrid-rag/onnx` (`python -m retriever.onnx_export`), where
every home finds it; without that, the first use exports into `HYBRID_RAG_HOME/cache/onnx`, and every
later process loads the cached file. The file name carries a key over the model files' identity and
the versions of everything that shapes or reads the graph, so an upgrade exports afresh rather than
reusing a stale graph. Nothing is downloaded.

Two processes exporting at once each write their own temporary file and rename it into place
(`os.replace` is atomic on POSIX), so the cache never holds a half-written graph. Before the rename
the graph is run on inputs of mixed lengths and checked against torch on the same token ids.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from retriever.errors import ConfigurationError
from retriever.local_model import PackagedModel, distribution_version, missing_extra, packaged_model

__all__ = ["EXPORT_RECIPE", "INSTALLED_FOLDER", "cached_graph", "export_graph", "graph_key", "graph_name"]

log = logging.getLogger(__name__)

# Bump when the export below changes what it writes.
EXPORT_RECIPE = "sentence-transformers-pipeline/dynamo/eager-attention/ort-fusions/v2"
# Where `make install` puts the graph: beside the environment's packages, shared by every HYBRID_RAG_HOME.
INSTALLED_FOLDER = Path(sys.prefix) / "share" / "hybrid-rag" / "onnx"
_SHAPERS = ("torch", "onnx", "onnxscript", "transformers", "sentence-transformers", "onnxruntime")
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_CHECK_TEXTS = ("", "a question?", "Ünïcödé — 日本語のテキスト 🙂", "A longer sentence. " * 200)


def graph_key(model: PackagedModel) -> str:
    """sha256 hex naming the cached graph: recipe, model files, exporter and runtime versions."""
    versions = " ".join(f"{name}={distribution_version(name)}" for name in _SHAPERS)
    return hashlib.sha256(f"{EXPORT_RECIPE}\0{model.identity()}\0{versions}".encode()).hexdigest()


def graph_name(model: PackagedModel) -> str:
    """The graph's file name: `all-MiniLM-L6-v2-<24 hex digits of graph_key>.onnx`."""
    return f"all-MiniLM-L6-v2-{graph_key(model)[:24]}.onnx"


def cached_graph(model: PackagedModel, folder: Path, installed: Path | None = INSTALLED_FOLDER) -> Path:
    """The graph's path: in `installed` when `make install` put it there, else under `folder`, exported first if absent.

    Raises `ConfigurationError` when it must be exported and torch, sentence-transformers, onnx or
    onnxscript is missing, or when the exported graph disagrees with torch.
    """
    name = graph_name(model)
    if installed is not None and (installed / name).is_file():
        return installed / name
    path = folder / name
    if path.is_file():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    log.warning("exporting all-MiniLM-L6-v2 to ONNX once (about 30 s); cached as %s", path)
    handle, name = tempfile.mkstemp(dir=folder, prefix=f"{path.stem}.", suffix=".partial")
    os.close(handle)
    partial = Path(name)
    try:
        export_graph(model, partial)
        partial.chmod(0o644)  # mkstemp's 0600 would hide the cache from other users of a shared home
        with partial.open("rb") as written:
            os.fsync(written.fileno())
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def export_graph(model: PackagedModel, target: Path) -> None:
    """Export the pipeline from the packaged weights into one self-contained `.onnx` file, then check it."""
    try:
        import onnxscript  # noqa: F401  (the exporter's dependency: fail here with the extra's name)
        import torch
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging
    except ImportError:
        raise missing_extra() from None
    transformers_logging.disable_progress_bar()
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # "torchvision is not installed" notices
    # Eager attention traces to plain MatMul/Softmax, a pattern onnxscript's fusions turn into one Attention.
    eager = {"attn_implementation": "eager"}
    pipeline = SentenceTransformer(str(model.folder), device="cpu", model_kwargs=eager).eval()

    class Pipeline(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.pipeline = pipeline

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            features = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
            return self.pipeline(features)["sentence_embedding"]

    graph = Pipeline().eval()
    sample = _token_ids(pipeline, ["a sample", "a longer sample, with more words in it"])
    dynamic = {0: torch.export.Dim("batch"), 1: torch.export.Dim("sequence")}
    with torch.no_grad(), warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")  # the exporter's deprecation and tracing notices
        program = torch.onnx.export(
            graph,
            tuple(torch.from_numpy(sample[name]) for name in _INPUTS),
            dynamo=True,
            input_names=list(_INPUTS),
            output_names=["sentence_embedding"],
            dynamic_shapes=(dynamic, dynamic, dynamic),
            verbose=False,
        )
        program.model, fused = _fuse(program.model)
        program.save(str(target), external_data=False)
    log.info("ONNX Runtime fusions applied: %s", {name: count for name, count in fused.items() if count})
    _check(graph, target, _token_ids(pipeline, list(_CHECK_TEXTS)))


def _fuse(model: Any) -> tuple[Any, dict[str, int]]:
    """onnxscript's transformer fusions for ONNX Runtime's CPU kernels: (the rewritten `onnx_ir.Model`, counts).

    A pattern it does not recognise stays as traced (correct, only slower); `_check` runs on the result.
    """
    try:
        from onnxscript.rewriter.ort_fusions import optimize_for_ort
    except ImportError:  # an onnxscript older than the extra asks for
        raise missing_extra() from None
    return optimize_for_ort(model)


def _token_ids(pipeline: Any, texts: list[str]) -> dict[str, np.ndarray]:
    """sentence-transformers' own tokenisation (256-token cut, padding to the longest), as int64 arrays."""
    preprocess = getattr(pipeline, "preprocess", None) or pipeline.tokenize  # `tokenize` before 6.0
    features = preprocess(texts)
    return {name: features[name].numpy().astype(np.int64) for name in _INPUTS}


def _check(graph: Any, path: Path, inputs: dict[str, np.ndarray]) -> None:
    """The exported graph gives torch's vectors on a padded batch of mixed lengths, or ConfigurationError."""
    import onnxruntime
    import torch

    with torch.no_grad():
        expected = graph(*(torch.from_numpy(inputs[name]) for name in _INPUTS)).numpy()
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, inputs)[0]
    cosine = np.einsum("ij,ij->i", expected, got)
    if got.shape != expected.shape or float(cosine.min()) < 0.9999:
        raise ConfigurationError(f"the exported ONNX graph disagrees with torch (cosine {cosine.min():.6f})")


if __name__ == "__main__":  # `python -m retriever.onnx_export [FOLDER]`: the install step (Makefile, Dockerfile)
    logging.basicConfig(format="%(message)s")
    log.setLevel(logging.INFO)
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else INSTALLED_FOLDER
    print(cached_graph(packaged_model(), target, installed=None))
