"""The one error hierarchy of hybrid-rag.

    HybridRagError
    ├── InputError                 a caller's mistake: CLI exit 2, HTTP 4xx
    │   ├── InvalidFilter          unknown operator, bad operand type
    │   ├── InvalidName            collection name that is not a plain identifier
    │   ├── LimitExceeded          k, candidates, query or body over the configured limits
    │   └── EmbeddingMismatch      collection built with other embeddings than the configured ones
    ├── NotFound                   HTTP 404
    │   ├── CollectionNotFound
    │   └── DocumentNotFound
    ├── CollectionIncomplete       its derived state (postings, statistics) is unfinished: HTTP 409
    ├── ConfigurationError         settings that cannot work (missing extra, bad EMBEDDINGS)
    └── DatabaseUnavailable        cannot connect, or the statement timed out: HTTP 503

psycopg's (and the ingest package's) errors are translated to these at one place,
`retriever.engine.map_errors`; the CLI and HTTP each map these once more, to exit
codes and problem details.
"""

from __future__ import annotations

__all__ = [
    "CollectionIncomplete",
    "CollectionNotFound",
    "ConfigurationError",
    "DatabaseUnavailable",
    "DocumentNotFound",
    "EmbeddingMismatch",
    "HybridRagError",
    "InputError",
    "InvalidFilter",
    "InvalidName",
    "LimitExceeded",
    "NotFound",
]


class HybridRagError(Exception):
    """Base of every error hybrid-rag raises on purpose."""


class InputError(HybridRagError):
    """The request itself is wrong; retrying it unchanged will fail again."""


class InvalidFilter(InputError):
    """A metadata filter that cannot be compiled."""


class InvalidName(InputError):
    """A collection name that is not a safe identifier."""


class LimitExceeded(InputError):
    """A parameter or payload over a configured limit."""


class EmbeddingMismatch(InputError):
    """The collection's vectors come from another embedding model."""


class NotFound(HybridRagError):
    """A named thing does not exist."""


class CollectionNotFound(NotFound):
    """No collection of that name."""


class DocumentNotFound(NotFound):
    """No document of that id in the collection."""


class CollectionIncomplete(HybridRagError):
    """A load into the collection did not finish: its text search would miss documents.

    `hybrid-rag maintain` (or the next ingest) completes it; retrying the search alone does not.
    """


class ConfigurationError(HybridRagError):
    """The settings cannot work, e.g. an optional extra is not installed."""


class DatabaseUnavailable(HybridRagError):
    """The database cannot be reached or did not answer in time; retry later."""

    retry_after_s: int = 5
