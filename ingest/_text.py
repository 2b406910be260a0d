"""Reading text files: the checks every text format shares, and plain text itself."""

from pathlib import Path

from ._clean import clean_text
from ._errors import SkipFile

# Same window git uses to tell binary from text.
_SNIFF_BYTES = 8192


def read_text(path: Path) -> str:
    """Read a UTF-8 text file, control characters dropped, or raise SkipFile when it holds no usable text."""
    data = path.read_bytes()
    if b"\0" in data[:_SNIFF_BYTES]:
        raise SkipFile("binary file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise SkipFile("not valid UTF-8") from None
    if "\0" in text:
        # a NUL past the sniffed window: still a binary file, not text with a stray character
        raise SkipFile("binary file")
    # an escape sequence or a bell in a log or a note is noise to every reader and tokenizer
    text = clean_text(normalise_newlines(text))
    if not text.strip():
        raise SkipFile("empty file")
    return text


def normalise_newlines(text: str) -> str:
    """Use "\\n" only, so a file checked out on Windows hashes like it does on Linux."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def clean_title(title: str | None) -> str | None:
    """Collapse whitespace in a title; a blank title is no title."""
    if title is None:
        return None
    return " ".join(title.split()) or None


def load_plain_text(path: Path) -> tuple[str | None, str]:
    """Plain text has no title: the whole file is the body."""
    return None, read_text(path)
