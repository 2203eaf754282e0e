"""Tests for qa.lab.train_rewriter: a fixed split by conversation and weights learned from rewrites."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qa.chat.rewrite import Rewriter, Weights
from qa.lab import train_rewriter
from qa.lab.rewrites import evaluate_rewrites, learned, load_rewrites

PEOPLE = ["Ada Lovelace", "Alan Turing", "Grace Hopper", "Edsger Dijkstra", "Barbara Liskov", "John McCarthy",
          "Donald Knuth", "Frances Allen", "Tony Hoare", "Niklaus Wirth", "Leslie Lamport", "Radia Perlman"]
ASKED = [("Where did {p} study?", "At Cambridge."), ("What did {p} write?", "A book on algorithms.")]
FOLLOW = [("When was he born?", "When was {p} born?"), ("Where did she work?", "Where did {p} work?"),
          ("What was his first job?", "What was {p}'s first job?"),
          ("Did they win awards?", "Did {p} win awards?")]


def entries() -> list[dict[str, object]]:
    """Follow-ups whose person-written rewrite puts the article's title in place of the pronoun."""
    out = []
    for n, person in enumerate(PEOPLE):
        for k, (follow, rewrite) in enumerate(FOLLOW):
            q, a = ASKED[k % 2]
            out.append({"History": [person, "Career", q.format(p="the committee"), a], "Question": follow,
                        "Rewrite": rewrite.format(p=person), "QuAC_dialog_id": f"C_{n}",
                        "Question_no": k + 2})
    return out


@pytest.fixture
def canard(tmp_path: Path) -> Path:
    """A small CANARD-format file with a learnable habit."""
    path = tmp_path / "canard.json"
    path.write_text(json.dumps(entries()), encoding="utf-8")
    return path


def test_the_split_is_by_conversation_and_fixed(canard: Path) -> None:
    training, validation = train_rewriter.split(load_rewrites(canard))
    assert training and validation
    assert not {i.dialog for i in training} & {i.dialog for i in validation}
    assert train_rewriter.is_validation("C_5") == train_rewriter.is_validation("C_5")
    with pytest.raises(ValueError, match="QuAC_dialog_id"):
        train_rewriter.split([train_rewriter.RewriteItem((), "Why?", "Why?", "")])


def test_training_learns_the_habit_and_writes_json_weights(canard: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    out, held = tmp_path / "rewriter.json", tmp_path / "held.json"
    argv = [str(canard), "--out", str(out), "--folds", "2", "--write-validation", str(held)]
    assert train_rewriter.main(argv) == 0
    printed = capsys.readouterr().out
    assert "validation: rewrite_bleu" in printed
    weights = Weights.load(out)
    assert weights.replace and weights.add
    scored = evaluate_rewrites(held, rewriter=learned(out))
    assert scored["rewrite_bleu"] > scored["copy_bleu"] and scored["rewrite_exact_match"] >= 50
    assert len(json.loads(held.read_text())) == scored["questions"]
    rewriter = Rewriter(weights=out)
    assert rewriter.rewrite("When did she retire?", (), topic=("Karen Sparck Jones", "Work")).text == (
        "When did Karen Sparck Jones retire?")


def test_the_validation_file_alone_and_bad_arguments(canard: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    held, out = tmp_path / "held.json", tmp_path / "never.json"
    assert train_rewriter.main([str(canard), "--write-validation", str(held), "--split-only",
                                "--out", str(out)]) == 0
    assert {e["QuAC_dialog_id"] for e in json.loads(held.read_text())} == {
        d for d in {f"C_{n}" for n in range(len(PEOPLE))} if train_rewriter.is_validation(d)}
    assert not out.exists()
    for argv, message in (([str(canard), "--folds", "1"], "--folds must be at least 2"),
                          ([str(canard), "--split-only"], "--split-only goes with --write-validation"),
                          ([str(canard), "--cv-only", "--write-validation", str(held)],
                           "--cv-only writes nothing")):
        with pytest.raises(SystemExit):
            train_rewriter.main(argv)
        assert message in capsys.readouterr().err


def test_cross_validation_alone_prints_each_bias_and_writes_nothing(
        canard: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "never.json"
    assert train_rewriter.main([str(canard), "--cv-only", "--folds", "2", "--out", str(out)]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["folds"] == 2 and result["training_follow_ups"] < len(entries())
    grid = [(c, b, g) for c in train_rewriter.COPY_BIASES for b in train_rewriter.KEEP_BIASES
            for g in train_rewriter.LENGTH_BONUSES]
    assert set(result["cv_rewrite_bleu"]) == {train_rewriter.setting_name(s) for s in grid}
    best = train_rewriter.setting_name((result["best_copy_bias"], result["best_keep_bias"],
                                        result["best_length_bonus"]))
    assert result["cv_rewrite_bleu"][best] == max(result["cv_rewrite_bleu"].values())
    assert max(result["cv_rewrite_bleu"].values()) > 50  # the habit is learned on the other fold
    assert not out.exists()
