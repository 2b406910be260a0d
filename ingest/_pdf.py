"""PDF files: the text pypdf extracts, page by page, and where each page starts."""

from pathlib import Path
from typing import NamedTuple

from pypdf import PdfReader

from ._clean import clean_text
from ._errors import SkipFile
from ._text import clean_title

__all__ = ["PdfText", "load_pdf", "read_pdf"]

_PAGE_BREAK = "\n\n"


class PdfText(NamedTuple):
    """A PDF's document-info title (None without one), its text, and each page's offset in that text."""

    title: str | None
    text: str
    page_starts: tuple[int, ...]
    """One offset per page, page 1 first; a page without text starts where the next one does."""


def load_pdf(path: Path) -> tuple[str | None, str]:
    """Read a PDF as (document-info title, text of its pages)."""
    title, text, _ = read_pdf(path)
    return title, text


def read_pdf(path: Path) -> PdfText:
    """Read a PDF's title, text and page offsets; raise SkipFile when it has no usable text.

    Pages are joined by a blank line. Extracted text is cleaned (`clean_text`): a
    font whose ligature map is broken yields NUL for "ff" ("o\\x00er"), which
    PostgreSQL text cannot hold.
    """
    if path.stat().st_size == 0:
        raise SkipFile("empty file")
    try:
        reader = PdfReader(path)
        if reader.is_encrypted and not reader.decrypt(""):
            raise SkipFile("encrypted PDF")
        pages = [clean_text(page.extract_text() or "").strip() for page in reader.pages]
        info = reader.metadata
        raw_title = info.title if info is not None else None
    except (SkipFile, OSError):
        raise
    except Exception as error:  # pypdf raises many types on malformed files
        raise SkipFile(f"unreadable PDF ({type(error).__name__}: {error})") from error
    text = _PAGE_BREAK.join(page for page in pages if page)
    if not text:
        raise SkipFile("PDF has no extractable text (scanned images?)")
    title = clean_title(clean_text(str(raw_title))) if raw_title else None
    return PdfText(title, text, _page_starts(pages))


def _page_starts(pages: list[str]) -> tuple[int, ...]:
    starts: list[int] = []
    position = 0
    for page in pages:
        if page and position:
            position += len(_PAGE_BREAK)
        starts.append(position)
        position += len(page)
    # a page without text starts where the next page with text does
    for number in range(len(pages) - 2, -1, -1):
        if not pages[number]:
            starts[number] = starts[number + 1]
    return tuple(starts)
