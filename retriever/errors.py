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
    ├── ConfigurationError         settings that cannot work (missing extra, bad EMBEDDINGS)
    ├── DatabaseUnavailable        cannot connect, connection lost, statement or lock timeout: HTTP 503, retry
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


class DatabaseUnavailable(HybridRagError):
    """The database cannot be reached or did not answer in time; retry later.

    `summary` (when set) is the message without the database's own words: what an HTTP
    client is told, since the driver's text names hosts and sockets.
    """

    retry_after_s: int = 5

    def __init__(self, message: str, summary: str | None = None) -> None:
        super().__init__(message)
        self.summary = summary


class DatabaseFault(HybridRagError):
    """The database answered with an error that retrying will not fix until an operator acts.

    The message is one line: what happened in plain words, the database's own first line,
    and what to do. `summary` is the same without the database's words (HTTP clients get it).
    """

    def __init__(self, message: str, summary: str | None = None) -> None:
        super().__init__(message)
        self.summary = summary


class DatabaseDiskFull(DatabaseFault):
    """The database server's disk is full: nothing can be written until space is freed."""


# SQLSTATE (a code, else its two-character class) → our class, what happened, what to do.
# Connection failures without a SQLSTATE (could not connect, connection lost) are `map_errors`'
# to recognise; it hands them over as class 08.
_UNREACHABLE = "database unreachable"
_SQLSTATES: dict[str, tuple[type[HybridRagError], str, str]] = {
    "08": (DatabaseUnavailable, _UNREACHABLE, ""),  # connection exception
    "57P01": (DatabaseUnavailable, _UNREACHABLE, ""),  # admin_shutdown
    "57P02": (DatabaseUnavailable, _UNREACHABLE, ""),  # crash_shutdown
    "57P03": (DatabaseUnavailable, _UNREACHABLE, ""),  # cannot_connect_now (starting, recovering)
    "57P05": (DatabaseUnavailable, _UNREACHABLE, ""),  # idle_session_timeout ended the session
    "53300": (DatabaseUnavailable, "the database accepts no more connections", ""),  # too_many_connections
    "57014": (DatabaseUnavailable, "the database did not answer in time", ""),  # query_canceled
    "55P03": (DatabaseUnavailable, "the database did not grant a lock in time", ""),  # lock_not_available
    "40": (DatabaseUnavailable, "the database aborted the transaction over a conflict with another one", ""),
    "22": (InputError, "the database rejected a value", ""),  # data exception
    "54": (LimitExceeded, "over a PostgreSQL limit", ""),  # program_limit_exceeded
    "53100": (
        DatabaseDiskFull,
        "the database server's disk is full",
        "free disk space on the database server, then retry",
    ),
    "53200": (
        DatabaseFault,
        "the database server ran out of memory",
        "give it more memory or lower its work_mem or its load, then retry",
    ),
    "53400": (
        DatabaseFault,
        "the database server reached a configured limit",
        "raise the setting it names, then retry",
    ),
    "53": (DatabaseFault, "the database server ran out of a resource", "see the server's log, free it, then retry"),
    "58030": (
        DatabaseFault,
        "the database server could not read or write its files",
        "check the server's disks and its log",
    ),
    "58P01": (
        DatabaseFault,
        "a file the database server needs is missing",
        "check the server's installation (pgvector's files among them) and its log",
    ),
    "58": (DatabaseFault, "the database server failed at the operating-system level", "see the server's log"),
    "XX001": (
        DatabaseFault,
        "the database reports corrupted data",
        "restore the table it names from a backup",
    ),
    "XX002": (
        DatabaseFault,
        "the database reports a corrupted index",
        "REINDEX the index it names (`hybrid-rag maintain --reindex` rebuilds a collection's)",
    ),
    "XX": (DatabaseFault, "the database server failed internally", "see the server's log"),
    "F0": (DatabaseFault, "the database server's configuration file is broken", "fix it (the log names the line)"),
    "42501": (
        DatabaseFault,
        "the database role has no permission for this",
        "grant it to the role of DATABASE_URL (or DATABASE_READ_URL for searches) on the schema hybrid_rag and its tables",
    ),
    "25006": (
        DatabaseFault,
        "the database accepts no writes (a standby, or read-only transactions)",
        "point DATABASE_URL at the primary",
    ),
}


def database_error(sqlstate: str | None, reported: str) -> HybridRagError | None:
    """Our error for a database error by its SQLSTATE; None when the code is not one we classify.

    `reported` is the database's first message line, passwords already masked. Client-side
    conditions (timeouts, lost connections, data the database rejects) are
    `DatabaseUnavailable`, `InputError` and `LimitExceeded`; server-side faults that an
    operator must fix (disk, memory, files, corruption, privileges) are `DatabaseFault`.
    """
    if not sqlstate:
        return None
    found = _SQLSTATES.get(sqlstate) or _SQLSTATES.get(sqlstate[:2])
    if found is None:
        return None
    kind, what, action = found
    if issubclass(kind, DatabaseFault):
        return kind(f"{what} ({reported}): {action}", summary=f"{what}: {action}")
    if issubclass(kind, DatabaseUnavailable):
        return kind(f"{what}: {reported}", summary="the database is unreachable" if what == _UNREACHABLE else what)
    return kind(f"{what}: {reported}")
