"""Query vectors for searches: a bounded LRU cache, and concurrent async queries embedded together.

`QueryEmbedder.aembed` (the async search path, the HTTP API's) answers a cached query at once.
Otherwise, with the packaged local model, the query joins its model's lane: one that finds the
lane idle starts a forward pass at once, alone; queries that arrive while passes run wait, and
the next pass embeds all of them (up to `max_batch`) in one `EmbeddingModel.embed_documents`
call, which gives each text the vector `embed_query` gives it (padding is masked out of the mean).
At most one forward pass per embedding slot runs at once (the API's slots: one per core), and
the queries waiting when passes start are split evenly between them. A query that starts a pass
beside a running one first waits `window_ms` for companions; a query never waits for the window
when nothing else is in flight.

Other models (`openai:*`: a LangChain `Embeddings` may embed a query otherwise than a document)
and `max_batch` 1 embed each query alone in a worker thread, cached all the same. The
synchronous `embed` (the CLI, scripts) uses the cache only.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

import anyio
import anyio.to_thread
import numpy as np

from retriever.embeddings import EmbeddingModel, LocalEmbeddings
from retriever.settings import Settings

__all__ = ["QueryCache", "QueryEmbedder"]


class QueryCache:
    """The last `size` query vectors by (model, text), the least recently used evicted first; thread-safe.

    A key holds the `EmbeddingModel` object itself, so two models never share a vector, not even
    under one name (the packaged model's torch and ONNX backends). `size` 0 keeps nothing.
    Vectors are stored as read-only float32 copies and handed out as they are; `hits` and
    `misses` count lookups.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.hits = 0
        self.misses = 0
        self._vectors: OrderedDict[tuple[EmbeddingModel, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._vectors)

    def get(self, model: EmbeddingModel, text: str) -> np.ndarray | None:
        """The cached vector of `text` under `model`, or None."""
        if self.size <= 0:
            return None
        with self._lock:
            vector = self._vectors.get((model, text))
            if vector is None:
                self.misses += 1
                return None
            self._vectors.move_to_end((model, text))
            self.hits += 1
            return vector

    def put(self, model: EmbeddingModel, text: str, vector: np.ndarray) -> np.ndarray:
        """Keep `vector` (evicting the least recently used past `size`); returns the vector to use."""
        if self.size <= 0:
            return vector
        kept = np.array(vector, dtype=np.float32)  # a copy: a row must not pin its whole batch
        kept.setflags(write=False)
        with self._lock:
            self._vectors[(model, text)] = kept
            self._vectors.move_to_end((model, text))
            while len(self._vectors) > self.size:
                self._vectors.popitem(last=False)
        return kept


@dataclass(eq=False)
class _Waiter:
    """One query in a lane: woken with its vector (or error), or to lead the next pass."""

    text: str
    woken: anyio.Event = field(default_factory=anyio.Event)
    vector: np.ndarray | None = None
    error: Exception | None = None
    lead: bool = False


@dataclass(eq=False)
class _Lane:
    """The queries of one model (in one event loop's thread) waiting for a forward pass."""

    pending: list[_Waiter] = field(default_factory=list)
    capacity: int = 1  # passes that may run at once
    leaders: int = 0  # passes running or about to start
    forming: bool = False  # a leader is waiting out the window


class QueryEmbedder:
    """The engine's query vectors: `embed` (sync, cached) and `aembed` (async, cached and batched).

    `window_ms` is how long a query that would start a second concurrent pass waits for others
    (0: none); `max_batch` the most queries in one pass (1: every query alone, as a plain worker
    thread call); `cache_size` the vectors kept (0: no cache). One per engine.
    """

    def __init__(self, *, window_ms: float = 0.0, max_batch: int = 32, cache_size: int = 1000) -> None:
        self.window_s = window_ms / 1000
        self.max_batch = max_batch
        self.cache = QueryCache(cache_size)
        self.forward_passes = 0  # forward passes `aembed` has run (for tests and benchmarks)
        self._lanes: dict[tuple[EmbeddingModel, int], _Lane] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> QueryEmbedder:
        """QUERY_BATCH_WINDOW_MS, QUERY_BATCH_MAX and QUERY_CACHE_SIZE."""
        return cls(
            window_ms=settings.query_batch_window_ms,
            max_batch=settings.query_batch_max,
            cache_size=settings.query_cache_size,
        )

    def embed(self, model: EmbeddingModel, text: str) -> np.ndarray:
        """`model.embed_query(text)`, from the cache when it holds it (float32, shape (dimensions,))."""
        cached = self.cache.get(model, text)
        return cached if cached is not None else self.cache.put(model, text, model.embed_query(text))

    async def aembed(
        self, model: EmbeddingModel, text: str, limiter: anyio.CapacityLimiter | None = None
    ) -> np.ndarray:
        """`embed`, off the event loop: batched with concurrent queries for the local model.

        `limiter` bounds the worker threads (the API's embedding slots); its token count is the
        number of passes that may run at once (one without a limiter). Raises what the model raises.
        """
        cached = self.cache.get(model, text)
        if cached is not None:
            return cached
        if self.max_batch < 2 or not isinstance(model.embeddings, LocalEmbeddings):
            vector = await anyio.to_thread.run_sync(model.embed_query, text, limiter=limiter)
            return self.cache.put(model, text, vector)
        key = (model, threading.get_ident())  # one lane per event loop thread: anyio events stay in theirs
        lane = self._lanes.setdefault(key, _Lane())
        lane.capacity = int(limiter.total_tokens) if limiter is not None else 1
        waiter = _Waiter(text)
        lane.pending.append(waiter)
        window = 0.0
        if lane.leaders < lane.capacity and not lane.forming:
            window = self.window_s if lane.leaders else 0.0  # nothing in flight: start at once
            lane.leaders += 1
            waiter.lead = True
        led = False
        try:
            if not waiter.lead:
                await waiter.woken.wait()
            if waiter.lead:
                led = True
                await self._lead(key, lane, waiter, model, window, limiter)
        finally:
            if not led:  # cancelled while waiting: out of the queue, and a lead handed on
                if waiter in lane.pending:
                    lane.pending.remove(waiter)
                if waiter.lead:
                    self._release(key, lane)
        if waiter.error is not None:
            raise waiter.error
        assert waiter.vector is not None
        return waiter.vector

    async def _lead(
        self,
        key: tuple[EmbeddingModel, int],
        lane: _Lane,
        me: _Waiter,
        model: EmbeddingModel,
        window: float,
        limiter: anyio.CapacityLimiter | None,
    ) -> None:
        """Wait out `window`, embed the oldest pending queries (`me` first) in one pass, hand the lead on."""
        try:
            if window > 0:
                lane.forming = True
                try:
                    await anyio.sleep(window)
                finally:
                    lane.forming = False
            # `me` and the oldest others, my share of them: other leaders woken but not yet running and the
            # idle slots take theirs, so concurrent passes split the queue evenly (one core each)
            queued = [me, *(waiter for waiter in lane.pending if waiter is not me and not waiter.lead)]
            woken = sum(waiter.lead for waiter in lane.pending if waiter is not me)
            idle = max(lane.capacity - lane.leaders, 0)
            share = -(-(len(queued) + woken) // (1 + woken + idle))
            batch = queued[: min(self.max_batch, share)]
            lane.pending[:] = [waiter for waiter in lane.pending if waiter not in batch]
            if idle and len(queued) > len(batch):  # the rest start a pass beside this one, on another core
                lane.leaders += 1
                queued[len(batch)].lead = True
                queued[len(batch)].woken.set()
            texts = list(dict.fromkeys(waiter.text for waiter in batch))  # a repeated query is embedded once
            self.forward_passes += 1
            with anyio.CancelScope(shield=True):  # a started pass finishes: its other queries are waiting
                try:
                    results = await anyio.to_thread.run_sync(_embed_batch, model, texts, limiter=limiter)
                except Exception as exc:
                    results = [exc] * len(texts)
            vectors: dict[str, np.ndarray | Exception] = {}
            for text, result in zip(texts, results, strict=True):
                vectors[text] = result if isinstance(result, Exception) else self.cache.put(model, text, result)
            for waiter in batch:
                result = vectors[waiter.text]
                if isinstance(result, Exception):
                    waiter.error = result
                else:
                    waiter.vector = result
                waiter.woken.set()
        finally:
            if me in lane.pending:  # cancelled in the window
                lane.pending.remove(me)
            self._release(key, lane)

    def _release(self, key: tuple[EmbeddingModel, int], lane: _Lane) -> None:
        """A leader is done: the oldest waiting query leads the next pass, else the lane has one pass fewer."""
        successor = next((waiter for waiter in lane.pending if not waiter.lead), None)
        if successor is not None and not lane.forming:
            successor.lead = True
            successor.woken.set()
            return
        lane.leaders -= 1
        if not lane.leaders and not lane.pending:
            self._lanes.pop(key, None)


def _embed_batch(model: EmbeddingModel, texts: Sequence[str]) -> list[np.ndarray | Exception]:
    """One forward pass over `texts`; should it fail, each text alone, so one bad text fails only itself."""
    try:
        return list(model.embed_documents(texts))
    except Exception:
        if len(texts) == 1:
            raise
    results: list[np.ndarray | Exception] = []
    for text in texts:
        try:
            results.append(model.embed_query(text))
        except Exception as exc:
            results.append(exc)
    return results
