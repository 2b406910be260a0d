"""`python -m bench.extraction DIR...`: how much real text and how little boilerplate each HTML extractor keeps.

Every `.html`/`.htm` file under each folder is turned into text by each candidate, split
by ingest's own splitter (default `ChunkingConfig`, the page title heading every chunk),
and counted. The anchor, run in the same process on the same pages, is the loader that
ingest used before: BeautifulSoup's `get_text("\\n")` with head, script, style and `<nav>`
removed. Every other candidate but ingest's own gets its title, and the dropping of a
first line that repeats it, from ingest, so only the body extraction differs.

What the columns count (rules read from the source page, never from an extractor):

- **chars**: characters of body text, each run of blanks counted as one.
- **content kept**: of the words on the anchor's lines that are not nav lines, the
  share found in the output (as a multiset, page by page): real text kept.
- **chunks**: chunks `split_document` makes of the text.
- **nav chunks**: chunks of which at least half the words are boilerplate words. The
  boilerplate phrases of a page are the text of each of its links (`<a>`) and each
  text node of two or more words (but the title) inside a landmark that is not the
  page's content: `<nav>`, `<header>`, `<footer>`, `<aside>`, an element with role
  navigation, banner or contentinfo, and the DocBook navigation of the PostgreSQL
  manual (`div.navheader`, `div.navfooter`, `div.toc`). A chunk's words are covered
  greedily, longest phrase first; the title prefix is not judged. Prev/Up/Home/Next
  strips and tables of contents are all links.
- **nav-led**: pages whose text opens, a line repeating the title aside, with a nav line
  (below), as the manual's pages did with their Prev/Up/Home/Next strip.
- **nav lines**: non-blank lines made wholly of boilerplate phrases, such as "© Example
  Coffee Notes. All prices include VAT." in a sample page's footer, but the page's
  headings (the manual links every section heading from its table of contents).
- **headings**: share of the page's `<h1>`-`<h6>` texts (but the title) found as a line
  of their own, blanks collapsed.
- **broken words**: words the source writes whole across an inline tag
  (`<code>VACUUM</code>s`, `CaCO<sub>3</sub>`), found split by blanks in the output.
- **split lines**: lines starting in lower case right after a line that ends in a
  letter, digit or comma: a sentence broken over lines ("locking\\nout writes"). Code
  listings count too, alike for every extractor that keeps them.
- **ms/page**: extraction time alone, not the counting.
"""

from __future__ import annotations

import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import click
from bs4 import BeautifulSoup, NavigableString, Tag

from ingest import ChunkingConfig, SourceDocument, split_document
from ingest._html import drop_title_line, html_to_text, page_title

__all__ = ["CANDIDATES", "Figures", "boilerplate_phrases", "broken_words", "measure", "nav_share"]

Extractor = Callable[[str], tuple[str | None, str]]
_WORD = re.compile(r"\w+")
_LANDMARKS = "nav, header, footer, aside, [role=navigation], [role=banner], [role=contentinfo], "
_LANDMARKS += "div.navheader, div.navfooter, div.toc"
# HTML's phrasing elements: text runs through them without a break in a browser.
_INLINE = frozenset("a abbr acronym b bdi bdo cite code data dfn em font i kbd mark q s samp small span".split())
_INLINE |= frozenset("strong sub sup time tt u var".split())


def _anchor(markup: str) -> tuple[str | None, str]:
    """The replaced loader: every text node on a line of its own."""
    soup = BeautifulSoup(markup, "html.parser")
    title = " ".join(soup.title.get_text().split()) or None if soup.title else None
    h1 = soup.find("h1")
    if isinstance(h1, Tag):
        heading = " ".join(h1.get_text().split()) or None
        title = title or heading
        if heading == title:
            h1.decompose()
    for tag in soup(["head", "title", "script", "style", "noscript", "template", "nav"]):
        tag.decompose()
    lines = (line.strip() for line in soup.get_text("\n").splitlines())
    return title, re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _body_only(extract: Callable[[str], str]) -> Extractor:
    def run(markup: str) -> tuple[str | None, str]:
        title = page_title(markup)
        return title, drop_title_line(title, extract(markup))

    return run


def _trafilatura(markup: str) -> str:
    import trafilatura

    return trafilatura.extract(markup, output_format="txt", include_comments=False, deduplicate=False) or ""


def _inscriptis(markup: str) -> str:
    from inscriptis import get_text

    return get_text(markup)


