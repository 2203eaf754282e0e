"""Unit tests of ui/format.py: highlighting by offsets, escaping, abstention, confidence, sources."""

from __future__ import annotations

import dataclasses
import re

import pytest

from qa.schema import Answer, Hit, Passage
from ui.format import (
    ABSTAIN_TEXT,
    GENERIC_ERROR,
    cited_hit_ids,
    escape,
    format_answer,
    format_confidence,
    format_context,
    format_error,
    format_question,
    highlight,
    status_line,
)

DOC = "Alpha beta. The engines matter. Gamma engines delta. Epsilon <b>zeta</b> & eta."
SRC = "docs/story.txt"


def hit(pid: str, start: int, end: int, score: float = 0.5, source: str = SRC, doc: str = DOC) -> Hit:
    """A hit over ``doc[start:end]``."""
    return Hit(Passage(pid, source, start, end, doc[start:end]), score)


def answer_at(start: int, end: int, hits: tuple[Hit, ...], passage_id: str | None,
              score: float = 0.8, source: str = SRC, question: str = "Q?") -> Answer:
    """An answer whose text is ``DOC[start:end]``."""
    return Answer(question, DOC[start:end], score, start, end, source, hits, passage_id=passage_id)


def marked(fragment: str) -> list[str]:
    """The texts inside <mark> in an HTML fragment."""
    return re.findall(r"<mark>(.*?)</mark>", fragment, flags=re.S)


# --- highlight / escape ---------------------------------------------------------------------

def test_highlight_marks_exactly_the_offsets():
    assert highlight("abcdef", 2, 4) == "ab<mark>cd</mark>ef"
    assert highlight("abcdef", 0, 6) == "<mark>abcdef</mark>"


def test_highlight_uses_offsets_not_string_search():
    text = "engines here, engines there"
    second = text.rindex("engines")
    out = highlight(text, second, second + len("engines"))
    assert out == "engines here, <mark>engines</mark> there"


def test_highlight_escapes_every_part():
    out = highlight("<a>x & <script>y</script>", 3, 4)
    assert out == "&lt;a&gt;<mark>x</mark> &amp; &lt;script&gt;y&lt;/script&gt;"
    assert "<script>" not in out


@pytest.mark.parametrize("start,end", [(3, 3), (5, 2), (-4, 0), (100, 200)])
def test_highlight_empty_or_out_of_range_gives_plain_escaped_text(start, end):
    assert highlight("a<b", start, end) == "a&lt;b"


def test_highlight_clamps_partial_ranges():
    assert highlight("abc", -5, 2) == "<mark>ab</mark>c"
    assert highlight("abc", 1, 99) == "a<mark>bc</mark>"


def test_escape_quotes_and_newlines():
    assert escape('"x" \'y\'\nz') == "&quot;x&quot; &#x27;y&#x27;<br>z"


# --- confidence -------------------------------------------------------------------------------

@pytest.mark.parametrize("score,text", [
    (0.0, "Confidence: 0%"), (0.87, "Confidence: 87%"), (0.5, "Confidence: 50%"),
    (1.0, "Confidence: 100%"), (0.996, "Confidence: >99%"), (0.001, "Confidence: <1%"),
    (1.7, "Confidence: 100%"), (-0.2, "Confidence: 0%"), (float("nan"), "Confidence: n/a"),
    (None, "Confidence: n/a"),
])
def test_format_confidence(score, text):
    assert format_confidence(score) == text


# --- format_answer ----------------------------------------------------------------------------

def _two_occurrences():
    """An answer on the second 'engines', in passage p2; p1 also contains the word 'engines'."""
    p1 = hit("p1", 0, 31, 0.9)            # "Alpha beta. The engines matter."
    p2 = hit("p2", 32, 52, 0.7)           # "Gamma engines delta."
    s = DOC.index("engines", 32)
    return answer_at(s, s + len("engines"), (p1, p2), "p2"), p1, p2


def test_answer_bold_first_then_confidence_then_passages():
    ans, _, _ = _two_occurrences()
    out = format_answer(ans)
    assert out.index("<strong>engines</strong>") < out.index("Confidence: 80%") < out.index("<mark>")
    assert ABSTAIN_TEXT not in out


