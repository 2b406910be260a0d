"""One settings object, read from the environment once."""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from retriever.errors import ConfigurationError

__all__ = ["MAX_BATCH_WINDOW_MS", "Settings", "default_home", "get_settings"]

MAX_BATCH_WINDOW_MS = 50  # a longer wait for companions costs more latency than any batch saves


def default_home() -> Path:
    """Where the embedded database lives when HYBRID_RAG_HOME is unset.

    As root, the embedded Postgres runs as a separate system user and opens up every
    parent folder of its data directory so that user can reach it; a folder under
    /var/lib keeps root's home folder private.
    """
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path("/var/lib/hybrid-rag")
    return Path.home() / ".local" / "share" / "hybrid-rag"


def _env(name: str, doc: str, default: Any = None, *, secret: bool = False) -> Any:
    """A dataclass field that names its environment variable and says what it means.

    Secret fields stay out of `repr`, so logging the settings never prints them.
    """
    return field(default=default, repr=not secret, metadata={"env": name, "doc": doc})


@dataclass(frozen=True, slots=True)
class Settings:
    """Every knob of hybrid-rag; each field names the environment variable it reads."""

    database_url: str | None = _env(
        "DATABASE_URL", "PostgreSQL ≥ 15 with pgvector ≥ 0.7; unset: embedded Postgres", secret=True
    )
    database_read_urls: tuple[str, ...] = _env(
        "DATABASE_READ_URL", "comma-separated read-only DSNs (replicas) that take search traffic", (), secret=True
    )
    home: Path = _env("HYBRID_RAG_HOME", "data folder of the embedded Postgres and caches", None)
    embeddings: str = _env(
        "EMBEDDINGS",
        "`local` (packaged all-MiniLM-L6-v2 on ONNX Runtime, no torch at run time), `local:onnx` (the same), "
        "`local:torch` (the same model on sentence-transformers; same vectors and stored name), or `openai:<model>`",
        "local",
    )
    openai_api_key: str | None = _env("OPENAI_API_KEY", "API key for `openai:*` embeddings", secret=True)
    openai_base_url: str | None = _env("OPENAI_BASE_URL", "any OpenAI-compatible server for `openai:*`")
    openai_check_ctx_length: bool = _env(
        "OPENAI_CHECK_EMBEDDING_CTX_LENGTH",
        "tokenise with tiktoken before sending (needs internet; off for OpenAI-compatible servers)",
        False,
    )
    api_keys: tuple[str, ...] = _env(
        "API_KEYS", "comma-separated bearer tokens; `key@coll1|coll2` scopes a key", (), secret=True
    )
    statement_timeout_ms: int = _env("STATEMENT_TIMEOUT_MS", "per-statement timeout of searches and API writes", 5000)
    pool_size: int = _env("POOL_SIZE", "connections in the API's pool", 8)
    pool_timeout_s: float = _env("POOL_TIMEOUT_S", "longest wait for a pooled connection before a 503", 3.0)
    ef_search: int = _env("EF_SEARCH", "HNSW ef_search floor; raised to the per-leg candidate count", 100)
    max_k: int = _env("MAX_K", "largest k a search may ask for", 100)
    max_candidates: int = _env("MAX_CANDIDATES", "largest per-leg depth a search may ask for", 1000)
    max_query_chars: int = _env("MAX_QUERY_CHARS", "longest query text accepted", 2000)
    max_filter_values: int = _env(
        "MAX_FILTER_VALUES",
        "most values a filter may compare: one per condition and per $in/$nin/$contains/$between element "
        "(10000 at most)",
        1000,
    )
    query_batch_window_ms: float = _env(
        "QUERY_BATCH_WINDOW_MS",
        "how long an API search that would start a second concurrent embedding pass first waits for other "
        "queries to embed with it, in ms (0 to 50); a search with nothing else in flight never waits",
        0.0,
    )
    query_batch_max: int = _env(
        "QUERY_BATCH_MAX",
        "most API search queries embedded together in one forward pass of the local model; 1 embeds each alone",
        32,
    )
    query_cache_size: int = _env(
        "QUERY_CACHE_SIZE",
        "query embeddings kept in memory by model and text, the least recently used dropped first; 0 keeps none",
        1000,
    )
    max_documents_per_request: int = _env("MAX_DOCUMENTS_PER_REQUEST", "documents per ingest request", 256)
    max_request_bytes: int = _env("MAX_REQUEST_BYTES", "largest HTTP request body", 4_000_000)

    def __post_init__(self) -> None:
        for var, value, low, high in (
            ("QUERY_BATCH_WINDOW_MS", self.query_batch_window_ms, 0, MAX_BATCH_WINDOW_MS),
            ("QUERY_BATCH_MAX", self.query_batch_max, 1, None),
            ("QUERY_CACHE_SIZE", self.query_cache_size, 0, None),
        ):
            if value < low or (high is not None and value > high):
                bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
                raise ConfigurationError(f"{var}={value!r} must be {bounds}")

    @property
    def data_home(self) -> Path:
        """The embedded database's folder, resolved."""
        return self.home if self.home is not None else default_home()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from environment variables (unset or empty ones keep their defaults)."""
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(f.metadata["env"], "").strip()
            if not raw:
                continue
            values[f.name] = _parse(f.name, f.metadata["env"], f.type, raw)
        return cls(**values)  # type: ignore[arg-type]

    @classmethod
    def describe(cls) -> dict[str, str]:
        """Environment variable → what it means, for docs and `--help`."""
        return {f.metadata["env"]: f.metadata["doc"] for f in fields(cls)}


def _parse(name: str, var: str, kind: object, raw: str) -> object:
    kind = str(kind)
    try:
        if "tuple" in kind:
            return tuple(part.strip() for part in raw.split(",") if part.strip())
        if kind == "Path":
            return Path(raw).expanduser()
        if kind == "bool":
            if raw.lower() not in {"1", "0", "true", "false", "yes", "no", "on", "off"}:
                raise ValueError(raw)
            return raw.lower() in {"1", "true", "yes", "on"}
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
    except ValueError:
        raise ConfigurationError(f"{var}={raw!r} is not a valid {kind} (setting {name})") from None
    return raw


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings.from_env()
