"""What a search asks for and what it answers: `SearchParams` (its defaults ARE the defaults), `Hit`, `SearchResult`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from retriever.errors import InputError, LimitExceeded
from retriever.filters import check_filter
from retriever.settings import Settings

__all__ = ["DEFAULTS", "FUSIONS", "MAX_PROBES", "MODES", "Fusion", "Hit", "Mode", "SearchParams", "SearchResult"]

Mode = Literal["hybrid", "vector", "text"]
MODES: tuple[Mode, ...] = ("hybrid", "vector", "text")
Fusion = Literal["rrf", "linear", "linear_max"]
FUSIONS: tuple[Fusion, ...] = ("rrf", "linear", "linear_max")  # `retriever.fusion` defines each
# Chosen across collections by `hybrid-rag eval --sweep` and `python -m eval.choose` (README
# "Quality"): SciFact train, and the test splits of Cranfield, MEDLINE and LISA (no train splits).
MAX_PROBES = 32768  # pgvector's bound of `ivfflat.probes` (a search reads at most the index's lists)
DEFAULTS: dict[str, Any] = {"candidates": 100, "fusion": "linear_max", "rrf_k": 40, "weights": (1.0, 1.5)}


@dataclass(frozen=True, slots=True)
class SearchParams:
    """What a search asks for; `validate` checks it against the configured limits."""

    k: int = 10
    mode: Mode = "hybrid"
    filter: Mapping[str, Any] | None = None
    candidates: int = DEFAULTS["candidates"]  # per-leg depth
    # how the legs combine: reciprocal ranks, min-max normalised scores, or the text leg's over its best
    fusion: Fusion = DEFAULTS["fusion"]
    rrf_k: int = DEFAULTS["rrf_k"]  # rrf only
    weights: tuple[float, float] = DEFAULTS["weights"]  # (vector, text), for either fusion
    collapse: bool = False  # best chunk per document only
    ef_search: int | None = None
    probes: int | None = None  # IVFFlat cells read (None: √lists, more for a deep `candidates`); HNSW ignores it
    exact_text: bool = False  # read every posting of every query term (benchmarks' reference)

    @property
    def needs_vector(self) -> bool:
        """Whether the mode reads the vector leg (and so a query embedding)."""
        return self.mode in ("hybrid", "vector")

    def validate(self, settings: Settings) -> SearchParams:
        """Reject values no search should run with (`InputError`, `LimitExceeded`, a filter over
        MAX_FILTER_VALUES); returns self."""
        if self.mode not in MODES:
            raise InputError(f"unknown mode {self.mode!r}: use one of {', '.join(MODES)}")
        if self.fusion not in FUSIONS:
            raise InputError(f"unknown fusion {self.fusion!r}: use one of {', '.join(FUSIONS)}")
        if not 1 <= self.k <= settings.max_k:
            raise LimitExceeded(f"k must be between 1 and {settings.max_k}, got {self.k}")
        if not 1 <= self.candidates <= settings.max_candidates:
            raise LimitExceeded(f"candidates must be between 1 and {settings.max_candidates}, got {self.candidates}")
        if self.rrf_k < 0:
            raise InputError(f"rrf_k must be ≥ 0, got {self.rrf_k}")
        if len(self.weights) != 2 or any(w < 0 for w in self.weights) or not any(self.weights):
            raise InputError("weights must be two non-negative numbers (vector, text), not both 0")
        if self.probes is not None and (isinstance(self.probes, bool) or not 1 <= self.probes <= MAX_PROBES):
            raise InputError(f"probes must be between 1 and {MAX_PROBES}, got {self.probes}")
        check_filter(self.filter, settings.max_filter_values)  # before a query is embedded for nothing
        return self


@dataclass(frozen=True, slots=True)
class Hit:
    """One ranked chunk; a rank is None when that leg did not return the chunk."""

    id: str
    document_id: str
    content: str
    metadata: dict[str, Any]
    score: float
    vector_rank: int | None
    text_rank: int | None


@dataclass(frozen=True, slots=True)
class SearchResult:
    """Ranked hits and how long the search took (ms, embedding included); `extra["db_ms"]`: the statement alone."""

    hits: list[Hit]
    took_ms: float
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The contract's JSON shape (`search --json` and HTTP): {"results": [...], "took_ms"}."""
        return {
            "results": [
                {
                    "id": hit.id,
                    "document_id": hit.document_id,
                    "content": hit.content,
                    "metadata": hit.metadata,
                    "score": hit.score,
                    "vector_rank": hit.vector_rank,
                    "text_rank": hit.text_rank,
                }
                for hit in self.hits
            ],
            "took_ms": round(self.took_ms, 3),
        }
