"""Tests for qa.lab.rewrites: CANARD-format files, corpus BLEU of a rewriter against people's rewrites."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from qa import cli
from qa.chat.followup import Turn
from qa.lab.rewrites import evaluate_rewrites, history_turns, is_rewrites_file, load_rewrites, score_rewrites

ENTRIES = [
    {"History": ["Ada Lovelace", "Early life", "Who was her father?", "Lord Byron"],
     "Question": "When did he leave?", "Rewrite": "When did Lord Byron leave?", "QuAC_dialog_id": "d1"},
    {"History": ["Ada Lovelace", "Early life", "Who was her father?", "Lord Byron", "When did he leave?",
                 "CANNOTANSWER"],
     "Question": "Where was she born?", "Rewrite": "Where was Ada Lovelace born?", "QuAC_dialog_id": "d1"},
    {"History": ["Mount Kenya", "Geology"], "Question": "How old is it?",
     "Rewrite": "How old is Mount Kenya?", "QuAC_dialog_id": "d2"},
]


@pytest.fixture
def canard_file(tmp_path: Path) -> Path:
    """A small CANARD-format file."""
    path = tmp_path / "canard.json"
    path.write_text(json.dumps(ENTRIES), encoding="utf-8")
    return path


def test_history_starts_with_the_titles_and_pairs_questions_with_answers() -> None:
    turns = history_turns(ENTRIES[1]["History"])
    assert turns == (Turn("Ada Lovelace", "Early life"), Turn("Who was her father?", "Lord Byron"),
                     Turn("When did he leave?", None))  # CANNOTANSWER: no answer
    with pytest.raises(ValueError, match="title, section"):
        history_turns(["Ada Lovelace"])


def test_a_perfect_rewriter_scores_100_and_copying_scores_what_copying_scores(canard_file: Path) -> None:
    items = load_rewrites(canard_file)
    perfect = score_rewrites(items, [i.rewrite for i in items])
    assert perfect["rewrite_bleu"] == 100.0 and perfect["rewrite_exact_match"] == 100.0
    assert perfect["rewrite_length_ratio"] == 1.0
    assert perfect["questions"] == 3 and perfect["conversations"] == 2
    copied = evaluate_rewrites(canard_file, rewriter=lambda question, history: question)
    assert copied["rewrite_bleu"] == copied["copy_bleu"] < 100 and copied["changed"] == 0
    assert copied["rewrite_exact_match"] == copied["copy_exact_match"] == 0
    assert 0 < copied["rewrite_length_ratio"] < 1  # people's rewrites are longer than the questions


def test_the_rewriter_sees_the_titles(canard_file: Path) -> None:
    def title_for_pronoun(question: str, history: list[Turn]) -> str:
        title = history[0].question
        return question.replace(" she ", f" {title} ").replace(" it?", f" {title}?")

    scored = evaluate_rewrites(canard_file, rewriter=title_for_pronoun)
    assert scored["rewrite_exact_match"] == pytest.approx(100 * 2 / 3, abs=0.01)
    assert scored["rewrite_bleu"] > scored["copy_bleu"]


def test_files_are_told_apart_and_bad_ones_explained(canard_file: Path, tmp_path: Path) -> None:
    assert is_rewrites_file(canard_file)
    squad = tmp_path / "squad.json"
    squad.write_text(json.dumps({"data": []}), encoding="utf-8")
    assert not is_rewrites_file(squad) and not is_rewrites_file(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{**ENTRIES[0], "History": ["only a title"]}]), encoding="utf-8")
    with pytest.raises(ValueError, match="entry 0"):
        load_rewrites(bad)


def test_qa_eval_prints_the_rewrite_scores(canard_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["eval", str(canard_file), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {"rewrite_bleu", "copy_bleu", "title_bleu", "rewrite_exact_match"} <= set(result)
    assert result["rewriter"] == "qa.chat.rewrite.learned" and result["questions"] == 3
    assert result["rewrite_bleu"] > result["copy_bleu"]
    assert cli.main(["eval", str(canard_file), "--reader-only"]) == 2
    assert "leave out --reader-only" in capsys.readouterr().err


def test_qa_eval_writes_a_report_with_the_scores(canard_file: Path, tmp_path: Path) -> None:
    report = tmp_path / "docs" / "eval-canard.md"
    assert cli.main(["eval", str(canard_file), "--report", str(report)]) == 0
    text = report.read_text(encoding="utf-8")
    assert "follow-up rewrites" in text and "rewrite BLEU" in text and "copy_bleu" in text


def test_without_sacrebleu_qa_eval_names_the_extra(canard_file: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "sacrebleu", None)
    assert cli.main(["eval", str(canard_file)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'qa[eval]'" in err
