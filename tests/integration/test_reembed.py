"""Re-embedding a collection with another model: built beside the live vectors, swapped in at once.

Specification: while a re-embed to a model of another size runs, searches in another thread
answer throughout, each wholly with the old model or wholly with the new one, never a mix
nor an error; a search that the swap overtakes between its model check and its statement
is refused (`EmbeddingsReplaced`) and the engine's retry answers it with the new model. A
re-embed that dies halfway, run again, finishes with every chunk embedded exactly once
across both runs. Chunks ingested during the re-embed get new vectors at the swap; an
ingest with the old model after it is refused; topic centroids move to the new vectors.
The models are the tests' deterministic fakes: what is checked is which model answered.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import numpy as np
import pytest
from conftest import HashEmbeddings
from langchain_core.embeddings import Embeddings
from test_cli import assert_user_error, run

from ingest import ChunkingConfig, SourceDocument
from retriever import EmbeddingMismatch, EmbeddingModel, Engine, InputError, SearchParams
from retriever.boundary import map_errors
from retriever.connections import open_primary
from retriever.errors import EmbeddingsReplaced
from retriever.search import StepResult, search_steps

WORDS = (
    "glacier river coffee kettle orbit comet basalt granite violin cello harbour lantern meadow "
    "falcon walnut copper lattice prism tundra canyon"
).split()
QUERIES = ["glacier river", "coffee kettle", "violin cello harbour", "falcon walnut", "prism tundra canyon"]
MODES = ("vector", "hybrid")


def corpus(n: int, offset: int = 0) -> list[SourceDocument]:
    """n short distinct documents of six words each."""
    rng = np.random.default_rng(offset)
    return [
        SourceDocument(f"doc-{i}", " ".join(rng.choice(WORDS, 6)) + f" item{i}", None, "test", {})
        for i in range(offset, offset + n)
    ]


class Recording(Embeddings):
    """A fake model that records what it embeds, can wait per batch, and can fail on a given batch."""

    def __init__(self, dimensions: int, *, pause_s: float = 0.0, fail_on_batch: int | None = None) -> None:
        self.inner = HashEmbeddings(dimensions)
        self.pause_s, self.fail_on_batch = pause_s, fail_on_batch
        self.embedded: list[str] = []
        self.batches = 0
        self.on_batch: list = []  # callables run before each batch

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.batches += 1
        for hook in self.on_batch:
            hook(self.batches)
        if self.batches == self.fail_on_batch:
            raise RuntimeError("the re-embedding process died")
        time.sleep(self.pause_s)
        self.embedded.extend(texts)
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.inner.embed_query(text)


def ranking(result) -> list[tuple[str, float]]:
    return [(hit.id, round(hit.score, 9)) for hit in result.hits]


@pytest.fixture
def old_model() -> EmbeddingModel:
    return EmbeddingModel("test:old-32", HashEmbeddings(32))


def test_searches_during_a_reembed_answer_wholly_with_one_model(settings, collection_name, old_model):
    engine = Engine(settings, model=old_model)
    engine.ingest(collection_name, corpus(120), ChunkingConfig())
    new = EmbeddingModel("test:new-48", Recording(48, pause_s=0.05))

    def answers() -> dict[tuple[str, str], list[tuple[str, float]]]:
        return {
            (query, mode): ranking(engine.search(collection_name, query, SearchParams(k=5, mode=mode)))
            for query in QUERIES
            for mode in MODES
        }

    before = answers()
    seen: list[tuple[tuple[str, str], list[tuple[str, float]]]] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def search_continuously() -> None:
        turn = 0
        while not stop.is_set():
            key = (QUERIES[turn % len(QUERIES)], MODES[turn // len(QUERIES) % len(MODES)])
            try:
                seen.append((key, ranking(engine.search(collection_name, key[0], SearchParams(k=5, mode=key[1])))))
            except BaseException as error:
                failures.append(error)
            turn += 1

    searcher = threading.Thread(target=search_continuously)
    searcher.start()
    try:
        report = engine.reembed(collection_name, new, batch_size=10)
        time.sleep(0.5)  # searches after the swap too
    finally:
        stop.set()
        searcher.join()
    after = answers()

    assert (report.model, report.dimensions, report.embedded) == ("test:new-48", 48, 120)
    assert engine.collection(collection_name).embedding_model == "test:new-48"
    assert not failures, failures[:3]
    assert before != after  # the two models rank differently: an answer tells which one made it
    old = [key for key, answer in seen if answer == before[key]]
    new_answers = [key for key, answer in seen if answer == after[key]]
    assert len(old) + len(new_answers) == len(seen), "an answer came from neither model alone"
    assert old and new_answers, (len(old), len(new_answers))


def test_a_search_the_swap_overtakes_is_refused_then_answered_with_the_new_model(settings, collection_name, old_model):
    engine = Engine(settings, model=old_model)
    engine.ingest(collection_name, corpus(30), ChunkingConfig())
    new = EmbeddingModel("test:new-24", HashEmbeddings(24))
    steps = search_steps(
        settings,
        collection_name,
        SearchParams(k=5, mode="vector"),
        query="coffee kettle",
        like=None,
        embedding=old_model.embed_query("coffee kettle"),
        model_name=old_model.name,
    )
    with open_primary(settings) as conn:
        registry = steps.send(None)  # the search has read the registry: the old model
        rows = conn.execute(*registry.statements[0]).fetchall()
        engine.reembed(collection_name, new)  # ... and the swap lands before its statement
        final = steps.send(StepResult(rows))
        with pytest.raises(EmbeddingsReplaced), map_errors(), conn.transaction():
            for statement, values in final.statements:
                conn.execute(statement, values)

    fresh = Engine(settings, model=old_model)  # as another process would: it follows the registry
    fresh.models[new.name] = new
    hits = fresh.search(collection_name, "coffee kettle", SearchParams(k=5, mode="vector")).hits
    assert hits and fresh.query_model(collection_name) is new


async def test_the_async_search_follows_the_collection_to_its_new_model(settings, collection_name, old_model):
    Engine(settings, model=old_model).ingest(collection_name, corpus(20), ChunkingConfig())
    new = EmbeddingModel("test:new-16", HashEmbeddings(16))
    Engine(settings, model=old_model).reembed(collection_name, new)
    follower = Engine(settings, model=old_model)
    follower.models[new.name] = new
    result = await follower.asearch(collection_name, "glacier river", SearchParams(k=3, mode="hybrid"))
    assert result.hits and follower.query_model(collection_name) is new
    stranger = Engine(settings, model=old_model)  # cannot make the new model: the mismatch stands
    with pytest.raises(EmbeddingMismatch, match="test:new-16"):
        await stranger.asearch(collection_name, "glacier river", SearchParams(k=3, mode="vector"))


def test_a_reembed_killed_halfway_and_rerun_embeds_every_chunk_exactly_once(settings, collection_name, old_model):
    engine = Engine(settings, model=old_model)
    engine.ingest(collection_name, corpus(95), ChunkingConfig())
    dying = Recording(40, fail_on_batch=5)
    with pytest.raises(RuntimeError, match="died"):
        engine.reembed(collection_name, EmbeddingModel("test:new-40", dying), batch_size=10)
    assert engine.collection(collection_name).embedding_model == old_model.name  # nothing swapped
    assert engine.search(collection_name, "glacier", SearchParams(mode="vector")).hits  # still searchable

    rerun = Recording(40)
    report = Engine(settings, model=old_model).reembed(
        collection_name, EmbeddingModel("test:new-40", rerun), batch_size=10
    )

    with open_primary(settings) as conn:
        contents = [row[0] for row in conn.execute(f'SELECT content FROM hybrid_rag."{collection_name}"')]
    assert len(dying.embedded) == 40  # four batches made it before the fifth died
    assert Counter(dying.embedded + rerun.embedded) == Counter(contents)
    assert report.resumed and report.embedded == 55


def test_chunks_ingested_during_a_reembed_get_new_vectors_and_the_old_model_is_refused_after(
    settings, collection_name, old_model
):
    engine = Engine(settings, model=old_model)
    engine.ingest(collection_name, corpus(40), ChunkingConfig())
    engine.find_topics(collection_name, 3)
    new_model = Recording(20)
    writer = Engine(settings, model=old_model)  # another process, still on the old model
    new_model.on_batch.append(lambda batch: batch == 2 and writer.ingest(collection_name, corpus(7, offset=500)))
    engine.reembed(collection_name, EmbeddingModel("test:new-20", new_model), batch_size=10)

    with open_primary(settings) as conn:
        dims = conn.execute(f'SELECT DISTINCT vector_dims(embedding) FROM hybrid_rag."{collection_name}"').fetchall()
        count = conn.execute(f'SELECT count(*) FROM hybrid_rag."{collection_name}"').fetchone()[0]
        centroids = conn.execute(
            "SELECT DISTINCT vector_dims(centroid) FROM hybrid_rag.topics WHERE collection = %s", (collection_name,)
        ).fetchall()
    assert (dims, count, centroids) == ([(20,)], 47, [(20,)])
    with pytest.raises(EmbeddingMismatch, match="test:new-20"):
        writer.ingest(collection_name, corpus(1, offset=900))
    engine.ingest(collection_name, corpus(1, offset=900))  # the re-embedding engine writes with the new model
    assert engine.document(collection_name, "doc-900").chunks


def test_a_model_too_wide_for_the_index_is_refused_before_anything_changes(settings, collection_name, old_model):
    engine = Engine(settings, model=old_model)
    engine.ingest(collection_name, corpus(5), ChunkingConfig())
    with pytest.raises(InputError, match="halfvec"):
        engine.reembed(collection_name, EmbeddingModel("test:wide", HashEmbeddings(3072)))
    with pytest.raises(InputError, match="already embedded"):
        engine.reembed(collection_name, old_model)
    assert engine.search(collection_name, "glacier", SearchParams(mode="vector")).hits


def test_a_reembed_to_halfvec_indexes_3072_dimensions_and_searches(settings, collection_name, old_model):
    engine = Engine(settings, model=old_model)
    engine.ingest(collection_name, corpus(25), ChunkingConfig())
    wide = EmbeddingModel("test:wide-3072", HashEmbeddings(3072))
    engine.reembed(collection_name, wide, storage="halfvec")

    collection = engine.collection(collection_name)
    assert (collection.dimensions, collection.vector_index.storage) == (3072, "halfvec")
    with open_primary(settings) as conn:
        (definition,) = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = %s", (f"{collection_name}_embedding_hnsw",)
        ).fetchone()
    assert "halfvec_cosine_ops" in definition
    hits = engine.search(collection_name, "glacier river", SearchParams(k=3, mode="vector")).hits
    assert sorted(hit.vector_rank for hit in hits) == [1, 2, 3]
    assert {"glacier", "river"} & set(hits[0].content.split())


def test_reembed_mistakes_on_the_command_line_are_one_line(settings, collection_name, old_model, monkeypatch):
    Engine(settings, model=old_model).ingest(collection_name, corpus(3), ChunkingConfig())
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # nothing listens: the service is unreachable
    monkeypatch.setenv("OPENAI_API_KEY", "test")
    assert_user_error(run("reembed", "-c", collection_name, "--embeddings", "openai:m"), "embedding service")
    assert_user_error(run("reembed", "-c", collection_name, "--embeddings", "nonsense"), "EMBEDDINGS='nonsense'")
    assert_user_error(run("reembed", "-c", "no_such_collection", "--embeddings", "local"), "no_such_collection")


def test_a_rerun_without_storage_resumes_the_storage_the_run_began_with(settings, collection_name, old_model):
    engine = Engine(settings, model=old_model)
    engine.ingest(collection_name, corpus(60), ChunkingConfig())
    dying = Recording(24, fail_on_batch=3)
    with pytest.raises(RuntimeError, match="died"):
        engine.reembed(collection_name, EmbeddingModel("test:new-24", dying), batch_size=10, storage="halfvec")

    rerun = Recording(24)
    report = engine.reembed(collection_name, EmbeddingModel("test:new-24", rerun), batch_size=10)

    assert report.resumed and len(rerun.embedded) == 40
    assert engine.collection(collection_name).vector_index.storage == "halfvec"


def test_topics_computed_across_a_swap_are_refused_not_stored_in_the_old_space(
    settings, collection_name, old_model, monkeypatch
):
    import retriever.topics

    engine = Engine(settings, model=old_model)
    engine.ingest(collection_name, corpus(40), ChunkingConfig())
    cluster = retriever.topics.cluster

    def cluster_while_reembedding(*args, **kwargs):
        found = cluster(*args, **kwargs)
        Engine(settings, model=old_model).reembed(collection_name, EmbeddingModel("test:new-12", HashEmbeddings(12)))
        return found

    monkeypatch.setattr(retriever.topics, "cluster", cluster_while_reembedding)
    with pytest.raises(InputError, match="re-embedded while its topics were computed"):
        engine.find_topics(collection_name, 3)
    with open_primary(settings) as conn:
        stored = conn.execute("SELECT count(*) FROM hybrid_rag.topics WHERE collection = %s", (collection_name,))
        assert stored.fetchone()[0] == 0
