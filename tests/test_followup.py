"""Follow-ups: history forms, and questions made self-contained from the conversation."""

from __future__ import annotations

import pytest

from qa.chat.followup import (
    MAX_HISTORY_TURNS,
    Turn,
    elliptical,
    is_follow_up,
    names,
    referent,
    resolve,
    self_contained,
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


def test_they_and_it_point_to_the_last_short_answer() -> None:
    history = [Turn("Which company bought the mill?", "Nordic Paper")]
    assert resolve("When did they buy it?", history) == "When did Nordic Paper buy Nordic Paper?"
    assert resolve("What is its name?", history) == "What is Nordic Paper's name?"


def test_he_and_she_point_to_a_person_from_a_who_turn() -> None:
    history = [Turn("Who is Anna Berg?", "the town's chief engineer"), Turn("Where does she work?", "Lund")]
    # "Lund" answers a where-question, so "she" still means the person the conversation is about
    assert referent("person", history) == "Anna Berg"
    assert resolve("What did she build?", history) == "What did Anna Berg build?"
    assert resolve("When did her bridge open?", history) == "When did Anna Berg's bridge open?"
    assert resolve("Who met her in Lund?", history) == "Who met Anna Berg in Lund?"


def test_that_noun_becomes_the_earlier_name_holding_it() -> None:
    history = [Turn("Who runs the lab?", "a fellow at the Baltic Marine Institute in Riga")]
    assert resolve("Where is that institute?", history) == "Where is the Baltic Marine Institute?"
    assert resolve("Where is that harbour?", history) == "Where is that harbour?"  # nothing to point at


def test_questions_without_pointing_words_are_left_alone() -> None:
    history = [Turn("Which company bought the mill?", "Nordic Paper")]
    standalone = "When did the mill close?"
    assert resolve(standalone, history) == standalone
    assert not is_follow_up(standalone, history)
    assert is_follow_up("Why?", history) and is_follow_up("When did they buy it?", history)
    assert resolve("When did they buy it?", []) == "When did they buy it?"
    assert not is_follow_up("Why?", [])


def test_an_abstained_turn_falls_back_to_the_name_asked_about() -> None:
    history = [Turn("What does Nordic Paper make?", None)]
    assert resolve("Where is it based?", history) == "Where is Nordic Paper based?"


def test_it_does_not_point_to_the_answer_of_a_who_question() -> None:
    history = [Turn("Who banned the Lund Festival?", "the council")]
    assert resolve("When did they ban it?", history) == "When did the council ban Lund Festival?"


def test_elliptical_follow_ups_get_the_previous_turn() -> None:
    history = [Turn("What did the council ban?", "the festival")]
    assert self_contained("Why?", history) == "Why? What did the council ban? the festival"
    assert self_contained("A ban on what?", history).startswith("A ban on what? What did the council ban?")
    assert self_contained("Why was it banned?", history) == "Why was the festival banned?"
    standalone = "When did the festival first open in Lund?"
    assert self_contained(standalone, history) == standalone
    assert self_contained("Why?", []) == "Why?"


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
