"""HTML pages become the text a reader sees: whole words, headings as lines, no navigation or footers."""

import subprocess
import sys
from pathlib import Path

from ingest import ChunkingConfig, SkippedSource, SourceDocument, iter_documents, split_document

# The shape of a PostgreSQL manual page (DocBook XSL): a navigation strip, a table of
# contents, sections whose headings sit in nested title divs, text wrapped at ~80
# columns with inline tags, and the same strip again at the foot.
MANUAL_PAGE = """<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN" "http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">
<html xmlns="http://www.w3.org/1999/xhtml"><head><title>25.1. Routine Vacuuming</title></head><body>
<div class="navheader"><table width="100%" summary="Navigation header">
<tr><th colspan="5" align="center">25.1. Routine Vacuuming</th></tr>
<tr><td><a accesskey="p" href="maintenance.html">Prev</a> </td><td><a accesskey="u" href="maintenance.html">Up</a></td>
<th width="60%" align="center">Chapter 25. Routine Database Maintenance Tasks</th>
<td><a accesskey="h" href="index.html">Home</a></td><td> <a accesskey="n" href="routine-reindex.html">Next</a></td></tr>
</table><hr /></div>
<div class="sect1" id="ROUTINE-VACUUMING"><div class="titlepage"><div><div>
<h2 class="title" style="clear: both">25.1. Routine Vacuuming</h2></div></div></div>
<div class="toc"><dl class="toc">
<dt><span class="sect2"><a href="#VACUUM-BASICS">25.1.1. Vacuuming Basics</a></span></dt>
<dt><span class="sect2"><a href="#VACUUM-FOR-SPACE-RECOVERY">25.1.2. Recovering Disk Space</a></span></dt>
</dl></div>
<p>
    <span class="productname">PostgreSQL</span> databases require periodic
    maintenance known as <em class="firstterm">vacuuming</em>.  For many installations, it
    is sufficient to let vacuuming be performed by the autovacuum daemon.
   </p>
<div class="sect2" id="VACUUM-BASICS"><div class="titlepage"><div><div>
<h3 class="title">25.1.1. Vacuuming Basics</h3></div></div></div>
<p>
    The usual goal of routine vacuuming is to do standard <code class="command">VACUUM</code>s
    often enough to avoid needing <code class="command">VACUUM FULL</code>.  The autovacuum
    daemon attempts to work this way, and in fact will never issue
    <code class="command">VACUUM FULL</code>.
   </p>
<p>
    <span class="productname">PostgreSQL</span> supports building indexes without locking
    out writes, so that a table stays in service while an index is built.
   </p>
</div></div>
<div class="navfooter"><hr /><table width="100%" summary="Navigation footer">
<tr><td width="40%" align="left"><a accesskey="p" href="maintenance.html">Prev</a> </td>
<td width="20%" align="center"><a accesskey="u" href="maintenance.html">Up</a></td>
<td width="40%" align="right"> <a accesskey="n" href="routine-reindex.html">Next</a></td></tr>
<tr><td width="40%" align="left" valign="top">Chapter 25. Routine Database Maintenance Tasks </td>
<td width="20%" align="center"><a accesskey="h" href="index.html">Home</a></td>
<td width="40%" align="right" valign="top"> 25.2. Routine Reindexing</td></tr></table></div>
</body></html>"""

# The shape of a sample-corpus page: site navigation, an ad slot, the article, a
# related-links aside and a footer.
WEB_PAGE = """<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<title>Water for Coffee</title><script>var ADS = true;</script></head><body>
<header><nav aria-label="Main"><ul><li><a href="/coffee/">All coffee guides</a></li>
<li><a href="/shop/">Shop</a></li></ul></nav></header>
<article><h1>Water for Coffee</h1>
<p>A cup of filter coffee is more than 98% water, so the water you brew with has a large effect on flavour.</p>
<h2>The SCA water standard</h2>
<ul><li>Calcium hardness: about 68 mg/L expressed as CaCO<sub>3</sub>.</li>
<li>Total alkalinity: at or near 40 mg/L as CaCO<sub>3</sub>.</li></ul>
<p>Many city water supplies in limestone regions are far harder than this.</p>
</article>
<aside class="related"><h3>You might also like</h3><a href="/coffee/grinders/">Choosing a grinder</a></aside>
<footer><p>&copy; Example Coffee Notes. All prices include VAT.</p></footer>
</body></html>"""


def load_page(tmp_path: Path, markup: str, name: str = "page.html") -> SourceDocument:
    path = tmp_path / name
    path.write_text(markup, encoding="utf-8")
    skipped: list[SkippedSource] = []
    [doc] = iter_documents([path], skipped.append)
    assert skipped == []
    return doc