def _resiliparse(markup: str) -> str:
    from resiliparse.extract.html2text import extract_plain_text

    return extract_plain_text(markup, main_content=True, alt_texts=False)


def _readability(markup: str) -> str:
    from inscriptis import get_text
    from readability import Document

    return get_text(Document(markup).summary(html_partial=True))


CANDIDATES: dict[str, Extractor] = {
    "bs4 get_text (anchor)": _anchor,
    "trafilatura, defaults": _body_only(_trafilatura),
    "inscriptis, whole page": _body_only(_inscriptis),
    "resiliparse": _body_only(_resiliparse),
    "readability + inscriptis": _body_only(_readability),
    "ingest (trafilatura, tuned)": html_to_text,
}


@dataclass
class Figures:
    """One extractor's sums over one folder's pages."""

    pages: int = 0
    chars: int = 0
    content_kept: int = 0
    reference: int = 0
    chunks: int = 0
    nav_chunks: int = 0
    nav_led: int = 0
    nav_lines: int = 0
    broken_words: int = 0
    split_lines: int = 0
    headings: int = 0
    headings_kept: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)


def _words(text: str) -> list[str]:
    return [word.casefold() for word in _WORD.findall(text)]


def boilerplate_phrases(soup: BeautifulSoup, title: str | None) -> dict[str, list[tuple[str, ...]]]:
    """The page's link texts and landmark text nodes as word tuples, by first word, longest first."""
    phrases = {tuple(_words(link.get_text(" "))) for link in soup.find_all("a")}
    # a landmark's lone words ("UPDATE" in the manual's footer) and the title recur in the content
    landmark = {
        tuple(_words(str(text))) for element in soup.select(_LANDMARKS) for text in element.find_all(string=True)
    }
    phrases |= {words for words in landmark if len(words) > 1 and words != tuple(_words(title or ""))}
    phrases.discard(())
    by_first: dict[str, list[tuple[str, ...]]] = defaultdict(list)
    for phrase in sorted(phrases, key=len, reverse=True):
        by_first[phrase[0]].append(phrase)
    return by_first


def _covered(words: list[str], phrases: dict[str, list[tuple[str, ...]]]) -> int:
    covered = position = 0
    while position < len(words):
        match = next(
            (p for p in phrases.get(words[position], ()) if tuple(words[position : position + len(p)]) == p), ()
        )
        covered += len(match)
        position += len(match) or 1
    return covered


def nav_share(text: str, phrases: dict[str, list[tuple[str, ...]]]) -> float:
    """Share of the words of ``text`` covered by boilerplate phrases, 0 to 1."""
    words = _words(text)
    return _covered(words, phrases) / len(words) if words else 0.0


def broken_words(soup: BeautifulSoup, text: str) -> int:
    """How often ``text`` splits with whitespace a word that runs across an inline tag in the page."""
    spanning: set[tuple[str, ...]] = set()
    for block in _blocks(soup):
        joined, cuts = "", set()
        for piece in block:
            cuts.add(len(joined))
            joined += piece
        for match in _WORD.finditer(joined):
            inner = [cut for cut in sorted(cuts) if match.start() < cut < match.end()]
            bounds = [match.start(), *inner, match.end()]
            if inner:
                spanning.add(tuple(joined[a:b] for a, b in pairwise(bounds)))
    pattern = r"\b{}\b"
    return sum(len(re.findall(pattern.format(r"\s+".join(map(re.escape, parts))), text)) for parts in spanning)


def _blocks(soup: BeautifulSoup) -> Iterable[list[str]]:
    """The text nodes of each block, in order: inline tags do not start a new block."""
    blocks: dict[int, list[str]] = defaultdict(list)
    for node in soup.find_all(string=True):
        if not isinstance(node, NavigableString) or type(node) is not NavigableString:
            continue  # comments, doctype, CDATA
        parent = node.parent
        while parent is not None and parent.name in _INLINE:
            parent = parent.parent
        if parent is not None and parent.name not in ("script", "style", "pre"):
            blocks[id(parent)].append(str(node))
    return blocks.values()


def split_lines(text: str) -> int:
    """Lines that start in lower case right after a line ending in a letter, digit or comma."""
    lines = [line.strip() for line in text.splitlines()]
    return sum(_continues(before, line) for before, line in pairwise(lines))


def _continues(before: str, line: str) -> bool:
    return bool(before) and bool(line) and (before[-1].isalnum() or before[-1] == ",") and line[0].islower()


