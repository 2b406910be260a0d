"""PDF files: text page by page, the document-info title, the page each chunk starts on."""

from pathlib import Path

from ingest import ChunkingConfig, SkippedSource, SourceDocument, iter_documents, split_document
from ingest._pdf import read_pdf


def load(*paths: Path) -> tuple[list[SourceDocument], list[SkippedSource]]:
    skipped: list[SkippedSource] = []
    return list(iter_documents(paths, skipped.append)), skipped


def write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def make_pdf(pages: list[str], title: str | None = None) -> bytes:
    """A minimal PDF whose pages show the given text in Helvetica (PDF string syntax: ``\\000`` is byte 0)."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    kids = []
    for text in pages:
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode() if text else b""
        page_number, content_number = len(objects) + 1, len(objects) + 2
        kids.append(f"{page_number} 0 R".encode())
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % content_number
        )
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (
        b" ".join(kids),
        len(pages),
    )
    if title is not None:
        objects.append(b"<< /Title (%s) >>" % title.encode())
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    info = b" /Info %d 0 R" % len(objects) if title is not None else b""
    out += b"trailer\n<< /Size %d /Root 1 0 R%s >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        info,
        xref,
    )
    return bytes(out)


def test_pdf_text_of_all_pages_is_joined_and_info_title_kept(tmp_path: Path) -> None:
    path = write(
        tmp_path / "manual.pdf",
        make_pdf(["Hello from page one", "Page two here"], title="A Manual"),
    )
    [doc], skipped = load(path)
    assert skipped == []
    assert doc.title == "A Manual"
    assert doc.text == "Hello from page one\n\nPage two here"


def test_pdf_without_info_title_has_no_title(tmp_path: Path) -> None:
    [doc], _ = load(write(tmp_path / "plain.pdf", make_pdf(["Body text"])))
    assert doc.title is None
    assert doc.text == "Body text"


def test_pdf_without_extractable_text_is_skipped(tmp_path: Path) -> None:
    path = write(tmp_path / "scan.pdf", make_pdf([""]))
    docs, skipped = load(path)
    assert docs == []
    assert [s.reason for s in skipped] == ["PDF has no extractable text (scanned images?)"]


def test_pdf_that_pypdf_cannot_read_is_skipped(tmp_path: Path) -> None:
    path = write(tmp_path / "broken.pdf", b"%PDF-1.4\nthis is not really a pdf")
    docs, skipped = load(path)
    assert docs == []
    assert len(skipped) == 1
    assert skipped[0].reason.startswith("unreadable PDF")


def test_each_chunk_carries_the_page_it_starts_on(tmp_path: Path) -> None:
    pages = [" ".join(f"alpha{i}" for i in range(30)), "", " ".join(f"gamma{i}" for i in range(30))]
    pdf = read_pdf(write(tmp_path / "paged.pdf", make_pdf(pages, title="Paged Report")))
    assert pdf.page_starts == (0, len(pages[0]) + 2, len(pages[0]) + 2)
    doc = SourceDocument("paged.pdf", pdf.text, pdf.title, "paged.pdf", {}, page_starts=pdf.page_starts)
    chunks = split_document(doc, ChunkingConfig(chunk_size=100, chunk_overlap=20))
    assert len(chunks) > 4
    for chunk in chunks:
        expected = 1 if chunk.content.split("\n", 1)[1].startswith("alpha") else 3  # page 2 is blank
        assert chunk.metadata["page"] == expected
        assert chunk.metadata["title"] == "Paged Report"
    [unpaged] = split_document(SourceDocument("a", "plain text", None, "a", {}), ChunkingConfig())
    assert "page" not in unpaged.metadata


def test_pdf_found_in_a_folder_keeps_its_page_starts(tmp_path: Path) -> None:
    write(tmp_path / "two.pdf", make_pdf(["First page text", "Second page text"]))
    [doc], _ = load(tmp_path)
    assert doc.page_starts == (0, len("First page text") + 2)
    assert [
        chunk.metadata["page"] for chunk in split_document(doc, ChunkingConfig(chunk_size=20, chunk_overlap=0))
    ] == [
        1,
        2,
    ]


def test_nul_from_a_broken_ligature_map_is_cleaned_not_fatal(tmp_path: Path) -> None:
    path = write(tmp_path / "ligatures.pdf", make_pdf([r"o\000er free notebooks"], title=r"Ti\001tle"))
    [doc], skipped = load(path)
    assert skipped == []
    assert doc.text == "oer free notebooks"
    assert doc.title == "Title"
