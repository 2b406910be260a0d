"""Finding the documents under the paths a user names: folders, files, ids."""

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from ._errors import IngestInputError, SkipFile
from ._html import load_html
from ._jsonl import iter_jsonl
from ._markdown import load_markdown
from ._models import SkippedSource, SourceDocument
from ._pdf import load_pdf
from ._text import load_plain_text

OnSkip = Callable[[SkippedSource], None]
Loader = Callable[[Path], tuple[str | None, str]]

_LOADERS: dict[str, Loader] = {
    ".txt": load_plain_text,
    ".md": load_markdown,
    ".markdown": load_markdown,
    ".html": load_html,
    ".htm": load_html,
    ".pdf": load_pdf,
}
_CORPORA = (".jsonl", ".jsonl.gz")


def iter_documents(paths: Iterable[str | Path], on_skip: OnSkip) -> Iterator[SourceDocument]:
    """Yield the documents in files and folders, reporting each file or line left out.

    Raises IngestInputError at once, before anything is read, when a path does
    not exist. Ids of files found in a folder are the folder's name followed by
    the path inside it (``docs/a/b.md``); a file named directly keeps its path as
    given, normalised. JSONL lines keep their own ids. An id already seen in
    this call is reported and skipped, never silently overwritten.
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
    if not root.is_dir():
        yield root, os.path.normpath(root).replace(os.sep, "/")
        return
    # abspath, so that "." and "docs/" still have a name
    prefix = Path(os.path.abspath(root)).name
    for relative in _walk(root, on_skip):
        yield root / relative, "/".join(filter(None, (prefix, relative.as_posix())))


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
        yield from iter_jsonl(path, seen, on_skip)
        return
    try:
        title, text = _LOADERS[kind](path)
    except SkipFile as skip:
        on_skip(SkippedSource(where, skip.reason))
        return
    except PermissionError:
        on_skip(SkippedSource(where, "permission denied"))
        return
    except OSError as error:
        on_skip(SkippedSource(where, f"cannot read file ({error.strerror or error})"))
        return
    if document_id in seen:
        on_skip(SkippedSource(where, f"duplicate id {document_id}"))
        return
    seen.add(document_id)
    yield SourceDocument(document_id, text, title, where, {})


def _file_type(path: Path) -> str:
    name = path.name.lower()
    return ".jsonl.gz" if name.endswith(".jsonl.gz") else path.suffix.lower()
