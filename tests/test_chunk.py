"""Tests for qa.ingest.chunk: sentence splitting and passages that slice their source exactly."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qa.ingest.chunk import (
    DEFAULT_MAX_CHARS,
    DEFAULT_OVERLAP,
    DEFAULT_SENTENCES,
    chunk_text,
    sentence_around,
    split_sentences,
)

SEED = Path(__file__).resolve().parent.parent / "seeds" / "article.txt"
PARAGRAPH_BREAK = re.compile(r"(?:\r\n|\r|\n)[^\S\r\n]*(?:\r\n|\r|\n)")


def sentences_of(text: str) -> list[str]:
    return [text[s:e] for s, e in split_sentences(text)]


def test_defaults() -> None:
    assert (DEFAULT_SENTENCES, DEFAULT_OVERLAP, DEFAULT_MAX_CHARS) == (4, 1, 1000)


def test_sentence_boundaries() -> None:
    text = ('Mr. Smith went to the U.S. in Jan. 2020 with Dr. Jones. He paid $3.50 for it! '
            '"Really?" he asked. J. R. R. Tolkien wrote books, e.g. novels. Is it over? '
            '"Yes." (It is.) The end')
    assert sentences_of(text) == [
        "Mr. Smith went to the U.S. in Jan. 2020 with Dr. Jones.", "He paid $3.50 for it!",
        '"Really?" he asked.', "J. R. R. Tolkien wrote books, e.g. novels.", "Is it over?",
        '"Yes."', "(It is.)", "The end",
    ]


def test_paragraph_breaks_always_split_and_spans_are_stripped() -> None:
    text = "  Title without a stop\n\nBody one. Body two\n \t\nMr.\n\nLast  "
    assert sentences_of(text) == ["Title without a stop", "Body one.", "Body two", "Mr.", "Last"]
    assert sentences_of("") == [] and sentences_of(" \n\n\t") == []


def test_markdown_blocks_split_lines() -> None:
    text = "# Heading\nIntro line\n- item one\n- item two\n1. first"
    assert sentences_of(text) == ["# Heading", "Intro line", "- item one", "- item two", "1. first"]


def test_sliding_window_with_overlap() -> None:
    text = "One. Two. Three. Four. Five."
    got = [p.text for p in chunk_text(text, "s", sentences=3, overlap=1)]
    assert got == ["One. Two. Three.", "Three. Four. Five."]
    got = [p.text for p in chunk_text(text, "s", sentences=2, overlap=0)]
    assert got == ["One. Two.", "Three. Four.", "Five."]
    got = [p.text for p in chunk_text(text, "s", sentences=1, overlap=0)]
    assert got == ["One.", "Two.", "Three.", "Four.", "Five."]


def test_never_crosses_a_paragraph_break() -> None:
    text = "Byline Person\n\nFirst. Second. Third. Fourth.\n\nAlone."
    passages = chunk_text(text, "doc.txt", sentences=3, overlap=1)
    assert [p.text for p in passages] == [
        "Byline Person", "First. Second. Third.", "Third. Fourth.", "Alone."]
    assert [p.id for p in passages] == ["doc.txt#0", "doc.txt#1", "doc.txt#2", "doc.txt#3"]


def test_long_sentence_cut_at_word_boundaries() -> None:
    words = " ".join(f"word{i}" for i in range(400))
    text = f"Short one. {words}. After."
    passages = chunk_text(text, "s", max_chars=100)
    for p in passages:
        assert text[p.start:p.end] == p.text and len(p.text) <= 100
        assert p.start == 0 or not text[p.start - 1].isalnum()
        assert p.end == len(text) or not text[p.end].isalnum()
    covered = "".join(text[p.start:p.end] for p in passages)
    assert all(f"word{i}" in covered for i in range(400))
    # a single "word" longer than max_chars is hard-cut
    blob = "x" * 250
    assert [len(p.text) for p in chunk_text(blob, "s", max_chars=100)] == [100, 100, 50]


def test_passages_respect_max_chars_when_grouping() -> None:
    text = ("a" * 40 + ". ") * 5
    assert all(len(p.text) <= 90 for p in chunk_text(text, "s", sentences=3, max_chars=90))


def test_empty_text_gives_no_passages() -> None:
    assert chunk_text("", "s") == [] and chunk_text(" \n \n\t", "s") == []


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [({"sentences": 0}, ValueError), ({"overlap": 4}, ValueError), ({"overlap": -1}, ValueError),
     ({"max_chars": 0}, ValueError), ({"sentences": 2.0}, TypeError), ({"overlap": True}, TypeError)],
)
def test_bad_settings(kwargs: dict, error: type[Exception]) -> None:
    with pytest.raises(error):
        chunk_text("Some text.", "s", **kwargs)


def test_bad_arguments() -> None:
    with pytest.raises(TypeError):
        chunk_text(b"bytes", "s")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        chunk_text("text", "")
    with pytest.raises(TypeError):
        split_sentences(None)  # type: ignore[arg-type]


def test_seed_article() -> None:
    text = SEED.read_text(encoding="utf-8")
    passages = chunk_text(text, "seeds/article.txt")
    assert passages, "the seed article gives passages"
    paragraphs = [p.strip() for p in PARAGRAPH_BREAK.split(text) if p.strip()]
    for i, p in enumerate(passages):
        assert p.id == f"seeds/article.txt#{i}" and p.source == "seeds/article.txt"
        assert text[p.start:p.end] == p.text
        assert PARAGRAPH_BREAK.search(p.text) is None
        assert any(p.text in para for para in paragraphs)
    # the one-line first paragraph (a byline) is a passage of its own
    assert passages[0].text == paragraphs[0]
    # every paragraph starts a passage, and every sentence is in some passage
    assert all(any(p.text.startswith(para[:30]) for p in passages) for para in paragraphs)
    covered = [False] * len(text)
    for p in passages:
        covered[p.start:p.end] = [True] * (p.end - p.start)
    assert all(covered[i] for i in range(len(text)) if not text[i].isspace())
    sentences = split_sentences(text)
    assert len(sentences) > len(paragraphs)
    assert all(text[s:e].strip() == text[s:e] for s, e in sentences)


# --- property tests -----------------------------------------------------------------------------

FRAGMENTS = st.sampled_from([
    ".", "!", "?", "...", "\u2026", '"', "'", ")", "]", "\u201d", " ", "  ", "\n", "\n\n", "\r\n", "\r\n\r\n",
    "\n \t\n", "\t", "\x0b", "\x0c", "\x1c", "\x85", "\u2028", "\xa0", "Mr.", "U.S.", "3.5", "e.g.", "J.",
    "word", "Ünïcödé", "日本語。", "Привет!", "مرحبا؟", "<p>", "</p>", "&amp;", "<script>x</script>",
    "# ", "- ", "1. ", "> ", "|", "\x00", "\ufeff", "A", "b",
])
TEXTS = st.one_of(
    st.text(),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=300),
    st.lists(FRAGMENTS, max_size=80).map("".join),
    st.builds(lambda parts, n: "".join(parts) * n, st.lists(FRAGMENTS, min_size=1, max_size=12),
              st.integers(min_value=1, max_value=3000)),
)


def _check_passages(text: str, sentences: int, overlap: int, max_chars: int) -> None:
    passages = chunk_text(text, "src", sentences=sentences, overlap=overlap, max_chars=max_chars)
    covered = bytearray(len(text))
    for i, p in enumerate(passages):
        assert text[p.start:p.end] == p.text
        assert p.id == f"src#{i}" and p.source == "src"
        assert p.text and p.text.strip() == p.text
        assert len(p.text) <= max_chars
        assert PARAGRAPH_BREAK.search(p.text) is None
        covered[p.start:p.end] = b"\x01" * (p.end - p.start)
    assert all(covered[i] for i, c in enumerate(text) if not c.isspace())
    if not text.strip():
        assert passages == []


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=TEXTS, sentences=st.integers(1, 5), overlap=st.integers(0, 4), max_chars=st.integers(1, 1200))
def test_property_passages_slice_the_source(text: str, sentences: int, overlap: int, max_chars: int) -> None:
    _check_passages(text, sentences, min(overlap, sentences - 1), max_chars)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=TEXTS)
def test_property_sentences_are_ordered_stripped_spans(text: str) -> None:
    spans = split_sentences(text)
    last = 0
    for s, e in spans:
        assert last <= s < e <= len(text)
        assert text[s:e].strip() == text[s:e]
        last = e
    covered = bytearray(len(text))
    for s, e in spans:
        covered[s:e] = b"\x01" * (e - s)
    assert all(covered[i] for i, c in enumerate(text) if not c.isspace())


def test_huge_strings() -> None:
    for text in ("Lorem ipsum dolor. " * 60_000, "x" * 1_000_000, ("word " * 200_000) + "\n\n" + "é." * 1000):
        _check_passages(text, DEFAULT_SENTENCES, DEFAULT_OVERLAP, DEFAULT_MAX_CHARS)


def test_sentence_around_gives_the_sentences_holding_a_span() -> None:
    text = "Dr. Berg built it. The bridge opened in 1990.\n\nIt is long."
    s = text.index("1990")
    a, b = sentence_around(text, s, s + 4)
    assert text[a:b] == "The bridge opened in 1990."
    s = text.index("it.")  # a span across two sentences gets both
    a, b = sentence_around(text, s, text.index("opened"))
    assert text[a:b] == "Dr. Berg built it. The bridge opened in 1990."
    with pytest.raises(ValueError, match="outside"):
        sentence_around(text, 5, 500)
    quoted = 'Intro. "Prices rose in 1990. They fell later," he said.'
    s = quoted.index("1990")
    a, b = sentence_around(quoted, s, s + 4)
    assert quoted[a:b] == "Prices rose in 1990."  # the quotation's opening mark, unmatched here, is dropped
    whole = '"It opened in 1990." Then it rained.'
    a, b = sentence_around(whole, whole.index("1990"), whole.index("1990") + 4)
    assert whole[a:b] == '"It opened in 1990."'


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet="ab. \n?", max_size=60), st.data())
def test_sentence_around_always_covers_the_span(text: str, data: st.DataObject) -> None:
    start = data.draw(st.integers(0, len(text)))
    end = data.draw(st.integers(start, len(text)))
    a, b = sentence_around(text, start, end)
    assert 0 <= a <= start <= end <= b <= len(text)
