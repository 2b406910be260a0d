"""Markdown files: the first level-1 heading is the title, the rest is the body."""

import re
from pathlib import Path

from ._errors import SkipFile
from ._text import clean_title, read_text

# CommonMark ATX heading of level 1, optional closing hashes.
_H1 = re.compile(r" {0,3}#[ \t]+(?P<title>.*?)(?:[ \t]+#+)?[ \t]*")
_FENCE = re.compile(r" {0,3}(?P<marker>`{3,}|~{3,})")


def load_markdown(path: Path) -> tuple[str | None, str]:
    """Read a markdown file as (title, body)."""
    title, body = split_markdown_title(read_text(path))
    if not body.strip():
        raise SkipFile("no text besides the title")
    return title, body


def split_markdown_title(text: str) -> tuple[str | None, str]:
    """Take the first ``# `` heading out of the text; it becomes the title."""
    lines = text.split("\n")
    fence: str | None = None
    for number, line in enumerate(lines):
        # a "# comment" inside a fenced code block is code, not a heading
        if match := _FENCE.match(line):
            marker = match["marker"]
            if fence is None:
                fence = marker
            elif marker[0] == fence[0] and len(marker) >= len(fence):
                fence = None
            continue
        if fence is None and (match := _H1.fullmatch(line)):
            title = clean_title(match["title"])
            if title:
                return title, "\n".join(lines[:number] + lines[number + 1 :])
    return None, text
