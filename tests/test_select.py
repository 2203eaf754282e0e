"""Tests for qa.chat.select: the span chosen across passages; a follow-up read in the forms it may mean."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qa.chat.followup import Turn
from qa.chat.rewrite import Rewrite
from qa.chat.select import (
    FOLLOW_UP_SURE,
    RANK_PRIOR,
    follow_up_forms,
    read_follow_up,
    read_in_rank_order,
    select_span,
)
from qa.schema import Hit, Passage, Span


def _hit(i: int, text: str = "words") -> Hit:
    return Hit(passage=Passage(f"doc#{i}", "doc", 10 * i, 10 * i + len(text), text), score=0.5)


def test_select_span_weighs_confidence_by_retrieval_rank() -> None:
    hits = [_hit(0), _hit(1), _hit(2)]
    first = Span("a", 0.5, 0, 1, "doc", "doc#0")
    third = Span("b", 0.7, 20, 21, "doc", "doc#2")
    # 0.7 * RANK_PRIOR**2 < 0.5: the top passage's span wins although the reader likes the other more
    assert 0.7 * RANK_PRIOR**2 < 0.5
    assert select_span([third, first], hits) is first
    assert select_span([third, first], hits, prior=1.0) is third  # no prior: confidence alone
    assert select_span([third, first], hits, prior=0.0) is first  # only the top passage counts
    weak_first = Span("a", 0.3, 0, 1, "doc", "doc#0")
    strong = Span("c", 0.95, 10, 11, "doc", "doc#1")
    assert select_span([weak_first, strong], hits) is strong  # 0.95 * RANK_PRIOR > 0.3
    assert select_span([], hits) is None
    with pytest.raises(ValueError, match="prior"):
        select_span([first], hits, prior=1.5)


class ScoredReader:
    """Gives each passage one span with a fixed confidence; records what it was asked to read."""

    def __init__(self, scores: dict[str, float]) -> None:
        self.scores = scores
        self.reads: list[int] = []

    def read(self, question, passages, *, top_n=1, per_passage=False):
        self.reads.append(len(passages))
        spans = [Span(h.text[:3], self.scores[h.id], h.start, h.start + 3, h.source, h.id) for h in passages]
        return sorted(spans, key=lambda sp: -sp.score)[:top_n]


def _hits(n: int) -> list[Hit]:
    return [Hit(Passage(f"d#{i}", "d", 10 * i, 10 * i + 9, "abcdefghi"), 1.0 - i / 10) for i in range(n)]


@settings(max_examples=300, deadline=None)
@given(scores=st.lists(st.floats(0, 1), min_size=1, max_size=8),
       prior=st.sampled_from([0.0, 0.3, RANK_PRIOR, 0.8, 1.0]), first=st.integers(1, 3))
def test_reading_in_rank_order_picks_what_reading_everything_picks(scores, prior, first) -> None:
    hits = _hits(len(scores))
    reader = ScoredReader({h.id: sc for h, sc in zip(hits, scores, strict=True)})
    early = read_in_rank_order(reader, "q?", hits, prior=prior, first=first)
    full = select_span(ScoredReader(reader.scores).read("q?", hits, top_n=len(hits)), hits, prior=prior)
    assert early == full
    assert sum(reader.reads) <= len(hits) and all(n == 1 for n in reader.reads[1:])


def test_a_confident_top_passage_is_the_only_one_read() -> None:
    hits = _hits(5)
    reader = ScoredReader({"d#0": RANK_PRIOR + 0.01, "d#1": 1.0, "d#2": 1.0, "d#3": 1.0, "d#4": 1.0})
    assert read_in_rank_order(reader, "q?", hits, first=1).passage_id == "d#0" and reader.reads == [1]
    doubtful = ScoredReader({**reader.scores, "d#0": RANK_PRIOR - 0.01})
    assert read_in_rank_order(doubtful, "q?", hits, first=1).passage_id == "d#1"
    assert doubtful.reads == [1, 1], "d#1 at 1.0 x prior beats anything below it"
    low = ScoredReader({h.id: 0.05 for h in hits})
    assert read_in_rank_order(low, "q?", hits, first=2).passage_id == "d#0" and low.reads == [2, 1, 1, 1]
    with pytest.raises(ValueError, match="first"):
        read_in_rank_order(reader, "q?", hits, first=0)


@pytest.mark.slow
def test_the_real_reader_answers_the_same_reading_in_rank_order_as_reading_everything() -> None:
    """60 SQuAD questions, each with its paragraph among 5 of its article's, at every position."""
    import json
    import random

    from conftest import SHARED_DATA

    from qa.reader.read import Reader

    data = json.loads((SHARED_DATA / "squad" / "squad-v1.1-dev-40.json").read_text(encoding="utf-8"))
    rng = random.Random(7)
    reader = Reader()
    same = 0
    cases = 0
    for article in rng.sample(data["data"], 12):
        paragraphs = article["paragraphs"]
        for _ in range(5):
            own = rng.randrange(len(paragraphs))
            question = rng.choice(paragraphs[own]["qas"])["question"]
            others = rng.sample([i for i in range(len(paragraphs)) if i != own], 4)
            order = others[:]
            order.insert(rng.randrange(5), own)
            hits = [Hit(Passage(f"p{i}", f"p{i}", 0, len(paragraphs[i]["context"]), paragraphs[i]["context"]),
                        1.0 - r / 10) for r, i in enumerate(order)]
            early = read_in_rank_order(reader, question, hits)
            full = select_span(reader.read(question, hits, top_n=len(hits), per_passage=True), hits)
            cases += 1
            same += (early is None and full is None) or (
                early is not None and full is not None
                and (early.passage_id, early.start, early.end) == (full.passage_id, full.start, full.end)
                and abs(early.score - full.score) < 1e-3)
    assert cases == 60 and same == cases




