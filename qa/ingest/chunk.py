"""Split a source text into sentences and overlapping passages that slice it exactly."""

from __future__ import annotations

import re

from qa.schema import Passage

#: Sentences per passage. Retrieval scores passages by their best sentence too and merges overlapping
#: hits, so passages of 4 sentences keep recall high: hybrid recall@5 96.0 on the training-split questions
#: of squad-v1.1-dev-40 (qa.lab.train_data.split_squad). ``qa bench --recall`` measures retrieval recall and
#: ``scripts/selection_check.py`` the whole pipeline's F1.
DEFAULT_SENTENCES = 4
DEFAULT_OVERLAP = 1
DEFAULT_MAX_CHARS = 1000
#: Lower-cased words that end with a period without ending the sentence.
ABBREVIATIONS = frozenset(
    "mr mrs ms mx dr prof sr jr st mt ft gen col lt sgt capt cmdr adm gov sen rep pres hon rev fr "
    "messrs mme mlle vs inc ltd co corp bros dept univ assn est approx no nos vol vols fig figs "
    "pp ed eds al cf jan feb mar apr jun jul aug sep sept oct nov dec ave blvd rd".split()
)

#: A paragraph break: a line break, optional blanks on an otherwise empty line, a line break.
_PARAGRAPH_BREAK = re.compile(r"(?:\r\n|\r|\n)[^\S\r\n]*(?:\r\n|\r|\n)")
#: A sentence end: terminal punctuation, closing quotes/brackets, then whitespace (or the end).
_SENTENCE_END = re.compile(r"(?:[.!?\u2026\u3002\uff01\uff1f]+)[\"'\u2019\u201d\u00bb)\]}]*(?=\s|$)")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
#: A line that starts a markdown-style block (heading, list item, quote, table row).
_BLOCK_START = re.compile(r"[^\S\r\n]*(?:#{1,6}[^\S\r\n]|[-*+][^\S\r\n]|>|\d{1,3}[.)][^\S\r\n]|\|)")
_HEADING = re.compile(r"[^\S\r\n]*#{1,6}[^\S\r\n]")
_INITIALISM = re.compile(r"(?:[^\W\d_]\.)+[^\W\d_]?\.?$")


def _strip(text: str, start: int, end: int) -> tuple[int, int]:
    """Shrink ``start:end`` to exclude surrounding whitespace (``str.isspace``)."""
    piece = text[start:end]
    left = len(piece) - len(piece.lstrip())
    right = len(piece) - len(piece.rstrip())
    return start + left, max(start + left, end - right)


def _paragraphs(text: str) -> list[tuple[int, int]]:
    """Spans of the paragraphs of ``text`` (separated by blank lines), whitespace excluded."""
    spans = []
    pos = 0
    for m in _PARAGRAPH_BREAK.finditer(text):
        spans.append((pos, m.start()))
        pos = m.end()
    spans.append((pos, len(text)))
    out = []
    for start, end in spans:
        s, e = _strip(text, start, end)
        if e > s:
            out.append((s, e))
    return out


def _skip_space(text: str, pos: int, stop: int) -> int:
    """The first position from ``pos`` (before ``stop``) that is not whitespace, else ``stop``."""
    while pos < stop and text[pos].isspace():
        pos += 1
    return pos


def _is_abbreviation(text: str, dot: int) -> bool:
    """True when the period at ``dot`` ends an abbreviation, an initial or an initialism."""
    i = dot
    while i > 0 and not text[i - 1].isspace():
        i -= 1
    word = text[i:dot + 1].lstrip("\"'([{\u2018\u201c\u00ab")
    core = word.rstrip(".")
    if not core:
        return False
    if core.lower() in ABBREVIATIONS:
        return True
    if len(core) == 1 and core.isalpha() and core.isupper():
        return True  # an initial: "J. R. R. Tolkien"
    return "." in core and bool(_INITIALISM.match(word))  # "U.S.", "e.g."


def _block_cuts(text: str, start: int, end: int) -> list[int]:
    """Line breaks in ``text[start:end]`` that end a heading or start a list item, quote or row."""
    cuts = []
    line_start = start
    for m in _LINE_BREAK.finditer(text, start, end):
        if _HEADING.match(text, line_start, m.start()) or _BLOCK_START.match(text, m.end(), end):
            cuts.append(m.start())
        line_start = m.end()
    return cuts


