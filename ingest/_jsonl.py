"""JSONL corpora, plain or gzipped, one document per line (BEIR ``corpus.jsonl``)."""

import gzip
import io
import json
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

from ._models import SkippedSource, SourceDocument
from ._records import RecordError, parse_record

_SNIFF_BYTES = 8192


def iter_jsonl(path: Path, seen: set[str], on_skip: Callable[[SkippedSource], None]) -> Iterator[SourceDocument]:
    """Yield a document per valid line; report bad lines and ids already ``seen``."""
    where = path.as_posix()
    try:
        with _open(path) as stream:
            yield from _documents(stream, where, seen, on_skip)
    except PermissionError:
        on_skip(SkippedSource(where, "permission denied"))
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        # lines read so far stay ingested; nothing after the damage can be trusted
        on_skip(SkippedSource(where, f"corrupt gzip file ({error})"))
    except OSError as error:
        on_skip(SkippedSource(where, f"cannot read file ({error.strerror or error})"))


def _open(path: Path) -> io.BufferedIOBase:
    # gzip.open reads nothing yet: a corrupt archive shows up while lines are read
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else path.open("rb")


def _documents(
    stream: io.BufferedIOBase,
    where: str,
    seen: set[str],
    on_skip: Callable[[SkippedSource], None],
) -> Iterator[SourceDocument]:
    if b"\0" in stream.read(_SNIFF_BYTES):
        on_skip(SkippedSource(where, "binary file"))
        return
    stream.seek(0)
    found_a_line = False
    for number, raw in enumerate(stream, start=1):
        if not raw.strip():
            continue
        found_a_line = True
        try:
            record = parse_record(json.loads(raw.decode("utf-8-sig")))
        except UnicodeDecodeError:
            on_skip(SkippedSource(where, f"line {number}: not valid UTF-8"))
            continue
        except json.JSONDecodeError as error:
            on_skip(SkippedSource(where, f"line {number}: invalid JSON ({error.msg})"))
            continue
        except RecursionError:
            on_skip(SkippedSource(where, f"line {number}: JSON nested too deeply"))
            continue
        except RecordError as error:
            on_skip(SkippedSource(where, f"line {number}: {error}"))
            continue
        if record.id is None:
            on_skip(SkippedSource(where, f'line {number}: missing id ("_id" or "id")'))
            continue
        if record.id in seen:
            on_skip(SkippedSource(where, f"line {number}: duplicate id {record.id}"))
            continue
        seen.add(record.id)
        yield SourceDocument(record.id, record.text, record.title, where, record.metadata)
    if not found_a_line:
        on_skip(SkippedSource(where, "empty file"))
