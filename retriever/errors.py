"""The one error hierarchy of hybrid-rag.

    HybridRagError
    ├── InputError                 a caller's mistake: CLI exit 2, HTTP 4xx
    │   ├── InvalidFilter          unknown operator, bad operand type
    │   ├── InvalidName            collection name that is not a plain identifier
    │   ├── LimitExceeded          k, candidates, query, filter or body over the limits (ours or PostgreSQL's)
    │   └── EmbeddingMismatch      collection built with other embeddings than the configured ones
    ├── NotFound                   HTTP 404
    │   ├── CollectionNotFound
    │   └── DocumentNotFound
    ├── CollectionIncomplete       its derived state (postings, statistics) is unfinished: HTTP 409
    ├── ConfigurationError         settings that cannot work (missing extra, bad EMBEDDINGS, a refused key)
    ├── EmbeddingsUnavailable      the embedding service cannot be reached or is overloaded: HTTP 503, retry
    ├── DatabaseUnavailable        cannot connect, connection lost, statement or lock timeout: HTTP 503, retry
    │   └── EmbeddingsReplaced     a re-embed swapped the collection's vectors during the search
    └── DatabaseFault              the database answered with an error only an operator can fix: HTTP 500
        └── DatabaseDiskFull       its disk is full: HTTP 507

psycopg's (and the ingest package's) errors are translated to these at one place,
`retriever.engine.map_errors`, by SQLSTATE with `database_error` below; the CLI and HTTP
each map these once more, to exit codes and problem details.
"""

from __future__ import annotations

__all__ = [
    "CollectionIncomplete",
    "CollectionNotFound",
    "ConfigurationError",
    "DatabaseDiskFull",
    "DatabaseFault",
    "DatabaseUnavailable",
    "DocumentNotFound",
    "EmbeddingMismatch",
    "EmbeddingsReplaced",
    "EmbeddingsUnavailable",
    "HybridRagError",
    "InputError",
    "InvalidFilter",
    "InvalidName",
    "LimitExceeded",
    "NotFound",
    "database_error",
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
    """A parameter or payload over a configured limit, or over one PostgreSQL enforces."""


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


class EmbeddingsUnavailable(HybridRagError):
    """The embedding service (an OpenAI-compatible server) could not be reached, timed out, or is
    overloaded; retry later. A request it refuses for good is a `ConfigurationError` or `InputError`."""

    retry_after_s: int = 5


def embedding_service_error(exc: BaseException) -> HybridRagError | None:
    """Ours for an error of the OpenAI client (None for any other): passing trouble is
    `EmbeddingsUnavailable`, a key, permission or model the service refuses `ConfigurationError`,
    a request it rejects `InputError`. The client is imported only when one of its errors is seen."""
    if type(exc).__module__.partition(".")[0] != "openai":
        return None
    import openai

    said = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError)):
        return EmbeddingsUnavailable(f"the embedding service is unavailable ({said}): retry later")
    if isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError)):
        return ConfigurationError(f"the embedding service refused the request ({said}): check EMBEDDINGS and the key")
    if isinstance(exc, openai.BadRequestError):
        return InputError(f"the embedding service rejected the input: {said}")
    return EmbeddingsUnavailable(f"the embedding service failed ({said}): retry later")


class DatabaseUnavailable(HybridRagError):
    """The database cannot be reached or did not answer in time; retry later.

    `summary` (when set) is the message without the database's own words: what an HTTP
    client is told, since the driver's text names hosts and sockets.
    """

    retry_after_s: int = 5

    def __init__(self, message: str, summary: str | None = None) -> None:
        super().__init__(message)
        self.summary = summary


class EmbeddingsReplaced(DatabaseUnavailable):
    """A re-embed made other vectors the collection's between a search's model check and its statement.

    The engine retries such a search with the collection's new model; this reaches a caller
    only when the vectors were replaced again and again meanwhile.
    """


class DatabaseFault(HybridRagError):
    """The database answered with an error that retrying will not fix until an operator acts.

    The message is one line: what happened in plain words, the database's own first line,
    and what to do. `summary` is the plain words alone: what an HTTP client is told.
    """

    def __init__(self, message: str, summary: str | None = None) -> None:
        super().__init__(message)
        self.summary = summary


class DatabaseDiskFull(DatabaseFault):
    """The database server's disk is full: nothing can be written until space is freed."""