def test_an_uncertain_answer_says_possibly_and_looks_different():
    ans, _, _ = _two_occurrences()
    assert "Possibly" not in format_answer(ans) and "qa-uncertain" not in format_answer(ans)  # 80 %
    unsure = dataclasses.replace(ans, score=0.49)
    out = format_answer(unsure)
    assert 'class="qa-reply qa-uncertain"' in out
    assert out.index("Possibly:") < out.index("<strong>engines</strong>") < out.index("Confidence: 49%")
    abstained = dataclasses.replace(ans, text=None, start=None, end=None, score=0.2)
    assert "Possibly" not in format_answer(abstained) and ABSTAIN_TEXT in format_answer(abstained)


def test_answer_highlights_only_the_cited_passage_at_its_offsets():
    ans, p1, p2 = _two_occurrences()
    out = format_answer(ans)
    assert marked(out) == ["engines"]
    assert "Gamma <mark>engines</mark> delta." in out
    assert "The engines matter." in out  # p1's occurrence is NOT marked
    assert cited_hit_ids(ans) == {"p2"}


def test_answer_names_every_source_and_offsets():
    ans, p1, p2 = _two_occurrences()
    other = Hit(Passage("q1", "notes/other.txt", 0, 5, "hello"), 0.1)
    ans = Answer(ans.question, ans.text, ans.score, ans.start, ans.end, ans.source, (p1, p2, other), "p2")
    out = format_answer(ans)
    assert out.count(f"<code>{SRC}</code>") == 2
    assert "<code>notes/other.txt</code>" in out
    assert "chars 32–52" in out
    assert out.index("chars 0–31") < out.index("chars 32–52")  # retrieval order kept


def test_answer_without_passage_id_highlights_passages_containing_span():
    ans, p1, p2 = _two_occurrences()
    ans = Answer(ans.question, ans.text, ans.score, ans.start, ans.end, ans.source, (p1, p2), None)
    assert cited_hit_ids(ans) == {"p2"}
    assert marked(format_answer(ans)) == ["engines"]


def test_unknown_passage_id_falls_back_to_containing_passage():
    ans, p1, p2 = _two_occurrences()
    ans = Answer(ans.question, ans.text, ans.score, ans.start, ans.end, ans.source, (p1, p2), "nope")
    assert cited_hit_ids(ans) == {"p2"}


def test_passage_id_that_does_not_contain_span_is_not_marked():
    ans, p1, p2 = _two_occurrences()
    ans = Answer(ans.question, ans.text, ans.score, ans.start, ans.end, ans.source, (p1, p2), "p1")
    # p1 does not contain the span; p2 (which does) is marked instead, and only at the offsets
    assert cited_hit_ids(ans) == {"p2"}
    assert marked(format_answer(ans)) == ["engines"]


def test_overlapping_passages_prefer_the_named_one():
    s = DOC.index("engines", 32)
    wide = hit("wide", 12, 60)
    narrow = hit("narrow", 32, 52)
    ans = answer_at(s, s + 7, (wide, narrow), "narrow")
    assert cited_hit_ids(ans) == {"narrow"}
    ans = answer_at(s, s + 7, (wide, narrow), None)
    assert cited_hit_ids(ans) == {"wide", "narrow"}
    assert marked(format_answer(ans)) == ["engines", "engines"]


def test_same_offsets_in_another_source_are_not_marked():
    other_doc = "X" * len(DOC)
    foreign = Hit(Passage("f", "other.txt", 32, 52, other_doc[32:52]), 0.9)
    ans, _, p2 = _two_occurrences()
    ans = Answer(ans.question, ans.text, ans.score, ans.start, ans.end, ans.source, (foreign, p2), "f")
    assert cited_hit_ids(ans) == {"p2"}


def test_answer_and_passages_are_escaped():
    s = DOC.index("<b>zeta</b>")
    p = hit("p3", 53, len(DOC))
    ans = answer_at(s, s + len("<b>zeta</b>"), (p,), "p3")
    out = format_answer(ans)
    assert "<b>" not in out
    assert "<strong>&lt;b&gt;zeta&lt;/b&gt;</strong>" in out
    assert "<mark>&lt;b&gt;zeta&lt;/b&gt;</mark> &amp; eta." in out


def test_script_in_passage_and_question_is_escaped():
    doc = 'Intro. <script>alert("x")</script> The answer is 42.'
    p = Hit(Passage("s1", "evil<script>.txt", 0, len(doc), doc), 0.9)
    s = doc.index("42")
    ans = Answer('<script>alert(1)</script> what?', "42", 0.9, s, s + 2, "evil<script>.txt", (p,), "s1")
    out = format_answer(ans) + format_question(ans.question) + format_error(ans.question)
    assert "<script" not in out.lower()
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in out
    assert "&lt;script&gt;alert(1)&lt;/script&gt; what?" in out
    assert "<code>evil&lt;script&gt;.txt</code>" in out
    assert marked(out) == ["42"]


