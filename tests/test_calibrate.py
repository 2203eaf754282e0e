"""Tests for qa.lab.calibrate: the SQuAD 2.0 best-threshold rule, fitting the confidence map, its command."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qa.lab import calibrate, calibrate_reader
from qa.lab.calibrate import best_f1_threshold, expected_calibration_error, fit_platt, reliability
from qa.reader import confidence
from qa.reader.confidence import Confidence


def official_best_f1(scores: list[float], f1s: list[float], answerable: list[bool]) -> float:
    """``find_best_thresh`` of the official SQuAD 2.0 evaluation script, with na_prob = -score."""
    cur = best = sum(not a for a in answerable)
    for k in sorted(range(len(scores)), key=lambda k: -scores[k]):
        cur += f1s[k] / 100 if answerable[k] else -1
        best = max(best, cur)
    return 100.0 * best / len(scores)


def test_best_f1_threshold_by_hand() -> None:
    # answerable right (0.9), unanswerable (0.8), answerable half right (0.4), unanswerable (0.2)
    scores, f1s, answerable = [0.9, 0.8, 0.4, 0.2], [100.0, 0.0, 50.0, 0.0], [True, False, True, False]
    f1, threshold = best_f1_threshold(scores, f1s, answerable)
    assert threshold == 0.9 and f1 == pytest.approx(100 * 3 / 4)  # answer only the first: 1 + 1 + 0 + 1
    assert best_f1_threshold([0.5], [0.0], [False]) == (100.0, math.inf)  # abstaining on all is best
    assert best_f1_threshold([0.5, 0.5], [100.0, 0.0], [True, False]) == (50.0, math.inf)  # ties together
    with pytest.raises(ValueError, match="one score"):
        best_f1_threshold([0.5], [], [True])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(-20, 20), st.sampled_from([0.0, 40.0, 100.0]), st.booleans()),
                min_size=1, max_size=40, unique_by=lambda t: t[0]))
def test_best_f1_threshold_matches_the_official_script(rows: list[tuple[float, float, bool]]) -> None:
    scores, f1s, answerable = map(list, zip(*rows, strict=True))
    f1, threshold = best_f1_threshold(scores, f1s, answerable)
    assert f1 == pytest.approx(official_best_f1(scores, f1s, answerable))
    answered = [s >= threshold for s in scores]  # the threshold reproduces the F1 it reports
    got = sum((f / 100 if x else 0) if a else (0 if x else 1) for x, f, a in zip(answered, f1s, answerable,
                                                                                  strict=True))
    assert f1 == pytest.approx(100 * got / len(rows))


def test_fit_platt_recovers_a_logistic_curve() -> None:
    rng = random.Random(0)
    margins = [rng.uniform(-8, 8) for _ in range(4000)]
    right = [rng.random() < 1 / (1 + math.exp(-(0.8 * m - 1.0))) for m in margins]
    slope, intercept = fit_platt(margins, right)
    assert slope == pytest.approx(0.8, abs=0.1) and intercept == pytest.approx(-1.0, abs=0.15)
    with pytest.raises(ValueError, match="both right and wrong"):
        fit_platt([1.0, 2.0], [True, True])


def test_reliability_and_expected_calibration_error() -> None:
    rows = reliability([0.05, 0.95, 0.95, 1.0], [False, True, False, True], bins=10)
    assert len(rows) == 10 and rows[0]["count"] == 1 and rows[9]["count"] == 3  # 1.0 falls in the last bin
    assert rows[9]["right"] == pytest.approx(2 / 3, abs=1e-4) and rows[5]["confidence"] is None
    assert expected_calibration_error([0.0, 1.0], [False, True]) == pytest.approx(0.0)
    assert expected_calibration_error([1.0, 1.0], [False, True]) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        reliability([0.5], [True, False])


def test_plot_writes_a_png(tmp_path: Path) -> None:
    rows = reliability([0.1, 0.5, 0.9, 0.95], [False, True, True, True])
    path = calibrate.plot_reliability(rows, tmp_path / "docs" / "reliability.png", title="t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match=".png"):
        calibrate.plot_reliability(rows, tmp_path / "r.jpg")


def test_calibrate_picks_the_best_f1_margin_and_a_rising_map() -> None:
    rng = random.Random(1)
    rows = []
    for _ in range(300):
        answerable = rng.random() < 0.5
        margin = rng.gauss(2.0 if answerable else -2.0, 2.0)
        rows.append((margin, 100.0 if answerable and rng.random() < 0.9 else 0.0, answerable))
    conf = calibrate.calibrate(rows)
    assert -2.0 < conf.threshold_margin < 2.0 and conf.slope > 0
    scores = [m for m, _, _ in rows]
    best, _ = best_f1_threshold(scores, [f for _, f, _ in rows], [a for _, _, a in rows])
    assert conf.figures["f1"] == pytest.approx(best, abs=0.01)
    capped = calibrate.calibrate(rows, max_false_abstentions=5.0)
    assert capped.threshold_margin < conf.threshold_margin and capped.figures["f1"] <= conf.figures["f1"]
    withheld = sum(m < capped.threshold_margin for m, _, a in rows if a) / sum(a for _, _, a in rows)
    assert withheld <= 0.05 and "5 % false abstentions" in capped.figures["rule"]
    held = calibrate.cross_fitted(rows, [f"article-{k % 4}" for k in range(len(rows))])
    figures = calibrate.figures(rows, capped, held)
    assert figures["false_abstentions"] == pytest.approx(100 * withheld, abs=0.01)
    assert figures["best_f1"] == pytest.approx(best, abs=0.01) and 0 <= figures["ece_cross_fitted"] <= 1
    assert len(held) == len(rows) and all(0 < p < 1 for p in held)
    with pytest.raises(ValueError, match="two articles"):
        calibrate.cross_fitted(rows, ["one"] * len(rows))


def test_cross_validation_fits_on_other_articles_and_reports_mean_and_spread() -> None:
    rng = random.Random(2)
    rows, groups = [], []
    for article in range(6):
        shift = (article - 2.5) * 0.8  # each article's margins sit on their own scale
        for _ in range(120):
            answerable = rng.random() < 0.5
            margin = rng.gauss(shift + (2.0 if answerable else -2.0), 1.5)
            rows.append((margin, 100.0 if answerable and rng.random() < 0.9 else 0.0, answerable))
            groups.append(f"article-{article}")
    result = calibrate.cross_validate(rows, groups, folds=3, max_false_abstentions=10.0)
    assert result["folds"] == 3 and result["articles"] == 6 and len(result["per_fold"]) == 3
    assert sum(f["questions"] for f in result["per_fold"]) == len(rows)
    assert all(f["articles"] == 2 for f in result["per_fold"])
    for key in ("f1", "no_answer_accuracy", "false_abstentions", "ece", "false_abstentions_gap"):
        values = [f[key] for f in result["per_fold"]]
        assert result[key]["mean"] == pytest.approx(sum(values) / 3, abs=0.01)
        assert result[key]["min"] == min(values) and result[key]["max"] == max(values)
    gaps = [f["false_abstentions"] - 10.0 for f in result["per_fold"]]
    assert [f["false_abstentions_gap"] for f in result["per_fold"]] == pytest.approx(gaps, abs=0.01)
    assert result["false_abstentions"]["std"] > 0, "the held-out folds land apart: the scale moves"
    # a fold's figures come from a threshold fitted without it
    first = [r for r, g in zip(rows, groups, strict=True) if g in ("article-0", "article-3")]
    others = [r for r, g in zip(rows, groups, strict=True) if g not in ("article-0", "article-3")]
    fitted = calibrate.calibrate(others, max_false_abstentions=10.0)
    assert result["per_fold"][0]["f1"] == pytest.approx(calibrate.squad2_f1(first, fitted.threshold_margin),
                                                        abs=0.01)
    for bad in (1, 7, True, "3"):
        with pytest.raises(ValueError, match="folds"):
            calibrate.cross_validate(rows, groups, folds=bad)


def test_squad2_f1_counts_abstentions_right_on_unanswerable_questions() -> None:
    rows = [(1.0, 80.0, True), (-1.0, 100.0, True), (0.5, 0.0, False), (-2.0, 0.0, False)]
    assert calibrate.squad2_f1(rows, 0.0) == pytest.approx((80 + 0 + 0 + 100) / 4)
    assert calibrate.squad2_f1(rows, 10.0) == pytest.approx(50.0)


PARAGRAPHS = [
    "The lighthouse on Kerrow Point was built in 1871 by the harbour board.",
    "Its lamp burned whale oil until 1903, when paraffin replaced it.",
    "The keeper, Ann Tullis, kept a log of every ship that passed the point.",
    "In winter the causeway floods twice a day, so supplies came by boat from Malden.",
]
QUESTIONS = ["Who built the lighthouse?", "What did the lamp burn?", "Who kept the log?",
             "Where did supplies come from?", "When was the causeway built?", "Who painted the lamp?"]


@pytest.mark.slow
def test_calibrate_reader_command_writes_the_models_confidence(tiny_model_dir: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    from qa.lab.squad import _passage, load_squad
    from qa.reader.read import Reader

    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    reader = Reader(model=folder)
    # Two articles; the gold answer is the tiny model's own best span for every other question (right),
    # the rest are unanswerable or answered elsewhere in the paragraph (wrong).
    articles = []
    for a in range(2):
        paras = []
        for k, context in enumerate(PARAGRAPHS):
            qas = []
            for j, question in enumerate(QUESTIONS):
                qid = f"{a}-{k}-{j}"
                if j % 3 == 2:
                    qas.append({"id": qid, "question": question, "answers": [], "is_impossible": True})
                    continue
                item = load_squad_item(qid, question, context)
                span = reader.read(question, [_passage(item)])[0]
                text = span.text if j % 3 == 0 else context.split()[-1]
                qas.append({"id": qid, "question": question,
                            "answers": [{"text": text, "answer_start": context.index(text)}]})
            paras.append({"context": context, "qas": qas})
        articles.append({"title": f"Article {a}", "paragraphs": paras})
    v2 = tmp_path / "v2.json"
    v2.write_text(json.dumps({"version": "v2.0", "data": articles}), encoding="utf-8")
    assert len(load_squad(v2)) == 48
    plot = tmp_path / "reliability.png"
    command = [str(v2), "--reader", str(folder)]
    assert calibrate_reader.main([*command, "--dry-run", "--json", "--folds", "2"]) == 0
    assert not (folder / confidence.CONFIDENCE_FILE).exists()
    dry = json.loads(capsys.readouterr().out.splitlines()[-1])
    validated = dry["cross_validated"]
    assert validated["folds"] == 2 and sum(f["questions"] for f in validated["per_fold"]) == 48
    assert dry["figures"]["map"] == "file" and "use mix" not in dry["fitted_on"]  # the default
    # --map use: the map fitted on the use mix (all 32 answerable, off-topic and unanswerable shares)
    assert calibrate_reader.main([*command, "--dry-run", "--json", "--map", "use", "--folds", "2"]) == 0
    used = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert used["figures"]["map"] == "use" and "map: the use mix" in used["fitted_on"]
    mix = used["map_cross_validated"]
    assert mix["mix"]["answerable"] == 32 and mix["folds"] == 2
    assert used["threshold_margin"] == dry["threshold_margin"], "the map never moves the threshold"
    assert (used["slope"], used["intercept"]) == (dry["slope"], dry["intercept"]), "spans keep the file's map"
    assert used["shown_slope"] > 0 and dry["shown_slope"] is None, "people are shown the use-mix map"
    assert calibrate_reader.main([str(v2), "--reader", str(folder), "--dry-run", "--folds", "3"]) == 2
    assert "folds must be" in capsys.readouterr().err
    assert calibrate_reader.main([str(v2), "--reader", str(folder), "--json", "--plot", str(plot)]) == 0
    out = json.loads(capsys.readouterr().out.splitlines()[-1])
    saved = Confidence.load(folder)
    assert saved is not None and saved.threshold_margin == out["threshold_margin"]
    assert out["figures"]["questions"] == 48 and 0 <= out["figures"]["ece_cross_fitted"] <= 1
    assert out["figures"]["best_f1"] >= 100 * 16 / 48  # at least abstaining on all (16 unanswerable)
    assert plot.read_bytes()[:4] == b"\x89PNG"
    assert Reader(model=folder).threshold == pytest.approx(saved.threshold)
    v1 = tmp_path / "v1.json"
    v1.write_text(json.dumps({"data": [{"title": "T", "paragraphs": [{"context": PARAGRAPHS[0], "qas": [
        {"id": "x", "question": QUESTIONS[0], "answers": [{"text": "1871", "answer_start": 44}]}]}]}]}),
        encoding="utf-8")
    assert calibrate_reader.main([str(v1), "--reader", str(folder)]) == 2
    assert "SQuAD 2.0" in capsys.readouterr().err


def load_squad_item(qid: str, question: str, context: str):  # noqa: ANN201 - an EvalItem
    """One question with its paragraph as an EvalItem."""
    from qa.lab.squad import EvalItem

    return EvalItem(qid, question, context, (), (), "t", 0)
