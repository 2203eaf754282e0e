"""Tests for qa.ingest.formats: PDF, Word and web pages read into text, with clear errors; pages cited."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ARTICLE, FakeEmbedder, FakeReader, QuietHandler

import qa.ingest.fetch
import qa.ingest.formats
from qa.chat.chatbot import Chatbot
from qa.ingest.errors import SourceError
from qa.ingest.formats import PAGE_BREAK
from qa.ingest.sources import collect_sources, read_source


def article_paragraphs() -> list[str]:
    """The seed article's paragraphs."""
    return [p for p in ARTICLE.read_text(encoding="utf-8").split("\n\n") if p.strip()]


def make_pdf(path: Path, paragraphs: list[str], *, per_page: int = 4, password: str | None = None) -> Path:
    """A PDF with ``per_page`` paragraphs on each page (fpdf2)."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=11)
    if password:
        pdf.set_encryption(owner_password="owner", user_password=password)
    for i, para in enumerate(paragraphs):
        if i % per_page == 0:
            pdf.add_page()
        pdf.multi_cell(0, 6, para.encode("latin-1", "replace").decode("latin-1"))
        pdf.ln(4)
    pdf.output(str(path))
    return path


def make_docx(path: Path, paragraphs: list[str]) -> Path:
    """A Word document with one paragraph each, and a small table."""
    import docx

    document = docx.Document()
    for para in paragraphs:
        document.add_paragraph(para)
    table = document.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text, table.rows[0].cells[1].text = "Engine maker", "Motor Sich"
    document.save(str(path))
    return path


def test_a_pdf_reads_page_by_page_and_answers_cite_the_page(tmp_path: Path) -> None:
    pdf = make_pdf(tmp_path / "article.pdf", article_paragraphs())
    text = read_source(pdf)
    assert text.count(PAGE_BREAK) == 2  # 10 paragraphs, 4 to a page
    assert "Petro Burkovskiy" in text and "KIEV - Turkish President" in text
    bot = Chatbot(sources=[pdf], index_dir=tmp_path / "index", embedder=FakeEmbedder(), reader=FakeReader(),
                  log=lambda m: None)
    answer = bot.ask("Who tried to buy the factory?")
    assert answer.text and text[answer.start:answer.end] == answer.text
    assert answer.page == text.count("\f", 0, answer.start) + 1
    assert answer.citation == f"{answer.source} p. {answer.page}"
    for hit in answer.passages:
        assert text[hit.start:hit.end] == hit.text
        assert hit.page == text.count("\f", 0, hit.start) + 1
    assert any(h.page and h.page > 1 for h in bot.retrieve("Chinese investors bought the factory"))


def test_a_docx_reads_paragraphs_and_tables(tmp_path: Path) -> None:
    text = read_source(make_docx(tmp_path / "article.docx", article_paragraphs()))
    assert text.startswith("By Dorian Jones\n\nKIEV") and text.endswith("Engine maker | Motor Sich")
    assert "\f" not in text


@pytest.mark.parametrize(("content", "why"), [
    (b"%PDF-1.4\n garbage that is not a pdf", "not a readable PDF"),
    (b"", "not a readable PDF"),
])
def test_a_damaged_pdf_is_named(tmp_path: Path, content: bytes, why: str) -> None:
    (tmp_path / "bad.pdf").write_bytes(content)
    with pytest.raises(SourceError, match=why) as err:
        read_source(tmp_path / "bad.pdf")
    assert "bad.pdf" in str(err.value)


def test_encrypted_and_scanned_pdfs_and_a_damaged_docx_say_what_to_do(tmp_path: Path) -> None:
    from fpdf import FPDF

    locked = make_pdf(tmp_path / "locked.pdf", article_paragraphs()[:2], password="secret")
    with pytest.raises(SourceError, match="encrypted"):
        read_source(locked)
    scan = FPDF()
    scan.add_page()
    scan.rect(10, 10, 100, 100, style="F")  # a page with a picture and no text layer
    scan.output(str(tmp_path / "scan.pdf"))
    with pytest.raises(SourceError, match="no text layer"):
        read_source(tmp_path / "scan.pdf")
    (tmp_path / "broken.docx").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(SourceError, match="not a readable Word"):
        read_source(tmp_path / "broken.docx")


def test_a_document_over_the_size_limit_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pdf = make_pdf(tmp_path / "article.pdf", article_paragraphs())
    monkeypatch.setattr(qa.ingest.formats, "MAX_DOCUMENT_BYTES", 100)
    with pytest.raises(SourceError, match="larger than"):
        read_source(pdf)


class _Site(QuietHandler):
    """Pages for the URL tests: an article, a PDF, an error, a slow page, a page with no article."""

    pdf = b""

    def do_GET(self) -> None:  # noqa: N802 - the http.server name
        paragraphs = "".join(f"<p>{p}</p>" for p in article_paragraphs())
        end = "</article><footer>Copyright 2022</footer></body></html>"
        pages = {
            "/article.html": ("text/html; charset=utf-8", f"<html><head><title>News</title></head><body>"
                              f"<nav><a href='/'>Home</a> | <a href='/a'>About</a></nav><article>"
                              f"{paragraphs}{end}".encode()),
            "/report.pdf": ("application/pdf", self.pdf),
            "/notes.txt": ("text/plain", b"The mill was built by Anna Berg in 1990."),
            "/links.html": ("text/html", b"<html><body><a href='/x'>x</a> <a href='/y'>y</a></body></html>"),
            "/big.html": ("text/html", b"<p>" + b"word " * 50_000 + b"</p>"),
        }
        if self.path == "/slow.html":
            time.sleep(2)
        if self.path not in pages:
            self.send_error(404, "Not Found")
            return
        kind, body = pages[self.path]
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[str]:
    """A local web server (no network) and its base URL."""
    _Site.pdf = make_pdf(tmp_path / "report.pdf", article_paragraphs()).read_bytes()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Site)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_web_pages_give_their_article_text_and_pdfs_and_text_by_url(site: str) -> None:
    url = f"{site}/article.html"
    sources = collect_sources([url, f"{site}/report.pdf", f"{site}/notes.txt"], allow_private_urls=True)
    assert list(sources) == [url, f"{site}/report.pdf", f"{site}/notes.txt"]
    text = sources[url]
    assert "Petro Burkovskiy" in text and "Home" not in text and "Copyright" not in text
    assert sources[f"{site}/report.pdf"].count(PAGE_BREAK) == 2
    assert sources[f"{site}/notes.txt"] == "The mill was built by Anna Berg in 1990."


def test_bad_urls_are_clear_errors(site: str, monkeypatch: pytest.MonkeyPatch) -> None:
    local = {"allow_private_urls": True}
    with pytest.raises(SourceError, match="404"):
        collect_sources([f"{site}/missing.html"], **local)
    with pytest.raises(SourceError, match="no article text"):
        collect_sources([f"{site}/links.html"], **local)
    monkeypatch.setattr(qa.ingest.fetch, "TIMEOUT", 0.5)
    with pytest.raises(SourceError, match="no answer within"):
        collect_sources([f"{site}/slow.html"], **local)
    monkeypatch.setattr(qa.ingest.formats, "MAX_DOCUMENT_BYTES", 10_000)
    with pytest.raises(SourceError, match="larger than"):
        collect_sources([f"{site}/big.html"], **local)
    with pytest.raises(SourceError, match="cannot be fetched"):
        collect_sources(["http://127.0.0.1:9/nothing-listens-here"], **local)


def test_an_index_of_a_web_page_is_reused_without_fetching_a_file(site: str, tmp_path: Path, capsys) -> None:
    import json

    import qa.cli

    url = f"{site}/article.html"
    bot = Chatbot(sources=[url], index_dir=tmp_path / "idx", embedder=FakeEmbedder(), reader=FakeReader(),
                  log=lambda m: None, allow_private_urls=True)
    bot.warm_up()
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["inputs"] == [url]
    args = qa.cli.build_parser().parse_args(["ask", "Who?", "--index-dir", str(tmp_path / "idx")])
    assert qa.cli._sources_for(args) == [url]  # a URL is never "a file that is gone"
