"""Errors raised by ingest.

    IngestInputError (ValueError)   input that cannot be ingested at all: a path
                                    that does not exist, a bad ChunkingConfig,
                                    an invalid posted document.

Problems with one source among many (an empty file, a bad JSONL line) are not
errors: they are reported through ``on_skip`` as a ``SkippedSource`` and
ingestion goes on.
"""


class IngestInputError(ValueError):
    """User input that cannot be ingested at all."""


class SkipFile(Exception):
    """Internal signal from a loader: this file is skipped, for ``reason``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
