"""Document records ({"id", "title", "text", "metadata"}) from JSONL or the HTTP API."""

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, NamedTuple

from ._clean import text_problem, value_problem
from ._errors import IngestInputError
from ._models import SourceDocument
from ._text import clean_title


class RecordError(ValueError):
    """A record that cannot become a document; the message says which field is wrong."""


class Record(NamedTuple):
    id: str | None
    title: str | None
    text: str
    metadata: dict[str, Any]


def parse_record(record: object) -> Record:
    """Check one record's fields; BEIR's ``_id`` is accepted as well as ``id``."""
    if not isinstance(record, Mapping):
        raise RecordError("expected a JSON object")
    return Record(
        id=_id(record),
        title=_title(record.get("title")),
        text=_text(record),
        metadata=_metadata(record.get("metadata")),
    )


def iter_records(records: Iterable[Mapping[str, Any]], source: str) -> Iterator[SourceDocument]:
    """Turn posted records into documents; the first invalid one is rejected.

    A record without an id gets one derived from its text, so posting the same
    text twice updates one document instead of adding a second.
    """
    seen: set[str] = set()
    for position, raw in enumerate(records):
        try:
            record = parse_record(raw)
        except RecordError as error:
            raise IngestInputError(f"documents[{position}]: {error}") from None
        document_id = record.id or text_id(record.text)
        if document_id in seen:
            raise IngestInputError(f"documents[{position}]: duplicate id {document_id!r}")
        seen.add(document_id)
        yield SourceDocument(document_id, record.text, record.title, source, record.metadata)


def text_id(text: str) -> str:
    """A stable id for a document that came without one."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _id(record: Mapping[str, Any]) -> str | None:
    value = record.get("_id", record.get("id"))
    if value is None:
        return None
    # bool is an int subclass; true is no id
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise RecordError("id must be a string or an integer")
    if isinstance(value, str) and not value.strip():
        raise RecordError("id must not be empty")
    _check(text_problem(str(value), "id"))
    return str(value)


def _title(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise RecordError("title must be a string")
    _check(text_problem(value, "title"))
    # BEIR corpora write "title": "" for untitled documents
    return clean_title(value)


def _text(record: Mapping[str, Any]) -> str:
    if "text" not in record:
        raise RecordError("missing text")
    value = record["text"]
    if not isinstance(value, str):
        raise RecordError("text must be a string")
    if not value.strip():
        raise RecordError("empty text")
    _check(text_problem(value, "text"))
    return value


def _metadata(value: object) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise RecordError("metadata must be an object")
    _check(value_problem(value, "metadata"))
    return dict(value)


def _check(problem: str | None) -> None:
    # what PostgreSQL text or jsonb cannot hold would fail the whole batch in the database
    if problem is not None:
        raise RecordError(problem)
