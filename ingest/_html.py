"""HTML files: the visible text of the page and its title."""

import re
from pathlib import Path

from bs4 import BeautifulSoup, Tag

from ._errors import SkipFile
from ._text import clean_title, read_text

# Not read by a person looking at the page, or (nav) repeated on every page.
_INVISIBLE = ["head", "title", "script", "style", "noscript", "template", "nav"]
_BLANK_RUNS = re.compile(r"\n{3,}")


def load_html(path: Path) -> tuple[str | None, str]:
    """Read an HTML file as (title, visible text)."""
    title, body = html_to_text(read_text(path))
    if not body:
        raise SkipFile("no visible text")
    return title, body


def html_to_text(markup: str) -> tuple[str | None, str]:
    """Title from ``<title>`` or the first ``<h1>``; body from the visible text."""
    # html.parser ships with Python: output must not depend on what else is installed
    soup = BeautifulSoup(markup, "html.parser")
    title = clean_title(soup.title.get_text()) if soup.title else None
    h1 = soup.find("h1")
    if isinstance(h1, Tag):
        heading = clean_title(h1.get_text())
        title = title or heading
        if heading == title:
            # the title is prefixed to every chunk; keeping the heading would repeat it
            h1.decompose()
    for tag in soup(_INVISIBLE):
        tag.decompose()
    lines = (line.strip() for line in soup.get_text("\n").splitlines())
    return title, _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip()
