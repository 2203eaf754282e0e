"""Tests for qa.schema: records are frozen, offsets checked, JSON forms complete."""

from __future__ import annotations

import dataclasses

import pytest

from qa.schema import Answer, Hit, Passage


def test_passage_checks_offsets() -> None:
    with pytest.raises(ValueError):
        Passage("a#0", "a", 5, 3, "")
    with pytest.raises(ValueError):
        Passage("a#0", "a", 0, 3, "ab")
    p = Passage("a#0", "a", 2, 4, "ab")
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.start = 0  # type: ignore[misc]


def test_hit_and_answer_json() -> None:
    hit = Hit(Passage("a#0", "a.txt", 0, 5, "Hello"), 0.123456)
    assert hit.to_dict() == {"id": "a#0", "source": "a.txt", "start": 0, "end": 5, "text": "Hello",
                             "score": 0.1235, "page": None}
    ans = Answer("Q?", "Hello", 0.9, 0, 5, "a.txt", (hit,), "a#0")
    assert ans.to_dict()["passages"] == [hit.to_dict()] and not ans.abstained
    assert Answer("Q?", None, 0.1, None, None, None).abstained
    assert (hit.citation, ans.citation, Answer("Q?", None, 0.1, None, None, None).citation) == \
        ("a.txt", "a.txt", None)
    paged = Hit(Passage("r#0", "report.pdf", 0, 5, "Hello"), 0.5, page=3)
    assert paged.citation == "report.pdf p. 3" and paged.to_dict()["page"] == 3
    assert dataclasses.replace(ans, source="report.pdf", page=3).citation == "report.pdf p. 3"


def test_answer_context_is_the_sentence_by_offsets() -> None:
    source = "Intro. The bridge opened in 1990. End."
    p = Passage("d#0", "d.txt", 7, 38, source[7:38])
    start = source.index("1990")
    a = Answer("When?", "1990", 0.8, start, start + 4, "d.txt", (Hit(p, 0.5),), "d#0",
               context_start=7, context_end=33)
    assert a.context == source[7:33] == "The bridge opened in 1990."
    d = a.to_dict()
    assert (d["context"], d["context_start"], d["context_end"]) == (a.context, 7, 33)
    assert Answer("Q?", None, 0.1, None, None, None).to_dict()["context"] is None
    # offsets outside the cited passage give no context rather than the wrong text
    assert dataclasses.replace(a, context_end=60).context is None


def test_an_answer_below_even_odds_is_uncertain_and_says_so_in_json() -> None:
    sure = Answer("Q?", "1990", 0.5, 0, 4, "d.txt")
    unsure = Answer("Q?", "1990", 0.4999, 0, 4, "d.txt")
    withheld = Answer("Q?", None, 0.1, None, None, None)
    assert not sure.uncertain and unsure.uncertain and not withheld.uncertain
    assert (sure.to_dict()["uncertain"], unsure.to_dict()["uncertain"], withheld.to_dict()["uncertain"]) == (
        False, True, False)
