"""Finding the documents under the paths a user names: folders, files, ids.

A file's document id is its real path: absolute, symlinks resolved, in POSIX form
(`/home/ann/kb/ferns.md`), so one file is one document however its path is spelled
(relative, absolute, `./`, `..`, through a symlink, from another working directory)
and two different files never share an id. Its chunks' `source` is the same path; a
JSONL corpus's records keep their own ids, with the corpus file's real path as `source`.
"""

import gzip
import os
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from ._errors import IngestInputError, SkipFile
from ._html import load_html
from ._jsonl import iter_jsonl
from ._markdown import load_markdown
from ._models import SkippedSource, SourceDocument
from ._pdf import read_pdf
from ._text import load_plain_text

__all__ = ["OnSkip", "file_document_id", "iter_documents"]

OnSkip = Callable[[SkippedSource], None]
Loader = Callable[[Path], tuple[str | None, str] | tuple[str | None, str, tuple[int, ...]]]

_LOADERS: dict[str, Loader] = {
    ".txt": load_plain_text,
    ".md": load_markdown,
    ".markdown": load_markdown,
    ".html": load_html,
    ".htm": load_html,
    ".pdf": read_pdf,
}
_CORPORA = (".jsonl", ".jsonl.gz")


def file_document_id(path: str | Path) -> str:
    """The document id (and chunk `source`) of the file at `path`: its real path, absolute, in POSIX form.

    `docs/a.md`, `./docs/a.md`, `/srv/x/../docs/a.md` and a symlink to it all give the
    same id. The file need not exist (then the path is made absolute, resolving what exists).
    """
    return Path(os.path.realpath(path)).as_posix()


def iter_documents(paths: Iterable[str | Path], on_skip: OnSkip) -> Iterator[SourceDocument]:
    """Yield the documents in files and folders, reporting each file or line left out.

    Raises IngestInputError at once, before anything is read, when a path does
    not exist. A file's id and `source` are `file_document_id(file)`, whether it
    was named directly or found in a folder; JSONL lines keep their own ids, with
    the corpus file's real path as `source`. Skipped files are reported by the
    path as given. The same file named twice (or found under two roots) is read
    once; a JSONL id already seen in this call is reported and skipped, never
    silently overwritten.
    """
    # a lone path is a common slip: iterating "docs" would yield "d", "o", ...
    given = [paths] if isinstance(paths, str | Path) else list(paths)
    missing = [str(path) for path in given if not os.path.exists(path)]
    if missing:
        raise IngestInputError(f"path does not exist: {', '.join(missing)}")
    return _iter_documents([Path(path) for path in given], on_skip)


def _iter_documents(roots: list[Path], on_skip: OnSkip) -> Iterator[SourceDocument]:
    seen: set[str] = set()
    for root in roots:
        for path, document_id in _files(root, on_skip):
            yield from _load(path, document_id, seen, on_skip)


def _files(root: Path, on_skip: OnSkip) -> Iterator[tuple[Path, str]]:
    """Each file under `root` (or `root` itself), as given for messages, with its document id."""
    if not root.is_dir():
        yield root, file_document_id(root)
        return
    for relative in _walk(root, on_skip):
        yield root / relative, file_document_id(root / relative)


def _walk(folder: Path, on_skip: OnSkip) -> list[Path]:
    """Every non-hidden file under ``folder``, relative to it, in sorted order."""

    def report(error: OSError) -> None:
        reason = "permission denied" if isinstance(error, PermissionError) else error.strerror
        where = Path(error.filename or folder).as_posix()
        on_skip(SkippedSource(where, reason or str(error)))

    found: list[Path] = []
    # symlinked folders are not followed: a link back up the tree would never end
    for top, dirs, files in os.walk(folder, onerror=report):
        dirs[:] = [name for name in dirs if not name.startswith(".")]
        base = Path(top).relative_to(folder)
        found.extend(base / name for name in files if not name.startswith("."))
    return sorted(found, key=lambda path: path.parts)


def _load(path: Path, document_id: str, seen: set[str], on_skip: OnSkip) -> Iterator[SourceDocument]:
    where = path.as_posix()
    kind = _file_type(path)
    if kind not in _LOADERS and kind not in _CORPORA:
        on_skip(SkippedSource(where, f"unsupported file type {kind or '(no extension)'}"))
        return
    if not path.is_file():
        # a FIFO or socket would block or fail on read
        on_skip(SkippedSource(where, "not a regular file"))
        return
    if kind in _CORPORA:
        # read through the real path, so that its records' `source` is as stable as a file's id
        yield from iter_jsonl(Path(document_id), seen, on_skip)
        return
    if document_id in seen:  # the same file named twice (or by two paths): read once, nothing skipped
        return
    try:
        # a paged source (PDF) also gives where each page starts
        title, text, *paged = _LOADERS[kind](path)
    except SkipFile as skip:
        on_skip(SkippedSource(where, skip.reason))
        return
    except PermissionError:
        on_skip(SkippedSource(where, "permission denied"))
        return
    except OSError as error:
        on_skip(SkippedSource(where, f"cannot read file ({error.strerror or error})"))
        return
    seen.add(document_id)
    yield SourceDocument(document_id, text, title, document_id, {}, page_starts=paged[0] if paged else None)


def _file_type(path: Path) -> str:
    name = path.name.lower()
    return ".jsonl.gz" if name.endswith(".jsonl.gz") else path.suffix.lower()


def count_documents(paths: Iterable[str | Path]) -> int:
    """How many documents `iter_documents` will read at most: files of a known type, and JSONL lines.

    For a progress total: one cheap pass (JSONL files are read, not parsed), errors counted as nothing.
    """
    given = [paths] if isinstance(paths, str | Path) else list(paths)
    total = 0
    for root in (Path(path) for path in given if os.path.exists(path)):
        for path, _ in _files(root, lambda item: None):
            kind = _file_type(path)
            if kind in _LOADERS:
                total += 1
            elif kind in _CORPORA:
                total += _count_lines(path)
    return total


def _count_lines(path: Path) -> int:
    try:
        with gzip.open(path, "rb") if path.name.lower().endswith(".gz") else path.open("rb") as stream:
            return sum(1 for line in stream if line.strip())
    except (OSError, EOFError, zlib.error):
        return 0
