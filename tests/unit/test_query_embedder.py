"""Query vectors: concurrent async queries share forward passes; a bounded LRU cache serves repeats.

The model here is a stand-in for the packaged local model (a `LocalEmbeddings` whose vectors are
hashed words) that records every forward pass and can hold one open until the test releases it.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Sequence

import anyio
import numpy as np
import pytest

from retriever.embeddings import EmbeddingModel, LocalEmbeddings
from retriever.query_embedder import QueryCache, QueryEmbedder


class RecordingModel(LocalEmbeddings):
    """Hashed-word vectors; `passes` lists each `embed_array` call's texts; passes wait for `gate`."""

    max_seq_length = 256

    def __init__(self, salt: str = "", fail_on: Sequence[str] = ()) -> None:
        self.salt = salt
        self.fail_on = set(fail_on)
        self.passes: list[list[str]] = []
        self.finished = 0  # passes that returned or raised
        self.gate = threading.Event()
        self.gate.set()

    def vector(self, text: str) -> np.ndarray:
        vector = np.zeros(16, dtype=np.float32)
        for word in (self.salt + " " + text).split():
            vector[int(hashlib.md5(word.encode()).hexdigest(), 16) % 16] += 1.0
        return vector / np.linalg.norm(vector)

    def embed_array(self, texts: Sequence[str]) -> np.ndarray:
        self.passes.append(list(texts))
        try:
            opened = self.gate.acquire(timeout=10) if isinstance(self.gate, threading.Semaphore) else self.gate.wait(10)
            assert opened, "the test never opened the gate"
            if self.fail_on & set(texts):
                raise RuntimeError(f"cannot embed {sorted(self.fail_on & set(texts))}")
            return np.stack([self.vector(text) for text in texts])
        finally:
            self.finished += 1

    def token_count(self, text: str) -> int:
        return len(text.split())


def recording_model(**options) -> tuple[EmbeddingModel, RecordingModel]:
    inner = RecordingModel(**options)
    return EmbeddingModel("test:recording", inner), inner


