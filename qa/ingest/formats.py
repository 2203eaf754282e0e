"""Text from documents that are not plain text: PDF, Word .docx and web pages.

PDF through pypdf, .docx through python-docx, web pages fetched with httpx and reduced to their main
text by trafilatura. Errors are ``SourceError`` messages that name the document and say what to do.
"""

from __future__ import annotations

import io
import re

from qa.ingest.errors import SourceError

#: Between the pages of a PDF's text: a form feed (so any offset knows its page) and a blank line.
PAGE_BREAK = "\f\n\n"
#: The largest document or web page read, in bytes.
MAX_DOCUMENT_BYTES = 20 * 1024 * 1024
#: Seconds to wait for a web page (connecting, and between bytes).
URL_TIMEOUT = 10.0
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


def docx_text(data: bytes, name: str) -> str:
    """A Word document's paragraphs and table rows, a blank line between them."""
    import zipfile

    import docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        document = docx.Document(io.BytesIO(data))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as e:
        raise SourceError(f"{name}: not a readable Word .docx file ({type(e).__name__}); "
                          f"open and save it again as .docx") from e
    blocks = [p.text.strip() for p in document.paragraphs]
    for table in document.tables:
        blocks += [" | ".join(cell.text.strip() for cell in row.cells) for row in table.rows]
    text = "\n\n".join(b for b in blocks if b)
    if not text.strip():
        raise SourceError(f"{name}: the document has no text")
    return text


def fetch_url(url: str) -> tuple[bytes, str]:
    """The body and content type of a web page (``MAX_DOCUMENT_BYTES`` at most)."""
    import httpx

    try:
        with httpx.stream("GET", url, timeout=URL_TIMEOUT, follow_redirects=True,
                          headers={"User-Agent": "qa (offline document reader)"}) as response:
            if response.status_code >= 400:
                raise SourceError(f"{url}: the server answered {response.status_code} "
                                  f"{response.reason_phrase}; check the address")
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_DOCUMENT_BYTES:
                    raise SourceError(f"{url}: larger than {MAX_DOCUMENT_BYTES // 2**20} MB; "
                                      f"save the part you need as a file")
            return bytes(body), response.headers.get("content-type", "")
    except httpx.TimeoutException as e:
        raise SourceError(f"{url}: no answer within {URL_TIMEOUT:.0f} s; try again later") from e
    except httpx.HTTPError as e:
        raise SourceError(f"{url}: cannot be fetched ({type(e).__name__}: {str(e)[:100]})") from e


def article_text(html: str, name: str) -> str:
    """A web page's main text (trafilatura), paragraphs separated by blank lines."""
    import trafilatura

    text = trafilatura.extract(html, include_comments=False, include_tables=True, favor_recall=True)
    if not text or len(text.split()) < MIN_ARTICLE_WORDS:
        raise SourceError(f"{name}: no article text found on the page (a login page, a list of links "
                          f"or a page built by scripts?); save the text you need as a file")
    return "\n\n".join(line.strip() for line in text.split("\n") if line.strip())


def url_text(url: str) -> str:
    """The text of a web page, a PDF or a plain-text file behind ``url``."""
    data, content_type = fetch_url(url)
    kind = content_type.split(";")[0].strip().lower()
    if kind == "application/pdf" or data[:5] == b"%PDF-":
        return pdf_text(data, url)
    charset = re.search(r"charset=([\w-]+)", content_type)
    try:
        text = data.decode(charset.group(1) if charset else "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        text = data.decode("utf-8", errors="replace")
    if kind in ("text/plain", "text/markdown"):
        return text
    return article_text(text, url)
