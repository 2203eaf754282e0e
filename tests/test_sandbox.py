"""Tests for qa.ingest.sandbox and reading budgets: hostile PDFs and Word files cost a clear message."""

from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path

import pytest
from test_formats import article_paragraphs, make_docx, make_pdf

from qa.ingest.errors import SourceError
from qa.ingest.formats import docx_text
from qa.ingest.sandbox import extract
from qa.ingest.sources import collect_sources, read_source


def _pdf_sharing_one_stream(pages: int, operators: int) -> bytes:
    """A PDF whose ``pages`` pages all draw one content stream of ``operators`` text operators."""
    ops = b"".join(b"BT /F1 1 Tf %d %d Td (b) Tj ET\n" % (i % 600, (i * 7) % 780) for i in range(operators))
    kids = " ".join(f"{5 + i} 0 R" for i in range(pages)).encode()
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, pages),
            b"<< /Length %d >>\nstream\n" % len(ops) + ops + b"\nendstream",
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    objs += [b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 3 0 R "
             b"/Resources << /Font << /F1 4 0 R >> >> >>"] * pages
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for i, obj in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + obj + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


def test_a_small_pdf_and_docx_read_in_the_child_with_little_overhead(tmp_path: Path) -> None:
    pdf = make_pdf(tmp_path / "a.pdf", article_paragraphs()[:2]).read_bytes()
    start = time.monotonic()
    assert "Erdogan" in extract("pdf", pdf, "a.pdf")
    assert time.monotonic() - start < 5  # about 0.3-0.5 s on 2 shared cores
    docx = make_docx(tmp_path / "a.docx", article_paragraphs()[:2]).read_bytes()
    assert "Motor Sich" in extract("docx", docx, "a.docx")


def test_a_pdf_that_costs_far_more_than_its_size_is_stopped_at_the_deadline() -> None:
    pdf = _pdf_sharing_one_stream(300, 4000)  # 130 KB, about 40 s to read: every page parses the stream
    start = time.monotonic()
    with pytest.raises(SourceError, match=r"report\.pdf took longer than 3 s to read"):
        extract("pdf", pdf, "report.pdf", seconds=3)
    assert time.monotonic() - start < 8


def test_a_reader_that_needs_too_much_memory_is_stopped(tmp_path: Path) -> None:
    pdf = make_pdf(tmp_path / "a.pdf", article_paragraphs()[:2]).read_bytes()
    with pytest.raises(SourceError, match=r"a\.pdf needs more than 30 MB to read"):
        extract("pdf", pdf, "a.pdf", memory=30 * 2**20)  # Python and pypdf alone need more


def _docx_with(tmp_path: Path, name: str, data: bytes, *, level: int = 6) -> bytes:
    """A real .docx with one part added or replaced (deflated at ``level``)."""
    source = make_docx(tmp_path / "base.docx", ["A paragraph."]).read_bytes()
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(source)) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED,
                                                                      compresslevel=level) as zout:
        for item in zin.infolist():
            if item.filename != name:
                zout.writestr(item, zin.read(item))
        zout.writestr(name, data)
    return out.getvalue()


@pytest.mark.parametrize(("part", "size", "why"), [
    ("word/media/image1.png", 150 * 2**20, "unpacks to 151 MB"),  # about 150 KB stored
    ("word/document.xml", 20 * 2**20, "times larger than it is stored"),
])
def test_word_compression_bombs_are_refused_before_inflating(tmp_path: Path, part: str, size: int,
                                                              why: str) -> None:
    docx = _docx_with(tmp_path, part, bytes(size), level=9)
    start = time.monotonic()
    with pytest.raises(SourceError, match=why):
        docx_text(docx, "bomb.docx")
    assert time.monotonic() - start < 2


@pytest.mark.parametrize("xml", [
    b"<w:document xmlns:w='http://schemas.openxmlformats.org/wordprocessingml/2006/main'><w:body><w:p>",
    b"<w:document xmlns:w='http://schemas.openxmlformats.org/wordprocessingml/2006/main'><w:body>"
    + b"<w:p>" * 300 + b"</w:p>" * 300 + b"</w:body></w:document>",
    b"\xff\xfe not xml at all",
])
def test_a_damaged_word_file_is_a_source_error(tmp_path: Path, xml: bytes) -> None:
    path = tmp_path / "damaged.docx"
    path.write_bytes(_docx_with(tmp_path, "word/document.xml", xml))
    with pytest.raises(SourceError, match=r"damaged\.docx: not a readable Word \.docx file"):
        read_source(path)


def test_names_with_terminal_escapes_are_made_printable(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "ok\x1b[31m.txt").write_text("The mill was built by Anna Berg in 1990.", encoding="utf-8")
    (folder / "pic\x1b]0;owned\x07.png").write_bytes(b"\x89PNG")
    logged: list[str] = []
    sources = collect_sources([folder], log=logged.append, root=tmp_path)
    assert logged and "\x1b" not in logged[0] and "\x07" not in logged[0]
    assert list(sources) == ["docs/ok\x1b[31m.txt"]  # the name stays the file's own for the index
    (folder / "bad\x1b[2J.pdf").write_bytes(b"%PDF-1.4 broken")
    with pytest.raises(SourceError) as e:
        collect_sources([folder], root=tmp_path)
    assert "\x1b" not in str(e.value) and "docs/bad?[2J.pdf" in str(e.value)
