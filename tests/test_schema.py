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
                             "score": 0.1235}
    ans = Answer("Q?", "Hello", 0.9, 0, 5, "a.txt", (hit,), "a#0")
    assert ans.to_dict()["passages"] == [hit.to_dict()] and not ans.abstained
    assert Answer("Q?", None, 0.1, None, None, None).abstained
