"""The ONNX Runtime backend gives sentence-transformers' vectors, is the default, and runs without torch.

Real chunks are SciFact abstracts cut as `hybrid-rag ingest` cuts them (title heading each chunk); the
graph is the one `make install` exported into the environment (else exported once into the session's
HYBRID_RAG_HOME), shared by every test that embeds.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from bench.cli import bench as bench_group
from ingest import ChunkingConfig, SourceDocument, iter_documents, split_document
from retriever import Engine, SearchParams
from retriever.embeddings import EmbeddingModel, get_embedding_model
from retriever.local_model import LocalEmbeddings
from retriever.onnx_embeddings import OnnxEmbeddings
from retriever.settings import Settings
from retriever.torch_embeddings import SentenceTransformerEmbeddings

REPO = Path(__file__).resolve().parents[2]
SCIFACT = REPO.parent / "shared" / "datasets" / "scifact" / "corpus.jsonl.gz"
LONG = "The trial enrolled patients with chronic kidney disease and measured their outcomes. " * 60
EDGE_CASES = [
    "",
    LONG,
    "Über die Wirkung von Vitamin D auf Atemwegsinfektionen bei Kindern: eine Übersicht (ß, é, ñ).",
    "维生素D与儿童呼吸道感染的关系 — ビタミンDと感染症 🧪",
    "p53",
]


def onnx_settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, embeddings="local:onnx")


@pytest.fixture(scope="module")
def onnx(settings: Settings) -> LocalEmbeddings:
    embeddings = get_embedding_model(onnx_settings(settings)).embeddings
    assert isinstance(embeddings, LocalEmbeddings)
    return embeddings


@pytest.fixture(scope="module")
def torch_backend() -> SentenceTransformerEmbeddings:
    return SentenceTransformerEmbeddings()


@pytest.fixture(scope="module")
def scifact_chunks() -> list[str]:
    if not SCIFACT.is_file():
        pytest.skip(f"the shared SciFact corpus is not at {SCIFACT}")
    chunks = []
    for document in iter_documents([SCIFACT], lambda skipped: None):
        chunks.extend(chunk.content for chunk in split_document(document, ChunkingConfig()))
    return chunks[:: max(1, len(chunks) // 300)][:300]


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", a, b)


def test_local_onnx_selects_onnx_runtime_and_local_torch_sentence_transformers(settings) -> None:
    torch_settings = dataclasses.replace(settings, embeddings="local:torch")

    assert type(get_embedding_model(onnx_settings(settings)).embeddings) is OnnxEmbeddings
    assert type(get_embedding_model(torch_settings).embeddings) is SentenceTransformerEmbeddings


def test_onnx_vectors_match_sentence_transformers_on_real_chunks(onnx, torch_backend, scifact_chunks) -> None:
    assert len(scifact_chunks) == 300
    assert all("\n" in chunk for chunk in scifact_chunks)  # each headed by its title

    similarity = cosine(onnx.embed_array(scifact_chunks), torch_backend.embed_array(scifact_chunks))

    assert similarity.min() >= 0.999, scifact_chunks[int(similarity.argmin())]


def test_onnx_vectors_match_on_empty_long_and_non_ascii_texts(onnx, torch_backend) -> None:
    vectors = onnx.embed_array(EDGE_CASES)

    assert vectors.shape == (len(EDGE_CASES), 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert cosine(vectors, torch_backend.embed_array(EDGE_CASES)).min() >= 0.999


def test_texts_are_cut_at_256_tokens_as_sentence_transformers_cuts_them(onnx, torch_backend) -> None:
    assert onnx.max_seq_length == torch_backend.max_seq_length == 256
    assert onnx.token_count(LONG) == torch_backend.token_count(LONG) > 256

    longer = onnx.embed_array([LONG, LONG + " Words past the window change nothing."])

    np.testing.assert_allclose(longer[0], longer[1], atol=1e-6)


def test_a_rows_vector_does_not_depend_on_the_batch_it_is_padded_in(onnx) -> None:
    alone = np.stack([onnx.embed_array([text])[0] for text in EDGE_CASES])

    mixed = onnx.embed_array(EDGE_CASES * 3)

    for copy in range(3):
        np.testing.assert_allclose(mixed[copy * len(EDGE_CASES) : (copy + 1) * len(EDGE_CASES)], alone, atol=2e-5)


def test_threads_embedding_at_once_each_get_their_own_vectors(onnx) -> None:
    texts = [f"question {i}: " + "why do cells divide? " * i for i in range(1, 9)]
    expected = onnx.embed_array(texts)

    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(lambda text: onnx.embed_array([text])[0], texts * 4))

    np.testing.assert_allclose(np.stack(got), np.concatenate([expected] * 4), atol=2e-5)


def test_embedding_a_query_on_onnx_imports_neither_torch_nor_sentence_transformers(settings, onnx) -> None:
    code = (
        "import json, sys\n"
        "from retriever.embeddings import get_embedding_model\n"
        "from retriever.settings import Settings\n"
        "vector = get_embedding_model(Settings.from_env()).embed_query('does vitamin D prevent infections?')\n"
        "heavy = [m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules]\n"
        "print(json.dumps({'dimensions': len(vector), 'heavy': heavy}))\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HYBRID_RAG_HOME": str(settings.data_home), "EMBEDDINGS": "local:onnx"}

    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False
    )

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"dimensions": 384, "heavy": []}
    assert done.stderr == ""  # the graph was cached: no export, no notices


def test_a_collection_ingested_with_torch_is_searched_with_onnx(settings, collection_name, onnx, torch_backend) -> None:
    documents = [
        SourceDocument("vitamin", "Vitamin D supplements reduce respiratory infections in children.", "", "t", {}),
        SourceDocument("postgres", "PostgreSQL stores dense vectors with the pgvector extension.", "", "t", {}),
        SourceDocument("ribosome", "The ribosome translates messenger RNA into proteins.", "", "t", {}),
    ]
    built = EmbeddingModel("local:all-MiniLM-L6-v2", torch_backend)
    Engine(settings, model=built).ingest(collection_name, documents, ChunkingConfig())

    searched = EmbeddingModel("local:all-MiniLM-L6-v2", onnx)
    result = Engine(settings, model=searched).search(
        collection_name, "which database extension holds embeddings?", SearchParams(k=3, mode="vector")
    )

    assert result.hits[0].document_id == "postgres"


def write_beir(folder: Path) -> Path:
    """A small BEIR collection: six abstracts, two judged questions."""
    (folder / "qrels").mkdir(parents=True)
    records = [
        {"_id": f"d{i}", "title": f"Study {i}", "text": f"Finding number {i} about cells and vitamins. " * (i + 1)}
        for i in range(6)
    ]
    (folder / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    queries = [{"_id": "q1", "text": "do vitamins help cells?"}, {"_id": "q2", "text": "what did study 3 find?"}]
    (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries), encoding="utf-8")
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td3\t1\n", encoding="utf-8")
    return folder


def test_bench_embed_prints_each_round_with_its_load_the_medians_and_the_cosine(settings, onnx, tmp_path) -> None:
    dataset = write_beir(tmp_path / "beir")

    result = CliRunner().invoke(
        bench_group, ["embed", str(dataset), "--chunks", "4", "--queries", "2", "--rounds", "2", "--json"]
    )

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["chunks"], report["queries"]) == (4, 2)
    assert [run["first"] for run in report["rounds"]] == ["torch", "onnx"]
    assert all(run["load_start"] >= 0 and run["onnx_chunks_per_s"] > 0 for run in report["rounds"])
    assert report["cosine"]["chunks_min"] >= 0.999 and report["cosine"]["queries_min"] >= 0.999


def test_the_graph_runs_each_layers_attention_as_one_fused_operator(settings, onnx) -> None:
    import onnx as onnx_format

    from retriever.local_model import packaged_model
    from retriever.onnx_export import cached_graph

    graph = onnx_format.load(str(cached_graph(packaged_model(), settings.data_home / "cache" / "onnx")))
    operators = [node.op_type for node in graph.graph.node]

    assert operators.count("Attention") == 6  # one per layer of all-MiniLM-L6-v2
    assert operators.count("SkipLayerNormalization") == 12 and operators.count("BiasGelu") == 6
    assert "Softmax" not in operators
