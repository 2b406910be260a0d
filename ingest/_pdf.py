"""PDF files: the text pypdf extracts, page by page."""

from pathlib import Path

from pypdf import PdfReader

from ._errors import SkipFile
from ._text import clean_title


def load_pdf(path: Path) -> tuple[str | None, str]:
    """Read a PDF as (document-info title, text of its pages)."""
    if path.stat().st_size == 0:
        raise SkipFile("empty file")
    try:
        reader = PdfReader(path)
        if reader.is_encrypted and not reader.decrypt(""):
            raise SkipFile("encrypted PDF")
        pages = [page.extract_text() or "" for page in reader.pages]
        info = reader.metadata
        raw_title = info.title if info is not None else None
    except (SkipFile, OSError):
        raise
    except Exception as error:  # pypdf raises many types on malformed files
        raise SkipFile(f"unreadable PDF ({type(error).__name__}: {error})") from error
    text = "\n\n".join(page.strip() for page in pages if page.strip())
    if not text:
        raise SkipFile("PDF has no extractable text (scanned images?)")
    return clean_title(str(raw_title)) if raw_title else None, text
