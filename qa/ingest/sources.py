"""Read source documents (.txt, .md, .html, .pdf, .docx, web pages) into the text passages index."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from html.parser import HTMLParser
from pathlib import Path

from qa.ingest.errors import SourceError, printable

SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx")
#: Read by ``qa.ingest.formats`` from their bytes.
DOCUMENT_SUFFIXES = (".pdf", ".docx")
HTML_SUFFIXES = (".html", ".htm")
#: Elements whose content is never shown.
HIDDEN_TAGS = frozenset({"script", "style", "template", "noscript", "head", "title", "svg", "iframe"})
#: Elements that start a new paragraph (a blank line in the text).
PARAGRAPH_TAGS = frozenset({
    "address", "article", "aside", "blockquote", "body", "caption", "dd", "details", "dialog", "div",
    "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5",
    "h6", "header", "hr", "html", "main", "nav", "ol", "p", "pre", "section", "summary", "table", "ul",
})
#: Elements that start a new line.
LINE_TAGS = frozenset({"br", "li", "tr", "option"})
#: Elements that separate words (table cells) without starting a line.
SPACE_TAGS = frozenset({"td", "th"})

#: Text with a larger share of control characters (tabs and line breaks aside) is binary data; terminal
#: colour codes in a log stay well below it.
MAX_CONTROL_SHARE = 0.1

_PARAGRAPH = 2
_LINE = 1
_SPACES = re.compile(r"[ \t\f\v\r\n]+")


def is_url(name: object) -> bool:
    """True for an http(s) address (a web page to fetch), False for a file path."""
    return isinstance(name, str) and name.lower().startswith(("http://", "https://"))


class _TextExtractor(HTMLParser):
    """Collects the visible text of an HTML document with paragraph and line breaks."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str | int] = []
        self.hidden = 0
        self.pre = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Open an element: hide, break or keep going."""
        if tag in HIDDEN_TAGS:
            self.hidden += 1
        elif tag == "pre":
            self.pre += 1
        self._break(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """A self-closing element (``<br/>``) only breaks."""
        self._break(tag)

    def handle_endtag(self, tag: str) -> None:
        """Close an element."""
        if tag in HIDDEN_TAGS:
            self.hidden = max(0, self.hidden - 1)
        elif tag == "pre":
            self.pre = max(0, self.pre - 1)
        if tag != "br":
            self._break(tag)

    def handle_data(self, data: str) -> None:
        """Keep visible text; whitespace collapses outside ``<pre>``."""
        if self.hidden:
            return
        if self.pre:
            for i, line in enumerate(data.split("\n")):
                if i:
                    self.parts.append(_LINE)
                self.parts.append(line)
        else:
            self.parts.append(_SPACES.sub(" ", data))

    def _break(self, tag: str) -> None:
        """Append the break that an element boundary gives."""
        if tag in PARAGRAPH_TAGS:
            self.parts.append(_PARAGRAPH)
        elif tag in LINE_TAGS:
            self.parts.append(_LINE)
        elif tag in SPACE_TAGS:
            self.parts.append(" ")


def html_to_text(html: str) -> str:
    """Convert HTML to its visible text: scripts and styles dropped, blocks on their own lines."""
    if not isinstance(html, str):
        raise TypeError(f"html must be a str, not {type(html).__name__}")
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    paragraphs: list[list[str]] = [[""]]
    for part in parser.parts:
        if isinstance(part, str):
            paragraphs[-1][-1] += part
        elif part == _PARAGRAPH:
            paragraphs.append([""])
        else:
            paragraphs[-1].append("")
    blocks = ("\n".join(" ".join(line.split()) for line in lines if line.strip()) for lines in paragraphs)
    return "\n\n".join(b for b in blocks if b)


def _display_name(path: Path, root: Path | None = None) -> str:
    """The path relative to ``root`` (default: the working directory) when under it, else absolute."""
    absolute = Path(os.path.abspath(path))
    try:
        base = Path(os.path.abspath(root)) if root is not None else Path.cwd()
        return absolute.relative_to(base).as_posix()
    except ValueError:
        return absolute.as_posix()


def page_text(html: str, name: str) -> str:
    """An HTML file's main text (trafilatura drops menus, footers and banners), else all its visible text.

    A short page, or one trafilatura finds no article in, is kept whole: the user chose the file.
    """
    from qa.ingest.formats import article_text

    try:
        return article_text(html, name)
    except SourceError:
        return html_to_text(html)


def read_source(path: str | Path, *, name: str | None = None) -> str:
    """Return the text of one source file (HTML as its main text, newlines normalised to LF).

    ``name`` is how messages call the file (default: its path), made printable; PDF, Word and HTML files
    are read in a child process with a budget (``qa.ingest.sandbox``).
    """
    if not isinstance(path, (str, Path)):
        raise TypeError(f"path must be a str or Path, not {type(path).__name__}")
    p = Path(path)
    shown = printable(name if name is not None else p)
    try:
        if not p.exists():
            raise SourceError(f"{shown}: no such file")
        if not p.is_file():
            raise SourceError(f"{shown}: not a file (pass a file, or a folder to collect_sources)")
        suffix = p.suffix.lower()
        if suffix in DOCUMENT_SUFFIXES:
            from qa.ingest.formats import MAX_DOCUMENT_BYTES
            from qa.ingest.sandbox import extract

            if p.stat().st_size > MAX_DOCUMENT_BYTES:
                raise SourceError(f"{shown}: larger than {MAX_DOCUMENT_BYTES // 2**20} MB; split it or save "
                                  f"the part you need as text")
            return extract(suffix[1:], p.read_bytes(), shown)
        data = p.read_bytes()
    except OSError as e:
        raise SourceError(f"{shown}: cannot be read ({e.strerror or type(e).__name__})") from e
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise SourceError(f"{shown}: not UTF-8 text (byte {e.start}); save it as UTF-8") from e
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    _check_not_binary(shown, text)
    if suffix in HTML_SUFFIXES:
        from qa.ingest.sandbox import extract

        text = extract("page", text.encode("utf-8"), shown)
    if not text.strip():
        raise SourceError(f"{shown}: empty (no text to answer from)")
    return text


def _check_not_binary(path: Path | str, text: str) -> None:
    """Refuse text that is really binary data: NUL bytes, many control characters, or no letters."""
    controls = sum(1 for c in text if ord(c) < 32 and c not in "\n\t\f\v")
    if "\x00" in text or controls > MAX_CONTROL_SHARE * len(text):
        raise SourceError(f"{path}: looks like binary data, not text ({controls:,} control characters); "
                          f"convert it to plain text first")
    if text.strip() and not any(c.isalpha() for c in text):
        raise SourceError(f"{path}: has no words to answer from")


def _is_hidden(path: Path, root: Path) -> bool:
    """True when any part of ``path`` below ``root`` starts with a dot."""
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def collect_sources(paths: Sequence[str | Path], *, log: Callable[[str], None] | None = None,
                    root: str | Path | None = None, allow_private_urls: bool = False) -> dict[str, str]:
    """Read files, folders (walked recursively) and web pages into ``{display name: text}``.

    Files are named by their path relative to ``root`` (default: the working directory) when under it.
    A folder's files of other types (an image) are skipped, and ``log`` names them. Web addresses must be
    public unless ``allow_private_urls`` (local use only: never behind a public link).
    """
    if not isinstance(allow_private_urls, bool):
        raise TypeError(f"allow_private_urls must be True or False, got {allow_private_urls!r}")
    base = None if root is None else Path(root)
    if isinstance(paths, (str, Path)) or not isinstance(paths, Sequence):
        raise TypeError("paths must be a list of files or folders, e.g. ['seeds/']")
    found: list[Path | str] = []  # files, and web addresses as given
    for item in paths:
        if not isinstance(item, (str, Path)):
            raise TypeError(f"each path must be a str or Path, not {type(item).__name__}")
        if isinstance(item, str) and not item.strip():
            raise SourceError("an empty path was given (an unset shell variable?): name a file or folder")
        if is_url(item):
            found.append(item)
            continue
        p = Path(item)
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and not _is_hidden(f, p))
            found.extend(f for f in files if f.suffix.lower() in SUFFIXES)
            skipped = [printable(f.relative_to(p).as_posix()) for f in files
                       if f.suffix.lower() not in SUFFIXES]
            if skipped and log is not None:
                shown = ", ".join(skipped[:3]) + (f" and {len(skipped) - 3} more" if len(skipped) > 3 else "")
                log(f"Skipped {len(skipped)} file(s) in {printable(_display_name(p, base))} that qa cannot "
                    f"read: {shown} "
                    f"(it reads {', '.join(SUFFIXES)}; convert the others to text first).")
        elif p.is_file():
            if p.suffix.lower() not in SUFFIXES:
                raise SourceError(f"{printable(_display_name(p, base))}: unsupported file type; use one of "
                                  f"{', '.join(SUFFIXES)}")
            found.append(p)
        elif not p.exists():
            raise SourceError(f"{printable(item)}: no such file or folder")
        else:
            raise SourceError(f"{printable(item)}: not a file or folder")
    sources: dict[str, str] = {}
    for f in found:
        if isinstance(f, str):
            from qa.ingest.formats import url_text

            if f not in sources:
                sources[f] = url_text(f, allow_private=allow_private_urls)
            continue
        name = _display_name(f, base)
        if name not in sources:
            sources[name] = read_source(f, name=name)
    if not sources:
        shown = ", ".join(printable(p) for p in paths) or "(no paths)"
        raise SourceError(f"{shown}: no source files found (looked for {', '.join(SUFFIXES)})")
    return sources
