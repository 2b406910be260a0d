"""HTML files: the main text of the page, as a reader sees it, and its title.

trafilatura finds the main content and drops what is around it: navigation, headers
and footers, asides, cookie banners, the PostgreSQL manual's Prev/Up/Home/Next strips
and tables of contents. Paragraphs, list items, table rows and headings become lines
of their own; inline tags (`<code>`, `<a>`, `<sub>`) never break a line or a word.
`python -m bench.extraction` measures it against other extractors.
"""

import re
from configparser import ConfigParser
from functools import cache
from pathlib import Path

import lxml.html
from lxml.etree import ParserError

from ._clean import clean_text
from ._errors import SkipFile
from ._text import clean_title, read_text

__all__ = ["drop_title_line", "html_to_text", "load_html", "page_title"]

# CSS `white-space: normal`: a run of blanks and line breaks shows as one space.
_BLANKS = re.compile(r"[ \t\n\r\f]+")
_EDGE_BLANKS = re.compile(r"^ (?! )|[ \t]+$", re.MULTILINE)
_PREFORMATTED = {"pre", "textarea", "listing", "plaintext", "xmp"}
_HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
# the first text nodes after an element, in document order, that a reader sees
_FOLLOWING_TEXT = "following::text()[not(ancestor::script or ancestor::style)][position() <= 12]"
_LEAD_WORDS = 8  # words of a section's first text that find where it starts in the extracted text
_WORD = re.compile(r"\w+")
_PARSER = lxml.html.HTMLParser(encoding="utf-8", remove_comments=True)


def load_html(path: Path) -> tuple[str | None, str]:
    """Read an HTML file as (title, main text); raise SkipFile when it has none."""
    try:
        title, body = html_to_text(read_text(path))
    except (ValueError, TypeError, LookupError, RecursionError) as error:
        # what lxml and trafilatura raise on markup they cannot take: one odd page must not end the run
        raise SkipFile(f"unreadable HTML ({type(error).__name__}: {error})") from error
    if not body:
        raise SkipFile("no visible text")
    return title, body


def html_to_text(markup: str) -> tuple[str | None, str]:
    """Title (see `page_title`) and main text; the text does not start with the title again."""
    tree = _parse(markup)
    if tree is None:
        return None, ""
    title = _title(tree)
    _collapse_blanks(tree)
    sections = _section_starts(tree, title)
    import trafilatura  # a quarter of a second to import: only when there is HTML to read

    # favor_recall: a manual page's short code listings and tables are content, not clutter
    body = trafilatura.extract(
        tree, output_format="txt", favor_recall=True, include_comments=False, deduplicate=False, config=_config()
    )
    # a collapsed line break leaves one blank at a paragraph's edges; deeper indents are code
    body = _EDGE_BLANKS.sub("", _restore_headings(body or "", sections))
    return title, drop_title_line(title, clean_text(body))


def page_title(markup: str) -> str | None:
    """The ``<title>``, else the first ``<h1>``, whitespace collapsed; None when neither has text."""
    tree = _parse(markup)
    return _title(tree) if tree is not None else None


def drop_title_line(title: str | None, body: str) -> str:
    """The body without surrounding blanks, less a first line that repeats the title (it heads every chunk).

    A first line that is a piece of the title goes too: trafilatura can keep the code
    of a heading alone ("pg_class" of "53.11. <code>pg_class</code>").
    """
    body = body.strip()
    first, _, rest = body.partition("\n")
    line = clean_title(first.lstrip("#"))
    if title is not None and line is not None and line in title:
        return rest.strip()
    return body


@cache
def _config() -> ConfigParser:
    from trafilatura.settings import use_config

    config = use_config()
    # trafilatura's defaults suit crawled news: below 250 characters of main text it falls back
    # to every text on the page (navigation too), and it ignores files over 20 MB. A note of
    # two sentences is a document here, and a file named for ingest is read whole anyway.
    config.set("DEFAULT", "MIN_EXTRACTED_SIZE", "1")
    config.set("DEFAULT", "MAX_FILE_SIZE", str(2**62))
    return config


def _parse(markup: str) -> lxml.html.HtmlElement | None:
    try:
        # bytes with the encoding named: a stale <meta charset> must not re-decode text already read as UTF-8
        # cleaned first: lxml refuses control characters, and a lone surrogate cannot be encoded
        return lxml.html.document_fromstring(clean_text(markup).encode("utf-8"), parser=_PARSER)
    except (ParserError, ValueError):
        return None  # nothing but blanks and comments


def _title(tree: lxml.html.HtmlElement) -> str | None:
    for found in (tree.find(".//title"), tree.find(".//h1")):
        if found is not None and (title := clean_title(clean_text(found.text_content()))):
            return title
    return None


def _collapse_blanks(tree: lxml.html.HtmlElement) -> None:
    """Collapse blanks as a browser does, outside preformatted text.

    Source files wrap paragraphs at ~80 columns; kept, those line breaks would cut
    sentences ("without locking\\nout writes") wherever a chunk or a reader meets them.
    """
    for element in tree.iter():
        if not isinstance(element.tag, str) or _preformatted(element):
            continue
        if element.text:
            element.text = _BLANKS.sub(" ", element.text)
        parent = element.getparent()
        if element.tail and (parent is None or not _preformatted(parent)):
            element.tail = _BLANKS.sub(" ", element.tail)


def _section_starts(tree: lxml.html.HtmlElement, title: str | None) -> list[tuple[str, list[str]]]:
    """Each heading but the title, with the first words of the text that follows it."""
    sections = []
    for heading in tree.iter(*_HEADINGS):
        text = clean_title(clean_text(heading.text_content()))
        lead = _words("".join(heading.xpath(_FOLLOWING_TEXT)))[:_LEAD_WORDS]
        if text and text != title and lead:
            sections.append((text, lead))
    return sections


def _restore_headings(body: str, sections: list[tuple[str, list[str]]]) -> str:
    """Put each heading back as a line of its own before the line where its section's text starts.

    trafilatura keeps headings only when it finds the page's main container (an
    `<article>`, a `<main>`, a content `<div>` it knows by name); elsewhere, the
    PostgreSQL manual among them, it keeps paragraphs, lists, tables and code alone. A
    section starts on the first line, after the previous heading's, that begins with
    the words that follow its heading in the page. A heading whose section was dropped
    as boilerplate, or that is already a line, is not added.
    """
    lines = body.split("\n")
    starts = [_words(line)[:_LEAD_WORDS] for line in lines]
    present = {" ".join(line.split()) for line in lines}
    before: dict[int, list[str]] = {}
    cursor = 0
    for heading, lead in sections:
        if heading in present:
            continue
        found = next((n for n in range(cursor, len(lines)) if starts[n] and starts[n] == lead[: len(starts[n])]), None)
        if found is not None:
            before.setdefault(found, []).append(heading)
            cursor = found
    return "\n".join(line for number, text in enumerate(lines) for line in [*before.get(number, []), text])


def _words(text: str) -> list[str]:
    return _WORD.findall(text.casefold())


def _preformatted(element: lxml.html.HtmlElement) -> bool:
    return any(node.tag in _PREFORMATTED for node in (element, *element.iterancestors()))
