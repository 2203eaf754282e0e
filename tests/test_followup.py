"""Follow-ups: history forms, which questions are follow-ups, names."""

from __future__ import annotations

import pytest

from qa.chat.followup import (
    MAX_HISTORY_TURNS,
    Turn,
    elliptical,
    is_follow_up,
    names,
    turns,
)
from qa.schema import Answer


def test_turns_accepts_answers_pairs_dicts_questions_and_chat_messages() -> None:
    earlier = Answer("Who built the bridge?", "Anna Berg", 0.8, 0, 9, "a.txt")
    abstained = Answer("Why?", None, 0.1, None, None, None)
    history = [
        earlier,
        abstained,
        ("Where is it?", "in Lund"),
        ["When?", None],
        {"question": "How long is it?", "answer": "300 metres"},
        "What colour is it?",
        {"role": "user", "content": "Who paid?"},
        {"role": "assistant", "content": "the city"},
    ]
    assert turns(history) == [
        Turn("Who built the bridge?", "Anna Berg"),
        Turn("Why?", None),
        Turn("Where is it?", "in Lund"),
        Turn("When?", None),
        Turn("How long is it?", "300 metres"),
        Turn("What colour is it?", None),
        Turn("Who paid?", "the city"),
    ]
    assert turns(None) == [] and turns([]) == []


def test_turns_rejects_malformed_history_with_a_clear_message() -> None:
    with pytest.raises(TypeError, match="history must be a list"):
        turns("Who built the bridge?")
    with pytest.raises(TypeError, match="history items"):
        turns([5])
    with pytest.raises(TypeError, match="pair"):
        turns([("Who?", 3)])
    with pytest.raises(TypeError, match="history entry"):
        turns([{"question": 5}])


def test_turns_keeps_only_the_latest_turns() -> None:
    history = [(f"Question {i}?", None) for i in range(MAX_HISTORY_TURNS + 5)]
    kept = turns(history)
    assert len(kept) == MAX_HISTORY_TURNS and kept[-1].question == f"Question {MAX_HISTORY_TURNS + 4}?"


def test_names_are_runs_of_capitalised_words() -> None:
    assert names("Who founded the Bank of England in London?") == ["Bank of England", "London"]
    assert names("The mayor met Anna Berg.") == ["Anna Berg"]
    assert names("what is it?") == []


def test_questions_without_pointing_words_are_not_follow_ups() -> None:
    history = [Turn("Which company bought the mill?", "Nordic Paper")]
    assert not is_follow_up("When did the mill close?", history)
    assert is_follow_up("Why?", history) and is_follow_up("When did they buy it?", history)
    assert not is_follow_up("Why?", [])


def test_elliptical_questions_have_few_content_words_and_no_name() -> None:
    assert elliptical("Why?") and elliptical("An alternative to what?") and elliptical("When was that?")
    assert not elliptical("Who is Anna Berg?")  # short, but names what it asks about
    assert not elliptical("When did the mill close down?")
    history = [Turn("Who runs the lab?", "Ida Holm")]
    assert is_follow_up("An alternative to what?", history)  # retrieval reads the previous question too


def test_a_huge_history_is_cut_before_it_is_read() -> None:
    recent = [("Who built it?", "Anna Berg")] * (2 * MAX_HISTORY_TURNS)
    history = [5] * 1_000_000 + recent  # the bad items are too old to be looked at
    assert turns(history) == [Turn("Who built it?", "Anna Berg")] * MAX_HISTORY_TURNS
