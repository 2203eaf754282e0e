"""Choosing the answer span: passages read in rank order, and a follow-up read in the forms it may mean."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from qa.chat.followup import Turn
from qa.chat.rewrite import Rewrite
from qa.schema import Hit, Span

#: Each retrieved passage's best span competes with its confidence times RANK_PRIOR ** (the passage's
#: retrieval rank - 1): a confident span in a lower-ranked passage is often about something else.
#: ``python scripts/selection_check.py`` (700 questions per split, top 3 of all 1,726 SQuAD paragraphs):
#: training-split F1 85.43 with confidence alone, 86.33 at 0.8, 84.90 at 0.7, 83.12 at 0.6, 77.69 with
#: the top passage only (held-out articles 66.93, 68.25, 67.56, 66.74, 61.75). On the seed article's
#: development questions 0.8 gives F1 61.20 against 72.97 at 0.6 (``qa eval
#: ../shared/data/article_dev.json``): the SQuAD gain does not carry over to news text, so 0.6 stays.
RANK_PRIOR = 0.6
#: ``read_in_rank_order`` reads this many top passages first, then one at a time while an unread one
#: could still win. ONNX Runtime reads one window per call, so reading two together gains nothing:
#: ``qa bench --sizes '' --answers 0 --cold-runs 0 --open-domain 200`` (top 5 of all 1,726 SQuAD
#: paragraphs, 2 threads) gives p50 123.7 ms with 1 (1.97 passages read) and 163.0 ms with 2, against
#: 302.2 ms reading every passage; the same answer 200 times of 200.
FIRST_READ = 1
#: A follow-up's rewrite is read first; below this confidence the question as asked and the question
#: with the last turn are read too and the surest span wins. ``qa eval build/followups/squad-followups.json
#: --json`` (``python scripts/make_conversations.py build/followups``: held-out SQuAD articles) with this
#: set to 0 (the rewrite alone), 0.3, 0.5, 0.7: follow-up F1 54.27, 59.07, 59.70, 59.75; follow-up p50
#: 1.06x, 1.08x, 2.76x, 2.93x a first question's. 0.3 keeps within the 1.3x latency budget.
FOLLOW_UP_SURE = 0.3


def select_span(spans: Sequence[Span], hits: Sequence[Hit], *, prior: float = RANK_PRIOR) -> Span | None:
    """The span with the highest confidence * prior ** (its passage's rank among ``hits``); None if none."""
    if isinstance(prior, bool) or not isinstance(prior, (int, float)) or not 0 <= prior <= 1:
        raise ValueError(f"prior must be a number from 0 to 1, got {prior!r}")
    rank = {h.id: r for r, h in reversed(list(enumerate(hits)))}
    best, best_key = None, -1.0
    for span in spans:
        key = span.score * prior ** rank.get(span.passage_id, len(hits))
        if key > best_key:
            best, best_key = span, key
    return best


def read_in_rank_order(reader: Any, question: str, hits: Sequence[Hit], *, prior: float = RANK_PRIOR,
                       first: int = FIRST_READ) -> Span | None:
    """The span ``select_span`` picks among every passage's best span, reading only what can change it.

    Passages are read in rank order, the top ``first`` together, then one at a time, until the best
    answer so far scores more (confidence x prior ** rank) than any unread passage could: a confidence
    is at most 1, so a passage at rank r (from 0) scores at most prior ** r. The reader must score a
    passage the same alone or beside others (``Reader`` runs one window per ONNX Runtime call: it
    does, bit for bit).
    """
    if isinstance(first, bool) or not isinstance(first, int) or first < 1:
        raise ValueError(f"first must be a positive int, got {first!r}")
    rank = {h.id: r for r, h in reversed(list(enumerate(hits)))}
    spans: list[Span] = []
    best: Span | None = None
    done = 0
    while done < len(hits):
        step = list(hits[done:first if done == 0 else done + 1])
        spans += reader.read(question, step, top_n=len(step), per_passage=True)
        spans.sort(key=lambda s: -s.score)  # the order one read of every passage gives (ties: first wins)
        done += len(step)
        best = select_span(spans, hits, prior=prior)
        if best is not None and best.score * prior ** rank.get(best.passage_id, len(hits)) > prior ** done:
            break
    return best


def follow_up_forms(rewrite: Rewrite, history: Sequence[Turn]) -> list[str]:
    """What a follow-up may mean, likeliest first: its rewrite, the question as asked, with the last turn."""
    last = history[-1] if history else None
    with_last = " ".join(p for p in (rewrite.question, last.question, last.answer) if p) if last else ""
    return [q for q in dict.fromkeys((rewrite.text, rewrite.question, with_last)) if q]


def read_follow_up(reader: Any, rewrite: Rewrite, history: Sequence[Turn], hits: Sequence[Hit], *,
                   sure: float = FOLLOW_UP_SURE) -> Span | None:
    """A follow-up's span: its rewrite's, unless the reader is unsure of it and another form does better."""
    best: Span | None = None
    for n, question in enumerate(follow_up_forms(rewrite, history)):
        span = read_in_rank_order(reader, question, hits)
        if span is not None and (best is None or span.score > best.score):
            best = span
        if n == 0 and best is not None and best.score >= sure:
            break
    return best