class QuestionReader:
    """Scores the top passage by the question asked; records the questions."""

    def __init__(self, scores: dict[str, float]) -> None:
        self.scores = scores
        self.asked: list[str] = []

    def read(self, question, passages, *, top_n=1, per_passage=False):
        self.asked.append(question)
        h = passages[0]
        return [Span(question[:5], self.scores.get(question, 0.0), h.start, h.start + 3, h.source, h.id)]


HISTORY = [Turn("Who objected to the deal?", "the United States")]
REWRITE = Rewrite("Why did they object?", "Why did the United States object?", 0.4)


def test_follow_up_forms_are_the_rewrite_the_question_and_the_question_with_the_last_turn() -> None:
    assert follow_up_forms(REWRITE, HISTORY) == [
        "Why did the United States object?", "Why did they object?",
        "Why did they object? Who objected to the deal? the United States"]
    same = Rewrite("Why?", "Why?", 1.0)
    assert follow_up_forms(same, []) == ["Why?"]


def test_a_sure_reading_of_the_rewrite_is_the_only_one() -> None:
    reader = QuestionReader({REWRITE.text: FOLLOW_UP_SURE + 0.1})
    span = read_follow_up(reader, REWRITE, HISTORY, [_hit(0)])
    assert span is not None and span.score == FOLLOW_UP_SURE + 0.1 and reader.asked == [REWRITE.text]


def test_an_unsure_rewrite_loses_to_a_form_the_reader_is_surer_of() -> None:
    forms = follow_up_forms(REWRITE, HISTORY)
    reader = QuestionReader({forms[0]: 0.1, forms[1]: 0.05, forms[2]: 0.25})
    span = read_follow_up(reader, REWRITE, HISTORY, [_hit(0)])
    assert span is not None and span.score == 0.25 and reader.asked == forms
    assert read_follow_up(QuestionReader({}), REWRITE, HISTORY, [_hit(0)]).score == 0.0