def measure(pages: Sequence[Path], extractors: dict[str, Extractor]) -> dict[str, Figures]:
    """Run every extractor over the pages and sum its figures; the first extractor is the anchor."""
    figures = {name: Figures() for name in extractors}
    for path in pages:
        markup = path.read_text(encoding="utf-8", errors="replace")
        soup = BeautifulSoup(markup, "html.parser")
        for br in soup.find_all("br"):
            br.replace_with("\n")  # a line break, not a join: `<code>A</code><br><code>B</code>` is two words
        phrases = boilerplate_phrases(soup, page_title(markup))
        reference: Counter[str] | None = None
        for name, extract in extractors.items():
            started = time.perf_counter()
            try:
                title, body = extract(markup)
            except Exception as error:  # a candidate that fails a page is counted, not fatal
                figures[name].failures.append(f"{path.name}: {type(error).__name__}")
                continue
            seconds = time.perf_counter() - started
            lines = [line for line in body.splitlines() if line.strip()]
            content = Counter(_words("\n".join(line for line in lines if nav_share(line, phrases) < 1.0)))
            reference = content if reference is None else reference
            _add(figures[name], title, body, lines, phrases, soup, content & reference, seconds)
            figures[name].reference += sum(reference.values())
    return figures


def _add(
    figure: Figures,
    title: str | None,
    body: str,
    lines: list[str],
    phrases: dict[str, list[tuple[str, ...]]],
    soup: BeautifulSoup,
    kept: Counter[str],
    seconds: float,
) -> None:
    chunks = split_document(SourceDocument("page", body, title, "page", {}), ChunkingConfig())
    prefix = len(f"{title}\n") if title else 0
    figure.pages += 1
    figure.seconds += seconds
    figure.chars += len(" ".join(body.split()))
    figure.content_kept += sum(kept.values())
    figure.chunks += len(chunks)
    figure.nav_chunks += sum(nav_share(chunk.content[prefix:], phrases) >= 0.5 for chunk in chunks)
    found = [" ".join(h.get_text(" ").split()) for h in soup.find_all(["h1", "h2", "h3", "h4", "h5", "h6"])]
    found = [heading for heading in found if heading and heading != title]
    own_lines = {" ".join(line.split()) for line in lines}
    nav = [nav_share(line, phrases) == 1.0 and " ".join(line.split()) not in found for line in lines]
    figure.nav_lines += sum(nav)
    opening = [is_nav for line, is_nav in zip(lines, nav, strict=True) if " ".join(line.split()) != title]
    figure.nav_led += bool(opening and opening[0])
    figure.broken_words += broken_words(soup, body)
    figure.split_lines += split_lines(body)
    figure.headings += len(found)
    figure.headings_kept += sum(heading in own_lines for heading in found)


def table(folder: str, figures: dict[str, Figures]) -> str:
    """One folder's figures, one line per extractor, the anchor first."""
    header = (
        f"{'extractor':<28}{'pages':>6}{'chars':>11}{'content kept':>13}{'chunks':>8}{'nav chunks':>11}{'nav-led':>8}"
    )
    header += f"{'nav lines':>10}{'headings':>9}{'broken words':>13}{'split lines':>12}{'ms/page':>9}"
    lines = [f"{folder}", header, "-" * len(header)]
    for name, f in figures.items():
        kept = f"{f.content_kept / f.reference:.1%}" if f.reference else "-"
        headings = f"{f.headings_kept / f.headings:.0%}" if f.headings else "-"
        lines.append(
            f"{name:<28}{f.pages:>6}{f.chars:>11,}{kept:>13}{f.chunks:>8}{f.nav_chunks:>11}{f.nav_led:>8}{f.nav_lines:>10}{headings:>9}"
            f"{f.broken_words:>13}{f.split_lines:>12}{1000 * f.seconds / max(f.pages, 1):>9.1f}"
        )
        if f.failures:
            lines.append(f"  failed on {len(f.failures)} pages, e.g. {f.failures[0]}")
    return "\n".join(lines)


@click.command("extraction", help=__doc__.split("\n\n")[0], context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("folders", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--limit", type=int, help="at most this many pages per folder, evenly spread")
def main(folders: tuple[Path, ...], limit: int | None) -> None:
    for folder in folders:
        pages = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".html", ".htm") and p.is_file())
        if not pages:
            raise click.ClickException(f"{folder} holds no .html or .htm files")
        if limit and len(pages) > limit:
            pages = pages[:: len(pages) // limit][:limit]
        click.echo(table(str(folder), measure(pages, CANDIDATES)))
        click.echo()


if __name__ == "__main__":
    main()