async def until(condition, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await anyio.sleep(0.005)


async def embed_all(embedder: QueryEmbedder, model: EmbeddingModel, texts, limiter=None, results=None) -> dict:
    results = {} if results is None else results

    async def one(text: str) -> None:
        results[text] = await embedder.aembed(model, text, limiter)

    async with anyio.create_task_group() as tasks:
        for text in texts:
            tasks.start_soon(one, text)
            await anyio.sleep(0.01)  # in this order
    return results


# -- batching ---------------------------------------------------------------------------------------


async def test_queries_arriving_during_a_forward_pass_share_the_next_pass():
    model, inner = recording_model()
    embedder = QueryEmbedder(cache_size=0)
    inner.gate.clear()
    results: dict[str, np.ndarray] = {}
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(embed_all, embedder, model, ["first"], None, results)
        await until(lambda: len(inner.passes) == 1)
        tasks.start_soon(embed_all, embedder, model, ["second", "third", "fourth"], None, results)
        await anyio.sleep(0.1)
        inner.gate.set()
    assert inner.passes == [["first"], ["second", "third", "fourth"]]
    assert embedder.forward_passes == 2


async def test_batched_vectors_are_the_vectors_of_each_query_alone():
    model, inner = recording_model()
    embedder = QueryEmbedder(cache_size=0)
    inner.gate.clear()
    texts = ["lens telescopes", "sour espresso", "rear derailleur", "tomatoes in pots"]
    results: dict[str, np.ndarray] = {}
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(embed_all, embedder, model, texts, None, results)
        await until(lambda: len(inner.passes) == 1)
        await anyio.sleep(0.1)
        inner.gate.set()
    assert max(len(batch) for batch in inner.passes) > 1
    for text in texts:
        np.testing.assert_allclose(results[text], model.embed_query(text), atol=1e-6)


async def test_a_lone_query_never_waits_for_the_window():
    model, inner = recording_model()
    embedder = QueryEmbedder(window_ms=10_000, cache_size=0)
    started = time.monotonic()
    vector = await embedder.aembed(model, "alone", anyio.CapacityLimiter(2))
    assert time.monotonic() - started < 5
    np.testing.assert_allclose(vector, inner.vector("alone"), atol=1e-6)


async def test_a_pass_beside_a_running_one_waits_the_window_for_companions():
    model, inner = recording_model()
    slots = anyio.CapacityLimiter(2)  # two passes may run at once
    for window_ms, expected in ((0, [["a"], ["b"], ["c"]]), (300, [["a"], ["b", "c"]])):
        inner.passes.clear()
        inner.gate.clear()
        embedder = QueryEmbedder(window_ms=window_ms, cache_size=0)
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(embed_all, embedder, model, ["a"], slots)
            await until(lambda: len(inner.passes) == 1)
            tasks.start_soon(embed_all, embedder, model, ["b", "c"], slots)  # c 10 ms after b
            await anyio.sleep(0.05 if window_ms == 0 else 0.45)
            inner.gate.set()
        assert inner.passes == expected, window_ms


async def test_queries_waiting_for_two_finished_passes_are_split_between_the_next_two():
    model, inner = recording_model()
    embedder = QueryEmbedder(cache_size=0)
    slots = anyio.CapacityLimiter(2)
    permits = threading.Semaphore(0)
    inner.gate = permits  # each pass waits for one permit
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(embed_all, embedder, model, ["a", "b", "c", "d", "e", "f", "g", "h"], slots)
        await until(lambda: len(inner.passes) == 2)  # "a" and "b" run, one pass each; six wait
        await anyio.sleep(0.1)
        permits.release(2)
        deadline = time.monotonic() + 10
        while inner.finished < 2 and time.monotonic() < deadline:  # blocks the event loop: it sees both ends at once
            time.sleep(0.01)
        time.sleep(0.05)  # and the worker threads hand both results to it
        await until(lambda: len(inner.passes) == 4)
        permits.release(2)
    assert inner.passes[:2] == [["a"], ["b"]]
    assert sorted(len(batch) for batch in inner.passes[2:]) == [3, 3]
    assert sorted(text for batch in inner.passes[2:] for text in batch) == list("cdefgh")


async def test_a_pass_embeds_at_most_max_batch_queries():
    model, inner = recording_model()
    embedder = QueryEmbedder(max_batch=2, cache_size=0)
    inner.gate.clear()
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(embed_all, embedder, model, ["a", "b", "c", "d", "e"])
        await until(lambda: len(inner.passes) == 1)
        await anyio.sleep(0.1)
        inner.gate.set()
    assert inner.passes == [["a"], ["b", "c"], ["d", "e"]]


async def test_max_batch_one_embeds_every_query_alone_at_once():
    model, inner = recording_model()
    embedder = QueryEmbedder(max_batch=1, cache_size=0)
    inner.gate.clear()
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(embed_all, embedder, model, ["a", "b", "c"])
        await until(lambda: len(inner.passes) == 3)  # none waits for another's pass
        inner.gate.set()
    assert sorted(inner.passes) == [["a"], ["b"], ["c"]]


async def test_a_query_repeated_in_one_pass_is_embedded_once():
    model, inner = recording_model()
    embedder = QueryEmbedder(cache_size=0)
    inner.gate.clear()
    results: list[np.ndarray] = []

    async def one(text: str) -> None:
        results.append(await embedder.aembed(model, text))

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(one, "first")
        await until(lambda: len(inner.passes) == 1)
        tasks.start_soon(one, "again")
        tasks.start_soon(one, "again")
        await anyio.sleep(0.1)
        inner.gate.set()
    assert inner.passes == [["first"], ["again"]]
    assert len(results) == 3


async def test_a_query_the_model_cannot_embed_fails_alone():
    model, inner = recording_model(fail_on=["bad"])
    embedder = QueryEmbedder(cache_size=0)
    inner.gate.clear()
    outcomes: dict[str, object] = {}

    async def one(text: str) -> None:
        try:
            outcomes[text] = await embedder.aembed(model, text)
        except RuntimeError as exc:
            outcomes[text] = exc

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(one, "first")
        await until(lambda: len(inner.passes) == 1)
        for text in ("good", "bad", "fine"):
            tasks.start_soon(one, text)
        await anyio.sleep(0.1)
        inner.gate.set()
    assert isinstance(outcomes["bad"], RuntimeError)
    for text in ("first", "good", "fine"):
        np.testing.assert_allclose(outcomes[text], inner.vector(text), atol=1e-6)


async def test_a_cancelled_query_leaves_the_others_to_finish():
    model, inner = recording_model()
    embedder = QueryEmbedder(window_ms=10_000, cache_size=0)
    slots = anyio.CapacityLimiter(2)
    inner.gate.clear()
    results: dict[str, np.ndarray] = {}
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(embed_all, embedder, model, ["running"], slots, results)
        await until(lambda: len(inner.passes) == 1)
        with anyio.move_on_after(0.1):  # leads a second pass, waiting out the window: cancelled there
            await embedder.aembed(model, "cancelled in the window", slots)
        with anyio.move_on_after(0.1):  # waits behind the running pass: cancelled there
            await embedder.aembed(model, "cancelled while waiting", slots)
        inner.gate.set()
    with anyio.fail_after(5):
        results["after"] = await embedder.aembed(model, "after", slots)
    assert set(results) == {"running", "after"}
    assert all("cancelled" not in text for batch in inner.passes for text in batch)
    assert not embedder._lanes  # nothing left behind


async def test_every_query_of_a_burst_gets_its_own_vector_whatever_is_cancelled():
    model, inner = recording_model()
    embedder = QueryEmbedder(window_ms=2, max_batch=4, cache_size=0)
    slots = anyio.CapacityLimiter(2)
    rng = random.Random(7)
    answered: dict[str, np.ndarray] = {}

    async def one(text: str, patience: float) -> None:
        with anyio.move_on_after(patience):
            answered[text] = await embedder.aembed(model, text, slots)

    async with anyio.create_task_group() as tasks:
        for n in range(200):
            patience = rng.choice([0.0, 0.001, 0.01, 10.0, 10.0, 10.0])
            tasks.start_soon(one, f"query {n % 150}", patience)
            await anyio.sleep(rng.choice([0, 0, 0.001, 0.003]))
    assert sum(len(batch) for batch in inner.passes) <= 200 and max(len(batch) for batch in inner.passes) <= 4
    assert len(answered) > 50
    for text, vector in answered.items():
        np.testing.assert_allclose(vector, inner.vector(text), atol=1e-6)
    assert not embedder._lanes  # every lead handed on or given back


async def test_models_other_than_the_local_one_embed_each_query_alone(fake_model):
    embedder = QueryEmbedder()
    texts = [f"query {n}" for n in range(5)]
    results = await embed_all(embedder, fake_model, texts)
    assert embedder.forward_passes == 0
    for text in texts:
        np.testing.assert_allclose(results[text], fake_model.embed_query(text), atol=1e-6)


# -- the cache -----------------------------------------------------------------------------------


def test_a_repeated_query_is_served_from_the_cache():
    model, inner = recording_model()
    embedder = QueryEmbedder(cache_size=10)
    first = embedder.embed(model, "stargazing gift")
    second = embedder.embed(model, "stargazing gift")
    assert inner.passes == [["stargazing gift"]]
    assert (embedder.cache.hits, embedder.cache.misses) == (1, 1)
    np.testing.assert_array_equal(first, second)
    assert not second.flags.writeable  # shared between searches: nobody may change it


async def test_async_searches_share_the_cache_with_sync_ones():
    model, inner = recording_model()
    embedder = QueryEmbedder(cache_size=10)
    embedder.embed(model, "sour espresso")
    vector = await embedder.aembed(model, "sour espresso")
    await embedder.aembed(model, "bike chain")
    await embedder.aembed(model, "bike chain")
    assert inner.passes == [["sour espresso"], ["bike chain"]]
    np.testing.assert_allclose(vector, inner.vector("sour espresso"), atol=1e-6)
    assert (embedder.cache.hits, embedder.cache.misses) == (2, 2)


def test_the_least_recently_used_query_is_evicted_first():
    model, inner = recording_model()
    cache = QueryCache(2)
    for text in ("a", "b"):
        cache.put(model, text, inner.vector(text))
    assert cache.get(model, "a") is not None  # "a" is now the more recent
    cache.put(model, "c", inner.vector("c"))
    assert len(cache) == 2
    assert cache.get(model, "b") is None
    assert cache.get(model, "a") is not None and cache.get(model, "c") is not None


def test_cache_size_zero_keeps_nothing():
    model, inner = recording_model()
    embedder = QueryEmbedder(cache_size=0)
    embedder.embed(model, "x")
    embedder.embed(model, "x")
    assert inner.passes == [["x"], ["x"]]
    assert len(embedder.cache) == 0


@pytest.mark.parametrize("name", ["same-name", None])
def test_two_models_never_share_a_cached_vector(name):
    one, _ = recording_model(salt="one")
    other, _ = recording_model(salt="other")
    if name:
        one.name = other.name = name
    embedder = QueryEmbedder(cache_size=10)
    first = embedder.embed(one, "same text")
    second = embedder.embed(other, "same text")
    assert not np.allclose(first, second)
    assert len(embedder.cache) == 2 and embedder.cache.hits == 0