def test_words_are_not_broken_at_inline_tags(tmp_path: Path) -> None:
    doc = load_page(tmp_path, MANUAL_PAGE)
    assert "to do standard VACUUMs often enough to avoid needing VACUUM FULL." in doc.text
    assert "PostgreSQL supports building indexes without locking out writes, so" in doc.text
    assert "CaCO3" in load_page(tmp_path, WEB_PAGE, "web.html").text


def test_source_line_wrapping_inside_a_paragraph_is_not_kept(tmp_path: Path) -> None:
    lines = load_page(tmp_path, MANUAL_PAGE).text.split("\n")
    assert (
        "PostgreSQL databases require periodic maintenance known as vacuuming. For many installations, it "
        "is sufficient to let vacuuming be performed by the autovacuum daemon."
    ) in lines


def test_manual_navigation_strip_and_table_of_contents_are_dropped(tmp_path: Path) -> None:
    doc = load_page(tmp_path, MANUAL_PAGE)
    for boilerplate in ("Prev", "Next", "Home", "Chapter 25", "25.1.2. Recovering Disk Space", "25.2. Routine"):
        assert boilerplate not in doc.text
    first_chunk = split_document(doc, ChunkingConfig())[0]
    assert first_chunk.content.startswith("25.1. Routine Vacuuming\nPostgreSQL databases require periodic")


def test_site_navigation_aside_and_footer_are_dropped(tmp_path: Path) -> None:
    doc = load_page(tmp_path, WEB_PAGE)
    for boilerplate in ("All coffee guides", "Shop", "You might also like", "Choosing a grinder", "VAT", "ADS"):
        assert boilerplate not in doc.text
    assert "Many city water supplies in limestone regions are far harder than this." in doc.text


def test_headings_are_lines_of_their_own_and_the_title_is_not_repeated(tmp_path: Path) -> None:
    manual = load_page(tmp_path, MANUAL_PAGE)
    assert manual.title == "25.1. Routine Vacuuming"
    assert "25.1.1. Vacuuming Basics\nThe usual goal of routine vacuuming" in manual.text
    assert not manual.text.startswith("25.1. Routine Vacuuming")
    web = load_page(tmp_path, WEB_PAGE, "web.html")
    assert web.title == "Water for Coffee"
    assert web.text.startswith("A cup of filter coffee")
    assert "\nThe SCA water standard\n" in web.text


def test_same_bytes_give_the_same_text_in_every_process(tmp_path: Path) -> None:
    path = tmp_path / "page.html"
    path.write_text(MANUAL_PAGE + WEB_PAGE.replace("<!DOCTYPE html>", ""), encoding="utf-8")
    script = (
        f"from ingest._html import load_html; from pathlib import Path; print(repr(load_html(Path({str(path)!r}))))"
    )
    runs = {
        subprocess.run(
            [sys.executable, "-c", script], env={"PYTHONHASHSEED": seed}, capture_output=True, text=True, check=True
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(runs) == 1
    assert "Prev" not in runs.pop()


def test_control_characters_are_cleaned_from_title_and_text(tmp_path: Path) -> None:
    markup = "<html><head><title>Bell\x07 Title</title></head><body><article><p>Escape\x1b[0m and bell\x07 gone.</p>"
    doc = load_page(tmp_path, markup + "</article></body></html>")
    assert doc.title == "Bell Title"
    assert doc.text == "Escape[0m and bell gone."


def test_extraction_benchmark_counts_what_the_old_loader_got_wrong(tmp_path: Path) -> None:
    from bench.extraction import CANDIDATES, measure

    pages = [tmp_path / "manual.html", tmp_path / "web.html"]
    for path, markup in zip(pages, (MANUAL_PAGE, WEB_PAGE), strict=True):
        path.write_text(markup, encoding="utf-8")
    chosen = {name: CANDIDATES[name] for name in ("bs4 get_text (anchor)", "ingest (trafilatura, tuned)")}
    anchor, ours = measure(pages, chosen).values()
    assert (anchor.pages, ours.pages) == (2, 2)
    assert anchor.broken_words == 3 and ours.broken_words == 0  # VACUUMs, CaCO3 twice
    assert anchor.nav_lines > 10 and ours.nav_lines == 0
    assert anchor.split_lines > 0 and ours.split_lines == 0
    assert (ours.headings_kept, ours.headings) == (2, 3)  # not the aside's "You might also like"
    assert ours.content_kept / ours.reference >= 0.9