def test_abstention_says_plainly_and_shows_closest_passages():
    p1, p2 = hit("p1", 0, 31, 0.4), hit("p2", 32, 52, 0.3)
    ans = Answer("What is the capital of Australia?", None, 0.05, None, None, None, (p1, p2))
    out = format_answer(ans)
    assert "<strong>The article does not say.</strong>" in out
    assert "Closest passages" in out
    assert "Alpha beta. The engines matter." in out and "Gamma engines delta." in out
    assert "<mark>" not in out
    assert "Confidence" not in out
    assert cited_hit_ids(ans) == set()


def test_abstention_without_passages():
    out = format_answer(Answer("Q?", None, 0.0, None, None, None, ()))
    assert ABSTAIN_TEXT in out and "No passages were retrieved" in out


def test_passage_newlines_become_line_breaks():
    doc = "Para one.\n\nPara two has it."
    p = Hit(Passage("n", SRC, 0, len(doc), doc), 0.5)
    s = doc.index("it")
    out = format_answer(Answer("Q?", "it", 0.6, s, s + 2, SRC, (p,), "n"))
    assert "Para one.<br><br>Para two has <mark>it</mark>." in out


def test_offsets_relative_to_a_passage_that_does_not_start_at_zero():
    p = hit("mid", 12, 31)  # "The engines matter."
    s = DOC.index("matter")
    out = format_answer(answer_at(s, s + 6, (p,), "mid"))
    assert "The engines <mark>matter</mark>." in out


# --- errors, question, status -----------------------------------------------------------------

def test_format_error_is_clear_and_escaped():
    out = format_error("Please type a question.")
    assert "Please type a question." in out and "qa-error" in out
    assert "Traceback" not in out
    assert "&lt;i&gt;" in format_error("<i>bad</i>")
    assert GENERIC_ERROR in format_error("")
    assert GENERIC_ERROR in format_error("   ")


def test_format_question_escapes():
    assert format_question("a < b?\nyes") == '<div class="qa-question">a &lt; b?<br>yes</div>'


def test_status_line():
    out = status_line("1 source (seeds/article.txt), 12 passages · reader: r <x>", concurrency=2)
    assert out.startswith('<p class="qa-status">')
    assert "Ready: 1 source (seeds/article.txt), 12 passages" in out
    assert "&lt;x&gt;" in out and "<x>" not in out
    assert "2 questions at a time" in out
    assert "Loading:" in status_line("x", ready=False)
    assert "1 question at a time" in status_line("x", concurrency=1)
    assert "no corpus description" in status_line(None)


def test_answer_reads_in_context_the_sentence_with_the_answer_in_bold():
    ans, _, p2 = _two_occurrences()
    sentence = "Gamma engines delta."
    cs = DOC.index(sentence)
    ans = dataclasses.replace(ans, context_start=cs, context_end=cs + len(sentence))
    out = format_answer(ans)
    assert '<p class="qa-context">Gamma <b>engines</b> delta.</p>' in out
    assert out.index("<strong>engines</strong>") < out.index("qa-context") < out.index("Confidence:")
    assert format_context(ans) in out
    assert format_context(dataclasses.replace(ans, context_start=None)) == ""  # unknown: nothing shown
    tricky = "Epsilon <b>zeta</b> & eta."
    ts = DOC.index(tricky)
    zs = DOC.index("zeta")
    z = answer_at(zs, zs + 4, (hit("p3", ts, ts + len(tricky)),), "p3")
    z = dataclasses.replace(z, context_start=ts, context_end=ts + len(tricky))
    assert format_context(z) == '<p class="qa-context">Epsilon &lt;b&gt;<b>zeta</b>&lt;/b&gt; &amp; eta.</p>'


def test_document_status_lines_escape_names() -> None:
    from ui.format import document_removed, documents_added, documents_line

    assert "Added a.pdf, &lt;b&gt;.txt" in documents_added(["a.pdf", "<b>.txt"])
    assert "Removed a.pdf" in document_removed("a.pdf")
    assert "answers from: a.pdf" in documents_line(["a.pdf"])
    assert "the article above" in documents_line([])
