"""Tests for qa.lab.use_mix: the mix of questions the confidence map is fitted on, and its folds."""

from __future__ import annotations

import math
import random

import pytest

from qa.lab.squad import EvalItem
from qa.lab.use_mix import KINDS, cross_validate_map, fit_map, use_mix


def _items(articles: int = 4, answerable: int = 20, unanswerable: int = 20) -> list[EvalItem]:
    """Questions over ``articles`` articles, one paragraph each."""
    out = []
    for a in range(articles):
        context = f"Paragraph of article {a}: the bridge was built by Anna in {1900 + a}."
        for k in range(answerable + unanswerable):
            answers = ("Anna",) if k < answerable else ()
            out.append(EvalItem(f"{a}-{k}", f"Question {k} on {a}?", context, answers,
                                (context.index("Anna"),) if answers else (), f"Article {a}", 0))
    return out


def test_the_mix_keeps_every_answerable_question_and_adds_the_stated_shares() -> None:
    items = _items()
    mixed = use_mix(items, off_topic=0.15, unanswerable=0.15)
    kinds = [k for k, _ in mixed]
    assert kinds.count("answerable") == 80
    total = 80 / 0.7
    assert kinds.count("off-topic") == round(total * 0.15) == kinds.count("unanswerable")
    for kind, it in mixed:
        if kind == "off-topic":  # an answerable question asked of another article's paragraph
            asked = next(x for x in items if x.qid == it.qid.removesuffix("-neg"))
            assert not it.answerable and it.question == asked.question and it.title != asked.title
        assert (kind == "answerable") == it.answerable
    assert mixed == use_mix(items, off_topic=0.15, unanswerable=0.15), "seeded: the same mix each time"
    assert [k for k, _ in use_mix(items, off_topic=0, unanswerable=0)] == ["answerable"] * 80
    for bad in ({"off_topic": 1.0}, {"unanswerable": -0.1}, {"off_topic": 0.6, "unanswerable": 0.5},
                {"off_topic": True}):
        with pytest.raises(ValueError, match="share|room"):
            use_mix(items, **bad)
    with pytest.raises(ValueError, match="answerable"):
        use_mix([it for it in items if not it.answerable])


def test_fewer_unanswerable_questions_make_a_bolder_map() -> None:
    rng = random.Random(3)
    right = [(rng.gauss(2.0, 1.5), 100.0 if rng.random() < 0.85 else 0.0, True) for _ in range(400)]
    wrong = [(rng.gauss(-1.0, 1.5), 0.0, False) for _ in range(400)]
    half, mostly_answerable = fit_map(right + wrong), fit_map(right + wrong[:60])

    def p(fit: tuple[float, float], m: float) -> float:
        return 1 / (1 + math.exp(-(fit[0] * m + fit[1])))

    assert p(mostly_answerable, 0.5) > p(half, 0.5)


def test_the_map_is_measured_on_held_out_articles_by_kind() -> None:
    rng = random.Random(4)
    rows, kinds, groups = [], [], []
    for a in range(4):
        for kind, n in (("answerable", 70), ("off-topic", 15), ("unanswerable", 15)):
            for _ in range(n):
                if kind == "answerable":
                    rows.append((rng.gauss(2.0, 1.5), 100.0 if rng.random() < 0.85 else 0.0, True))
                else:
                    rows.append((rng.gauss(-2.0 if kind == "off-topic" else 0.0, 1.5), 0.0, False))
                kinds.append(kind)
                groups.append(f"Article {a}")
    half = [(m, f, a) for (m, f, a), k in zip(rows, kinds, strict=True) if k == "answerable"][:140]
    half += [(m - 1.0, 0.0, False) for m, _, _ in half]  # a file half unanswerable, as SQuAD 2.0 is
    out = cross_validate_map(rows, kinds, groups, folds=4, threshold_margin=-1.0, file_rows=half,
                             file_groups=[f"Article {k % 4}" for k in range(len(half))])
    assert out["ece_all"]["mean"] < out["ece_all_file_map"]["mean"], "fitted for use, calibrated for use"
    assert out["folds"] == 4 and out["mix"] == {"answerable": 280, "off-topic": 60, "unanswerable": 60}
    for key in ("ece_all", *(f"ece_{k}" for k in KINDS)):
        assert 0 <= out[key]["mean"] <= 1 and out[key]["min"] <= out[key]["max"]
    fold = out["per_fold"][0]
    assert fold["shown_all"] == sum(fold[f"shown_{k}"] for k in KINDS)
    assert fold["shown_all"] == sum(m >= -1.0 for (m, _, _), g in zip(rows, groups, strict=True)
                                    if g == "Article 0")
    assert sum(r["count"] for r in out["reliability"]) == sum(f["shown_all"] for f in out["per_fold"])
    with pytest.raises(ValueError, match="folds"):
        cross_validate_map(rows, kinds, groups, folds=5, threshold_margin=0.0)
