"""Text from documents that are not plain text: PDF, Word .docx and web pages.

PDF through pypdf, .docx through python-docx (its zip checked first), web pages fetched by
``qa.ingest.fetch`` and reduced to their main text by trafilatura; ``qa.ingest.sandbox`` runs them in a
child process with a budget. Errors are ``SourceError`` messages that name the document and say what to do.
"""

from __future__ import annotations

import io
import zipfile

from qa.ingest.errors import SourceError, printable

#: Between the pages of a PDF's text: a form feed (so any offset knows its page) and a blank line.
PAGE_BREAK = "\f\n\n"
#: The largest document or web page read, in bytes.
MAX_DOCUMENT_BYTES = 20 * 1024 * 1024
#: Pages of a PDF read at most (the reading child's deadline bounds the cost of each).
MAX_PDF_PAGES = 2_000
#: A .docx may hold this many parts, unpacking to this many bytes in all; a part over ``ZIP_RATIO_FROM``
#: bytes may unpack to ``MAX_ZIP_RATIO`` times its stored size (text compresses about 5-10 times; images
#: hardly). Re-measure with tests/test_formats.py's Word tests.
MAX_ZIP_MEMBERS = 1_000
MAX_UNZIPPED_BYTES = 100 * 2**20
MAX_ZIP_RATIO = 100
ZIP_RATIO_FROM = 2**20
#: A web page whose main text has fewer words is not an article (a login form, a list of links).
MIN_ARTICLE_WORDS = 25


def pdf_text(data: bytes, name: str) -> str:
    """A PDF's text, page after page (``PAGE_BREAK`` between them)."""
    import pypdf
    from pypdf.errors import PdfReadError

    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise SourceError(f"{name}: the PDF is encrypted with a password; save an unprotected copy")
        # layout mode keeps the vertical gaps between paragraphs as blank lines
        if len(reader.pages) > MAX_PDF_PAGES:
            raise SourceError(f"{name}: {len(reader.pages):,} pages, more than qa reads ({MAX_PDF_PAGES:,}); "
                              f"split it")
        pages = [page.extract_text(extraction_mode="layout") or "" for page in reader.pages]
    except SourceError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, IndexError, OSError) as e:
        raise SourceError(f"{name}: not a readable PDF ({type(e).__name__}: {str(e)[:100]})") from e
    except Exception as e:  # pypdf raises assorted errors on damaged files; the message must stay clear
        raise SourceError(f"{name}: not a readable PDF ({type(e).__name__})") from e
    pages = [_paragraphs(p) for p in pages]
    if not any(pages):
        raise SourceError(f"{name}: the PDF has no text layer (a scan?); run OCR on it first "
                          f"(for instance ocrmypdf) and add the result")
    return PAGE_BREAK.join(p.replace("\f", " ") for p in pages)


def _paragraphs(page: str) -> str:
    """A page laid out as lines rejoined: each paragraph (blank lines around it) on one line."""
    paragraphs: list[list[str]] = [[]]
    for line in page.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        words = " ".join(line.split())
        if words:
            paragraphs[-1].append(words)
        elif paragraphs[-1]:
            paragraphs.append([])
    return "\n\n".join(_join(lines) for lines in paragraphs if lines)


def _join(lines: list[str]) -> str:
    """A paragraph's lines as one: a space between them, none after a hyphen before a lowercase letter."""
    out = lines[0]
    for line in lines[1:]:
        out += ("" if out.endswith("-") and line[:1].islower() else " ") + line
    return out


def check_zip(data: bytes, name: str) -> None:
    """Refuse a zip (a .docx) whose members would inflate past the limits, before inflating any."""
    try:
        members = zipfile.ZipFile(io.BytesIO(data)).infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError) as e:
        raise SourceError(f"{name}: not a readable Word .docx file ({type(e).__name__}); "
                          f"open and save it again as .docx") from e
    if len(members) > MAX_ZIP_MEMBERS:
        raise SourceError(f"{name}: a damaged Word file ({len(members):,} parts; at most "
                          f"{MAX_ZIP_MEMBERS:,})")
    total = sum(m.file_size for m in members)
    if total > MAX_UNZIPPED_BYTES:
        raise SourceError(f"{name}: unpacks to {total / 2**20:,.0f} MB, more than qa reads "
                          f"({MAX_UNZIPPED_BYTES // 2**20} MB); save the text as a new document")
    for m in members:
        if m.file_size > ZIP_RATIO_FROM and m.file_size > MAX_ZIP_RATIO * max(m.compress_size, 1):
            ratio = m.file_size // max(m.compress_size, 1)
            raise SourceError(f"{name}: a part ({printable(m.filename, 40)}) unpacks {ratio:,} times larger "
                              f"than it is stored (a zip bomb?); save the text as a new document")


def docx_text(data: bytes, name: str) -> str:
    """A Word document's paragraphs and table rows, a blank line between them."""
    import docx

    check_zip(data, name)
    try:
        document = docx.Document(io.BytesIO(data))
        blocks = [p.text.strip() for p in document.paragraphs]
        for table in document.tables:
            blocks += [" | ".join(cell.text.strip() for cell in row.cells) for row in table.rows]
    except MemoryError:
        raise
    except Exception as e:  # python-docx and lxml raise assorted errors on damaged files (invalid XML,
        # nesting too deep, a huge text node, a missing part): the message must stay clear
        raise SourceError(f"{name}: not a readable Word .docx file, it is damaged ({type(e).__name__}); "
                          f"open and save it again as .docx") from e
    text = "\n\n".join(b for b in blocks if b)
    if not text.strip():
        raise SourceError(f"{name}: the document has no text")
    return text


def article_text(html: str, name: str) -> str:
    """A web page's main text (trafilatura), paragraphs separated by blank lines."""
    import trafilatura

    text = trafilatura.extract(html, include_comments=False, include_tables=True, favor_recall=True)
    if not text or len(text.split()) < MIN_ARTICLE_WORDS:
        raise SourceError(f"{name}: no article text found on the page (a login page, a list of links "
                          f"or a page built by scripts?); save the text you need as a file")
    return "\n\n".join(line.strip() for line in text.split("\n") if line.strip())


def url_text(url: str, *, allow_private: bool = False) -> str:
    """The text of a web page, a PDF or a plain-text file behind ``url`` (``qa.ingest.fetch``'s limits).

    ``allow_private`` also fetches loopback and private addresses: for local use, never behind a public link.
    """
    from qa.ingest.fetch import decode_text, fetch
    from qa.ingest.sandbox import extract

    data, content_type = fetch(url, allow_private=allow_private, max_bytes=MAX_DOCUMENT_BYTES)
    kind = content_type.split(";")[0].strip().lower()
    name = printable(url)
    if kind == "application/pdf" or data[:5] == b"%PDF-":
        return extract("pdf", data, name)
    text = decode_text(data, content_type)
    if kind in ("text/plain", "text/markdown"):
        return text
    return extract("article", text.encode("utf-8"), name)
