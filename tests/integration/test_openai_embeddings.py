"""EMBEDDINGS=openai:<model> talks to any OpenAI-compatible server through langchain-openai."""

from __future__ import annotations

import base64
import dataclasses
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from ingest import ChunkingConfig, SourceDocument
from retriever import Engine
from retriever.connections import open_primary
from retriever.embeddings import EmbeddingModel, get_embedding_model
from retriever.errors import EmbeddingMismatch
from retriever.results import SearchParams
from retriever.settings import Settings
from retriever.store.collections import get_collection

PASSAGES = {
    "kettle": "An electric kettle boils water with a heating element and switches off at one hundred degrees.",
    "glacier": "Glaciers form where more snow falls each winter than melts each summer, compacting into ice.",
    "sonnet": "A sonnet is a poem of fourteen lines, often in iambic pentameter with a closing couplet.",
}


class FakeOpenAI:
    """POST /v1/embeddings in OpenAI's request and response shapes, answered by the local model."""

    def __init__(self, model: EmbeddingModel) -> None:
        self.requests: list[dict] = []
        self.authorizations: list[str | None] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append(body)
                fake.authorizations.append(self.headers.get("Authorization"))
                if self.path != "/v1/embeddings" or not all(isinstance(text, str) for text in body["input"]):
                    self.send_error(400, "expected /v1/embeddings with a list of strings")
                    return
                vectors = model.embed_documents(body["input"])
                base64_wanted = body.get("encoding_format") == "base64"
                data = [
                    {
                        "object": "embedding",
                        "index": index,
                        "embedding": base64.b64encode(vector.astype("<f4").tobytes()).decode()
                        if base64_wanted
                        else vector.tolist(),
                    }
                    for index, vector in enumerate(vectors)
                ]
                payload = json.dumps(
                    {
                        "object": "list",
                        "data": data,
                        "model": body["model"],
                        "usage": {"prompt_tokens": 1, "total_tokens": 1},
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def texts(self) -> list[str]:
        return [text for request in self.requests for text in request["input"]]


@pytest.fixture
def fake_openai(local_model) -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI(local_model)
    thread = threading.Thread(target=fake.server.serve_forever, daemon=True)
    thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


@pytest.fixture
def openai_model(fake_openai, monkeypatch) -> EmbeddingModel:
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    return get_embedding_model(
        Settings(embeddings="openai:test-model", openai_base_url=fake_openai.base_url, openai_api_key="x")
    )


def test_openai_model_is_named_after_the_spec_and_probes_its_dimensions(fake_openai, openai_model):
    assert openai_model.name == "openai:test-model"
    assert openai_model.dimensions == 384
    assert fake_openai.requests[-1]["model"] == "test-model"
    assert fake_openai.authorizations[-1] == "Bearer x"


def test_ingest_and_search_go_through_the_openai_compatible_server(
    settings, collection_name, fake_openai, openai_model, local_model
):
    documents = [SourceDocument(name, text, None, "test", {}) for name, text in PASSAGES.items()]
    report = Engine(settings, model=openai_model).ingest(collection_name, documents, ChunkingConfig())
    assert report.new_chunks == 3
    assert all(text in fake_openai.texts() for text in PASSAGES.values())

    query = "how are rivers of ice made?"
    with open_primary(settings) as conn:
        result = Engine(settings, model=openai_model).search(collection_name, query, SearchParams(k=3), conn=conn)
        stored = get_collection(conn, collection_name)
        vector = conn.execute(
            f'SELECT embedding FROM hybrid_rag."{collection_name}" WHERE id = %s', ("glacier:0",)
        ).fetchone()[0]
    assert fake_openai.texts()[-1] == query
    assert result.hits[0].document_id == "glacier"
    assert result.hits[0].vector_rank == 1
    assert (stored.embedding_model, stored.dimensions) == ("openai:test-model", 384)
    # the server's vectors are what got stored
    np.testing.assert_allclose(vector, local_model.embed_documents([PASSAGES["glacier"]])[0], atol=1e-6)


def test_a_collection_built_with_openai_refuses_local_embeddings(settings, collection_name, openai_model):
    documents = [SourceDocument(name, text, None, "test", {}) for name, text in PASSAGES.items()]
    Engine(settings, model=openai_model).ingest(collection_name, documents, ChunkingConfig())
    local_settings = dataclasses.replace(settings, embeddings="local")
    with open_primary(settings) as conn, pytest.raises(EmbeddingMismatch, match="openai:test-model"):
        Engine(local_settings).search(collection_name, "glaciers", SearchParams(), conn=conn)
    # text search needs no embeddings, so it still works
    with open_primary(settings) as conn:
        hits = Engine(local_settings).search(collection_name, "glaciers", SearchParams(mode="text"), conn=conn).hits
    assert [hit.document_id for hit in hits] == ["glacier"]


def test_ingesting_with_local_embeddings_into_an_openai_collection_is_refused(
    settings, collection_name, openai_model, local_model
):
    documents = [SourceDocument("kettle", PASSAGES["kettle"], None, "test", {})]
    Engine(settings, model=openai_model).ingest(collection_name, documents, ChunkingConfig())
    with pytest.raises(EmbeddingMismatch, match="openai:test-model"):
        Engine(settings, model=local_model).ingest(collection_name, documents, ChunkingConfig())
