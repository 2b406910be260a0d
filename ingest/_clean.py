"""What PostgreSQL `text` and `jsonb`, UTF-8 and a tokenizer can hold.

Extracted text (a PDF's broken ligature map, an HTML page's control characters) is
cleaned: it is the extractor's artefact, not the author's words. A document a caller
built (a JSONL record, a posted record, a Python `SourceDocument`) is checked instead,
and one that cannot be stored is skipped with the reason.
"""

import json
import math
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["MAX_DEPTH", "clean_text", "document_problem", "text_problem", "value_problem"]

MAX_DEPTH = 32
"""Nesting of a JSON value: far deeper would exhaust Python's recursion (and no one's metadata needs it)."""

# C0 controls and DEL, but tab, newline, vertical tab, form feed and carriage return: NUL cannot be
# stored in `text` at all, the others are noise no reader or tokenizer wants.
_CONTROLS = re.compile("[\x00-\x08\x0e-\x1f\x7f]")
# After JSON decoding a valid pair is one character: a surrogate left in a str is unpaired, and
# UTF-8 cannot encode it.
_SURROGATES = re.compile("[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """Text without control characters (but whitespace) and with each unpaired surrogate as U+FFFD."""
    return _SURROGATES.sub("\ufffd", _CONTROLS.sub("", text))


def text_problem(text: str, where: str) -> str | None:
    """Why `text` cannot be stored (a NUL, an unpaired surrogate), or None."""
    if "\x00" in text:
        return f"{where} contains a NUL character"
    if found := _SURROGATES.search(text):
        return f"{where} contains an unpaired surrogate (U+{ord(found.group()):04X})"
    return None


def value_problem(value: object, where: str, depth: int = 0) -> str | None:
    """Why a JSON value cannot be stored as `jsonb`: a key or string `text_problem`, a non-finite
    number, a key that is not a string, a value JSON has no type for, nesting deeper than MAX_DEPTH;
    None when it can."""
    if depth > MAX_DEPTH:
        return f"{where} nests deeper than {MAX_DEPTH} levels"
    if isinstance(value, str):
        return text_problem(value, where)
    if isinstance(value, bool | int) or value is None:
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{where} is not a finite number"
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{where} has a key that is not a string ({key!r})"
            if problem := text_problem(key, f"a key of {where}") or value_problem(item, f"{where}.{key}", depth + 1):
                return problem
        return None
    if isinstance(value, list | tuple):
        for position, item in enumerate(value):
            if problem := value_problem(item, f"{where}[{position}]", depth + 1):
                return problem
        return None
    return f"{where} holds a {type(value).__name__}, which JSON has no type for"


def document_problem(document_id: str, title: str | None, text: str, metadata: Mapping[str, Any]) -> str | None:
    """Why a document cannot be stored whole, naming the field; None when it can."""
    problem = (
        text_problem(document_id, "the id")
        or (text_problem(title, "the title") if title is not None else None)
        or text_problem(text, "the text")
        or value_problem(metadata, "metadata")
    )
    if problem is None:
        try:  # what is left: e.g. an int too long for Python's int-to-text limit
            json.dumps(metadata, allow_nan=False)
        except (TypeError, ValueError) as error:
            problem = f"metadata is not JSON ({error})"
    return problem
