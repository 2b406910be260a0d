"""The local model's two backends and the ONNX graph cache, without loading either backend.

The vectors themselves (ONNX against sentence-transformers on real chunks) are checked in
tests/integration/test_onnx_embeddings.py.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import click
import numpy as np
import pytest

import retriever.onnx_export as onnx_export
from bench.embed import embed_table, run_embed_bench, spread
from bench.embed_sweep import sweep_configurations
from retriever.embeddings import get_embedding_model
from retriever.errors import ConfigurationError
from retriever.local_model import LocalEmbeddings, PackagedModel, packaged_model
from retriever.settings import Settings


class CountingEmbeddings(LocalEmbeddings):
    """A stand-in backend: one-hot vectors by text length, and a count of the texts it saw."""

    max_seq_length = 256

    def __init__(self) -> None:
        self.seen = 0

    def embed_array(self, texts: Sequence[str]) -> np.ndarray:
        self.seen += len(texts)
        vectors = np.zeros((len(texts), 384), dtype=np.float32)
        vectors[np.arange(len(texts)), [len(text) % 384 for text in texts]] = 1.0
        return vectors

    def token_count(self, text: str) -> int:
        return len(text.split()) + 2


def test_every_local_backend_stores_the_same_model_name(tmp_path: Path) -> None:
    names = {
        get_embedding_model(Settings(embeddings=spec, home=tmp_path)).name
        for spec in ("local", "local:onnx", "local:torch")
    }

    assert names == {"local:all-MiniLM-L6-v2"}  # collections built with either are searched with either


def test_an_unknown_local_backend_is_a_configuration_error_naming_the_choices(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="'local', 'local:onnx', 'local:torch'"):
        get_embedding_model(Settings(embeddings="local:tensorflow", home=tmp_path))


def test_the_packaged_model_is_read_from_its_sentence_transformers_files() -> None:
    model = packaged_model()

    assert (model.max_seq_length, model.dimensions) == (256, 384)
    assert model.tokenizer_file.is_file()


def fake_model(folder: Path) -> PackagedModel:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.safetensors").write_bytes(b"weights")
    return PackagedModel(folder=folder, max_seq_length=256, dimensions=384)


def test_the_graph_key_changes_with_the_model_files_and_the_exporter_versions(tmp_path, monkeypatch) -> None:
    model = fake_model(tmp_path / "model")
    first = onnx_export.graph_key(model)

    (model.folder / "model.safetensors").write_bytes(b"other weights")
    second = onnx_export.graph_key(model)
    monkeypatch.setattr(onnx_export, "distribution_version", lambda name: "99.0")
    third = onnx_export.graph_key(model)

    assert len({first, second, third}) == 3


def slow_export(model: PackagedModel, target: Path) -> None:
    """Writes a 2 MB "graph" in 64 pieces, slowly enough for a reader to look in between."""
    with target.open("wb") as out:
        for _ in range(64):
            out.write(b"x" * 32_768)
            out.flush()
            time.sleep(0.002)


def test_processes_exporting_at_once_never_leave_a_partial_graph_in_the_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(onnx_export, "export_graph", slow_export)
    model, cache = fake_model(tmp_path / "model"), tmp_path / "cache"
    path = cache / f"all-MiniLM-L6-v2-{onnx_export.graph_key(model)[:24]}.onnx"
    sizes_seen: list[int] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            if path.exists():
                sizes_seen.append(path.stat().st_size)

    watcher = threading.Thread(target=watch)
    watcher.start()
    results: list[Path] = []
    exporters = [threading.Thread(target=lambda: results.append(onnx_export.cached_graph(model, cache))) for _ in "ab"]
    for thread in exporters:
        thread.start()
    for thread in exporters:
        thread.join()
    done.set()
    watcher.join()

    assert results == [path, path]
    assert sizes_seen and set(sizes_seen) == {64 * 32_768}  # whenever the graph was there, it was whole
    assert sorted(os.listdir(cache)) == [path.name]  # no temporary file left behind


def test_a_failed_export_leaves_nothing_in_the_cache(tmp_path, monkeypatch) -> None:
    def broken(model: PackagedModel, target: Path) -> None:
        target.write_bytes(b"half a graph")
        raise ConfigurationError("the exported ONNX graph disagrees with torch")

    monkeypatch.setattr(onnx_export, "export_graph", broken)

    with pytest.raises(ConfigurationError, match="disagrees"):
        onnx_export.cached_graph(fake_model(tmp_path / "model"), tmp_path / "cache")
    assert os.listdir(tmp_path / "cache") == []


def test_a_cached_graph_is_reused_without_exporting(tmp_path, monkeypatch) -> None:
    model = fake_model(tmp_path / "model")
    monkeypatch.setattr(onnx_export, "export_graph", slow_export)
    first = onnx_export.cached_graph(model, tmp_path)
    monkeypatch.setattr(onnx_export, "export_graph", lambda model, target: pytest.fail("exported twice"))

    assert onnx_export.cached_graph(model, tmp_path) == first


def test_spread_takes_evenly_spaced_items() -> None:
    assert spread([str(i) for i in range(10)], 3) == ["0", "3", "6"]
    assert spread(["a", "b"], 5) == ["a", "b"]


def test_bench_alternates_which_backend_goes_first_and_reports_each_round() -> None:
    models = {"torch": CountingEmbeddings(), "onnx": CountingEmbeddings()}
    chunks, queries = [f"chunk {i}" * i for i in range(300)], ["q1", "q22", "q333"]

    results = run_embed_bench(models, chunks, queries, rounds=3)

    assert [run["first"] for run in results["rounds"]] == ["torch", "onnx", "torch"]
    for run in results["rounds"]:
        assert run["ratio"] == pytest.approx(run["onnx_chunks_per_s"] / run["torch_chunks_per_s"])
        assert run["torch_query_ms"]["p50"] <= run["torch_query_ms"]["p95"]
        assert run["load_start"] >= 0 and run["load_end"] >= 0
    assert results["cosine"] == {"chunks_min": 1.0, "chunks_mean": 1.0, "queries_min": 1.0}
    # warm-up, every chunk in every round, every query once per round and once for the cosine
    assert models["onnx"].seen == 8 + 3 * 300 + 3 * 3 + 3


def test_bench_starts_no_round_past_its_budget_but_always_runs_one() -> None:
    models = {"torch": CountingEmbeddings(), "onnx": CountingEmbeddings()}

    results = run_embed_bench(models, ["a chunk"], ["a query"], rounds=5, budget_s=0.0)

    assert len(results["rounds"]) == 1


def test_bench_refuses_an_empty_sample() -> None:
    with pytest.raises(click.ClickException, match="no chunks or no queries"):
        run_embed_bench({"torch": CountingEmbeddings(), "onnx": CountingEmbeddings()}, [], ["q"])


def test_table_shows_every_round_with_its_load_then_the_medians_and_the_cosines() -> None:
    ms = {"p50": 14.0, "p95": 20.5}
    run = {"torch_chunks_per_s": 20.0, "onnx_chunks_per_s": 45.0, "ratio": 2.25, "load_start": 1.2, "load_end": 1.5}
    results = {
        "chunks": 256,
        "queries": 100,
        "cpus": 2,
        "seconds": 61.0,
        "onnx_settings": {"batch_size": 32, "threads": 0, "optimization": "all"},
        "rounds": [{**run, "first": "torch", "torch_query_ms": ms, "onnx_query_ms": {"p50": 4.0, "p95": 5.5}}],
        "median": {
            "torch_chunks_per_s": 20.0,
            "onnx_chunks_per_s": 45.0,
            "ratio": 2.25,
            "torch_query_p50_ms": 14.0,
            "torch_query_p95_ms": 20.5,
            "onnx_query_p50_ms": 4.0,
            "onnx_query_p95_ms": 5.5,
        },
        "cosine": {"chunks_min": 0.99991, "chunks_mean": 0.99999, "queries_min": 0.99995},
    }

    lines = embed_table(results).splitlines()

    assert "256 chunks" in lines[0] and "100 queries" in lines[0] and "2 CPUs" in lines[0]
    assert lines[3].split() == [
        "1",
        "torch",
        "20.0",
        "45.0",
        "2.25×",
        "14.0",
        "/",
        "20.5",
        "4.0",
        "/",
        "5.5",
        "1.20→1.50",
    ]
    assert lines[4].split() == ["median", "20.0", "45.0", "2.25×", "14.0", "/", "20.5", "4.0", "/", "5.5"]
    assert lines[5].startswith("cosine onnx vs torch: chunks min 0.999910 mean 0.999990, queries min 0.999950")


def test_the_sweep_starts_from_the_defaults_and_varies_one_setting_at_a_time() -> None:
    configurations = sweep_configurations(levels=("basic", "all"), threads=(1,), batch_sizes=(16, 32))

    assert configurations[0] == {"optimization": "all", "threads": 0, "batch_size": 32}
    assert len(configurations) == len({tuple(sorted(c.items())) for c in configurations}) == 4
    for config in configurations[1:]:
        assert sum(config[key] != configurations[0][key] for key in config) == 1


class RecordingEmbeddings(CountingEmbeddings):
    """Counting, and appending its name to a shared log on every call."""

    def __init__(self, name: str, log: list[str]) -> None:
        super().__init__()
        self.name, self.log = name, log

    def embed_array(self, texts: Sequence[str]) -> np.ndarray:
        self.log.append(self.name)
        return super().embed_array(texts)


def test_bench_times_each_backends_queries_in_a_block_not_in_turns() -> None:
    log: list[str] = []
    models = {"torch": RecordingEmbeddings("torch", log), "onnx": RecordingEmbeddings("onnx", log)}

    run_embed_bench(models, ["a chunk"], ["q1", "q2", "q3"], rounds=2)

    # per round: one ingest batch each, then three queries of one backend, then three of the other
    rounds = log[-16:]
    assert rounds[2:8] == ["torch"] * 3 + ["onnx"] * 3
    assert rounds[10:16] == ["onnx"] * 3 + ["torch"] * 3


def test_an_installed_graph_is_used_without_exporting_into_the_home(tmp_path, monkeypatch) -> None:
    model = fake_model(tmp_path / "model")
    installed = tmp_path / "installed"
    installed.mkdir()
    (installed / onnx_export.graph_name(model)).write_bytes(b"the graph make install exported")
    monkeypatch.setattr(onnx_export, "export_graph", lambda model, target: pytest.fail("exported again"))

    found = onnx_export.cached_graph(model, tmp_path / "home" / "cache" / "onnx", installed=installed)

    assert found == installed / onnx_export.graph_name(model)
    assert not (tmp_path / "home").exists()