def _sentences_in(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Sentence spans within the paragraph ``text[start:end]``."""
    cuts = _block_cuts(text, start, end)
    for m in _SENTENCE_END.finditer(text, start, end):
        nxt = _skip_space(text, m.end(), end)
        if nxt < end and text[nxt].islower():
            continue  # '"Really?" he asked', 'approx. five'
        punct = text[m.start():m.end()].rstrip("\"'\u2019\u201d\u00bb)]}")
        if punct == "." and _is_abbreviation(text, m.start()):
            continue
        cuts.append(m.end())
    spans = []
    pos = start
    for cut in sorted(set(cuts)):
        s, e = _strip(text, pos, cut)
        if e > s:
            spans.append((s, e))
        pos = cut
    s, e = _strip(text, pos, end)
    if e > s:
        spans.append((s, e))
    return spans


def _check_text(text: object) -> str:
    """Return ``text`` if it is a str, else raise TypeError."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, not {type(text).__name__}")
    return text


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Return ``(start, end)`` spans of the sentences of ``text``, whitespace excluded."""
    _check_text(text)
    return [span for p in _paragraphs(text) for span in _sentences_in(text, *p)]


def sentence_around(text: str, start: int, end: int) -> tuple[int, int]:
    """The ``(start, end)`` of the sentence(s) of ``text`` that hold ``text[start:end]``.

    Falls back to the span itself where no sentence covers it (a span across a paragraph break).
    """
    _check_text(text)
    if not 0 <= start <= end <= len(text):
        raise ValueError(f"span {start}:{end} is outside a text of {len(text)} characters")
    covering = [(s, e) for s, e in split_sentences(text) if s < end and e > start]
    if not covering:
        return start, end
    s, e = min(covering[0][0], start), max(covering[-1][1], end)
    # a quotation that goes on past the sentence leaves its opening mark unmatched: drop it
    if s < start and text[s] in "\"“" and text.count(text[s], s, e) % 2 == 1 and "”" not in text[s:e]:
        s += 1
    return s, e


def _cut_long(text: str, start: int, end: int, max_chars: int) -> list[tuple[int, int]]:
    """Cut a span longer than ``max_chars`` at word boundaries (hard cuts inside huge words)."""
    pieces = []
    pos = start
    while end - pos > max_chars:
        stop = pos + max_chars
        k = stop
        while k > pos and not text[k].isspace():
            k -= 1
        if k > pos:
            stop = k
        piece_end = stop
        while text[piece_end - 1].isspace():
            piece_end -= 1
        pieces.append((pos, piece_end))
        pos = _skip_space(text, stop, end)
    if end > pos:
        pieces.append((pos, end))
    return pieces


def _check_settings(sentences: int, overlap: int, max_chars: int) -> None:
    """Raise if the chunk settings are not usable."""
    for name, value in (("sentences", sentences), ("overlap", overlap), ("max_chars", max_chars)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name} must be an int, got {value!r}")
    if sentences < 1:
        raise ValueError(f"sentences must be at least 1, got {sentences}")
    if not 0 <= overlap < sentences:
        raise ValueError(f"overlap must be from 0 to sentences - 1 ({sentences - 1}), got {overlap}")
    if max_chars < 1:
        raise ValueError(f"max_chars must be at least 1, got {max_chars}")


def chunk_text(
    text: str,
    source: str,
    *,
    sentences: int = DEFAULT_SENTENCES,
    overlap: int = DEFAULT_OVERLAP,
    max_chars: int = DEFAULT_MAX_CHARS,
) -> list[Passage]:
    """Cut ``text`` into passages of up to ``sentences`` sentences, ``overlap`` shared, within paragraphs."""
    _check_text(text)
    if not isinstance(source, str) or not source:
        raise TypeError(f"source must be a non-empty str naming the document, got {source!r}")
    _check_settings(sentences, overlap, max_chars)
    passages: list[Passage] = []
    for para in _paragraphs(text):
        units = [
            piece
            for s, e in _sentences_in(text, *para)
            for piece in (_cut_long(text, s, e, max_chars) if e - s > max_chars else [(s, e)])
        ]
        i = 0
        while i < len(units):
            j = i + 1
            while j < len(units) and j - i < sentences and units[j][1] - units[i][0] <= max_chars:
                j += 1
            start, end = units[i][0], units[j - 1][1]
            passages.append(Passage(f"{source}#{len(passages)}", source, start, end, text[start:end]))
            if j >= len(units):
                break
            i = max(i + 1, j - overlap)
    return passages