# SQLSTATE (a code, else its two-character class) → our class, what happened, what to do.
# Connection failures without a SQLSTATE (could not connect, connection lost) are for
# `map_errors` to recognise; it hands them over as class 08.
_UNREACHABLE = "database unreachable"
_NODE_LOST = "failure on connection marked as essential"  # Citus, src/backend/distributed/transaction
_SQLSTATES: dict[str, tuple[type[HybridRagError], str, str]] = {
    # passing trouble: retry later
    "08": (DatabaseUnavailable, _UNREACHABLE, ""),  # connection_exception
    "57P01": (DatabaseUnavailable, _UNREACHABLE, ""),  # admin_shutdown
    "57P02": (DatabaseUnavailable, _UNREACHABLE, ""),  # crash_shutdown
    "57P03": (DatabaseUnavailable, _UNREACHABLE, ""),  # cannot_connect_now: starting up, recovering
    "57P05": (DatabaseUnavailable, _UNREACHABLE, ""),  # idle_session_timeout ended the session
    "53300": (DatabaseUnavailable, "the database accepts no more connections", ""),  # too_many_connections
    "57014": (DatabaseUnavailable, "the database did not answer in time", ""),  # query_canceled
    "55P03": (DatabaseUnavailable, "the database did not grant a lock in time", ""),  # lock_not_available
    "40": (DatabaseUnavailable, "the database aborted the transaction over a conflict with another one", ""),
    # raised by hybrid_rag.expect_embeddings (migration m007): the collection was re-embedded meanwhile
    "HR001": (EmbeddingsReplaced, "the collection's embeddings were replaced during the search", ""),
    # a collection dropped between reading the registry and reading its tables
    "42P01": (CollectionNotFound, "the collection was dropped meanwhile", ""),  # undefined_table
    # the caller's input
    "22": (InputError, "the database rejected a value", ""),  # data_exception
    "54": (LimitExceeded, "over a PostgreSQL limit", ""),  # program_limit_exceeded
    # an operator must act
    "53100": (DatabaseDiskFull, "the database server's disk is full", "free disk space on it, then retry"),
    "53200": (DatabaseFault, "the database server ran out of memory", "give it more memory or less load"),
    "53400": (DatabaseFault, "the database server reached a configured limit", "raise the setting it names"),
    "53": (DatabaseFault, "the database server ran out of a resource", "see the server's log"),
    "58030": (DatabaseFault, "the database server could not read or write its files", "check its disks and log"),
    "58P01": (DatabaseFault, "a file the database server needs is missing", "check its installation (pgvector)"),
    "58": (DatabaseFault, "the database server failed at the operating-system level", "see the server's log"),
    "XX001": (DatabaseFault, "the database reports corrupted data", "restore the table from a backup"),
    "XX002": (DatabaseFault, "the database reports a corrupted index", "REINDEX it (`hybrid-rag maintain --reindex`)"),
    "XX": (DatabaseFault, "the database server failed internally", "see the server's log"),
    "F0": (DatabaseFault, "the database server's configuration file is broken", "fix it (its log names the line)"),
    "42501": (
        DatabaseFault,
        "the database role lacks a privilege",
        "grant it to the role of DATABASE_URL (DATABASE_READ_URL for searches) on schema hybrid_rag and its tables",
    ),
    "25006": (DatabaseFault, "the database accepts no writes (a standby?)", "point DATABASE_URL at the primary"),
}


def database_error(sqlstate: str | None, reported: str, *, operational: bool = False) -> HybridRagError:
    """Our error for a database error, by its SQLSTATE.

    `reported` is the database's first message line, passwords already masked. Passing
    trouble (an outage, a timeout, a conflict) is `DatabaseUnavailable`; data the database
    rejects, `InputError` or `LimitExceeded`; faults an operator must fix (disk, memory,
    files, corruption, privileges), `DatabaseFault`, whose message says what to do.
    An unclassified code is `DatabaseUnavailable` when `operational` (psycopg's
    OperationalError), else `DatabaseFault`: never a traceback.
    """
    if sqlstate == "XX000" and reported.startswith(_NODE_LOST):
        sqlstate = "08006"  # a Citus worker lost mid-transaction: an outage, reported without a code of its own
    found = (_SQLSTATES.get(sqlstate) or _SQLSTATES.get(sqlstate[:2])) if sqlstate else None
    if found is None:
        failed = "the database could not run the statement"
        if operational:
            return DatabaseUnavailable(f"{failed}: {reported}", failed)
        return DatabaseFault(f"{failed} ({reported}): see the server's log", summary=failed)
    kind, what, action = found
    if issubclass(kind, DatabaseFault):
        return kind(f"{what} ({reported}): {action}", summary=what)
    if issubclass(kind, DatabaseUnavailable):
        return kind(f"{what}: {reported}", summary="the database is unreachable" if what == _UNREACHABLE else what)
    return kind(f"{what}: {reported}")
