"""Tests for qa.chat.rewrite: candidate rewrites of a follow-up and the learned choice among them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qa.chat.followup import Turn
from qa.chat.rewrite import (
    FORMAT,
    WEIGHTS_FILE,
    Candidate,
    Rewriter,
    Weights,
    additions,
    choose,
    phrases,
    replacements,
    tidy,
)

TOPIC = ("Lea Salonga", "1971-1989: Early life and career")
HISTORY = (Turn("Did she ever go to college?", "She attended the University of the Philippines"),)


def test_phrases_come_from_the_topic_first_then_recent_turns() -> None:
    found = phrases(("Hugo (film)", "Critical reception"), [Turn("Who reviewed it?", "Roger Ebert")])
    assert found[:3] == [("Hugo (film)", "title"), ("Hugo", "title_base"), ("Critical reception", "section")]
    assert ("Roger Ebert", "ans_name0") in found
    assert phrases((), []) == []


def test_replacements_put_each_referent_in_place_of_a_pronoun_possessive_when_it_is() -> None:
    texts = [c.text for c in replacements("What was his role?", TOPIC, HISTORY)]
    assert texts[0] == "What was his role?"  # leaving it is always a candidate
    assert "What was Lea Salonga's role?" in texts
    her = [c.text for c in replacements("Did they meet her?", TOPIC, ())]
    assert "Did they meet Lea Salonga?" in her and "Did Lea Salonga meet her?" in her
    assert [c.text for c in replacements("Where was Luis born?", TOPIC, ())] == ["Where was Luis born?"]


def test_expansions_make_a_word_of_the_title_the_whole_title() -> None:
    texts = [c.text for c in replacements("Where was Salonga born?", TOPIC, ())]
    assert texts == ["Where was Salonga born?", "Where was Lea Salonga born?"]
    assert [c.text for c in replacements("Was lea's mother a singer?", TOPIC, ())][1] == \
        "Was Lea Salonga's mother a singer?"
    assert len(replacements("Where was Lea Salonga born?", TOPIC, ())) == 1  # already whole
    assert len(replacements("Who did the band meet?", ("The Waterboys", ""), ())) == 1  # not "the"
    assert len(replacements("Did Le Pen win?", ("Jean-Marie Le Pen", ""), ())) == 1  # "Pen" is not alone
    assert len(replacements("Where was Salonga born?", (), ())) == 1  # no topic, no title


def test_additions_append_a_phrase_of_the_conversation_after_a_preposition() -> None:
    texts = [c.text for c in additions("What else did she study?", TOPIC, HISTORY)]
    assert texts[0] == "What else did she study?"
    assert "What else did she study besides She attended the University?" in texts
    assert "What else did she study of Lea Salonga?" in texts
    assert all(c.features for c in additions("Why?", TOPIC, HISTORY))
    led = (Turn("Who played?", "Led by Terry Hanratty, Nick Eddy and Jim Seymour scored twice in the game."),)
    clause = [c.text for c in additions("Any others?", TOPIC, led) if "lasta_clause" in str(c.features)]
    assert "Any others besides Led by Terry Hanratty?" in clause  # the answer up to its first comma


def test_tidy_writes_a_question_as_people_do() -> None:
    assert tidy(" did he tour ") == "Did he tour?"
    assert tidy("Why?") == "Why?"


def hand_weights(**add: float) -> Weights:
    """Weights that replace a person pronoun with the title and add nothing unless told."""
    title = {"rep&k=person&src=title": 5.0, "rep&k=person_pos&src=title": 5.0}
    return Weights(title, dict(add), keep_bias=0.0)


def test_the_rewriter_follows_its_weights() -> None:
    rewriter = Rewriter(weights=hand_weights())
    done = rewriter.rewrite("did she ever tour", HISTORY, topic=TOPIC)
    assert done.text == "Did Lea Salonga ever tour?" and done.changed and 0 < done.confidence <= 1
    kept = rewriter.rewrite("Where was Lea Salonga born?", HISTORY, topic=TOPIC)
    assert kept.text == "Where was Lea Salonga born?" and not kept.changed
    first = rewriter.rewrite("Who is she?", (), topic=())
    assert first.text == "Who is she?" and first.confidence == 1.0  # nothing to lean on
    besides = Rewriter(weights=hand_weights(**{"app&prep=besides&src=lasta4": 9.0}))
    assert besides.rewrite("What else did she do?", HISTORY, topic=TOPIC).text == (
        "What else did Lea Salonga do besides She attended the University?")


def test_a_length_bonus_per_word_favours_the_longer_candidate() -> None:
    short, long = Candidate("Did he tour?", ("op=copy",)), Candidate("Did Lea Salonga tour?", ("op=rep",))
    assert choose({"op=copy": 0.1}, [short, long])[0] == short
    assert choose({"op=copy": 0.1}, [short, long], length_bonus=0.2)[0] == long  # 2 more words: +0.4
    rewriter = Rewriter(weights=Weights({}, {}, keep_bias=50.0, length_bonus=0.5))  # adds nothing
    assert rewriter.rewrite("Did she tour?", (), topic=("Lea Salonga", "")).text == "Did Lea Salonga tour?"
    assert Rewriter(weights=Weights({}, {}, keep_bias=50.0)).rewrite(  # ties: the question as asked
        "Did she tour?", (), topic=("Lea Salonga", "")).text == "Did she tour?"


def test_a_copy_bias_sets_how_readily_step_one_replaces_a_pronoun() -> None:
    doubtful = Weights({"op=copy": 1.0}, {}, keep_bias=50.0)  # the question as asked scores higher
    assert Rewriter(weights=doubtful).rewrite("Did she tour?", (), topic=("Lea Salonga", "")).text == (
        "Did she tour?")
    eager = Weights({"op=copy": 1.0}, {}, keep_bias=50.0, copy_bias=-3.0)
    done = Rewriter(weights=eager).rewrite("Did she tour?", (), topic=("Lea Salonga", ""))
    assert done.text == "Did Lea Salonga tour?" and done.changed
    assert Rewriter(weights=eager).rewrite("Did Lea Salonga tour?", (), topic=("Lea Salonga", "")).text == (
        "Did Lea Salonga tour?")  # no pronoun: nothing to replace, whatever the bias


def test_weights_round_trip_through_json_and_bad_files_are_explained(tmp_path: Path) -> None:
    path = tmp_path / "rewriter.json"
    path.write_text(hand_weights().to_json(trained_on="a test"), encoding="utf-8")
    assert json.loads(path.read_text())["format"] == FORMAT
    assert Weights.load(path) == hand_weights()
    bonus = Weights({"a": 1.0}, {}, keep_bias=-1.5, length_bonus=0.03, copy_bias=-3.0)
    path.write_text(bonus.to_json(), encoding="utf-8")
    assert Weights.load(path) == bonus
    (tmp_path / "other.json").write_text("{}", encoding="utf-8")
    (tmp_path / "list.json").write_text("[1, 2]", encoding="utf-8")
    (tmp_path / "cut.json").write_text(json.dumps({"format": FORMAT, "replace": {}}), encoding="utf-8")
    (tmp_path / "text.json").write_text(json.dumps({"format": FORMAT, "replace": {"a": "x"}, "add": {}}),
                                        encoding="utf-8")
    for name in ("other", "list", "cut", "text", "missing"):
        bad = tmp_path / f"{name}.json"
        with pytest.raises(ValueError, match="retrain"):
            Weights.load(bad)
    with pytest.raises(TypeError, match="weights must be"):
        Rewriter(weights=3)  # type: ignore[arg-type]


def test_the_shipped_weights_resolve_a_pronoun_to_the_topic() -> None:
    assert WEIGHTS_FILE.is_file() and WEIGHTS_FILE.stat().st_size < 1_000_000
    rewriter = Rewriter()
    rewriter.warm_up()
    assert "Lea Salonga" in rewriter.rewrite("Did she ever tour?", HISTORY, topic=TOPIC).text
