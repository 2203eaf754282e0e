"""Answer or abstain the SQuAD 2.0 way, with a confidence that is a calibrated probability of being right.

The reader scores its best span by its *margin*: the span's start + end logit minus its window's
no-answer logit (the null span at [CLS]). ``qa calibrate-reader`` reads a validation file with
unanswerable questions and stores two things beside the model's weights, as plain JSON
(``confidence.json``):

- the margin at or above which the reader answers: the one that maximises SQuAD 2.0 F1 on that file
  (the official evaluation's best-threshold rule, ``best_f1_threshold``);
- a monotone map from margin to the probability that the answer is right (F1 >= 50 against a gold
  answer; any answer to an unanswerable question is wrong), fitted on the same questions (Platt
  scaling: a logistic curve over the margin).

Because the map is monotone, "margin >= threshold" and "confidence >= the threshold's confidence" are
the same rule, so every caller that compares a confidence with ``Reader.threshold`` abstains the SQuAD
2.0 way. The map itself is ``qa.reader.confidence.Confidence`` (data the reader loads); this module fits
it, and the rest of it is stateless: the best-threshold rule, the reliability table, the expected
calibration error and the reliability diagram.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qa.lab.squad import _best_span, _passage, f1
from qa.reader.confidence import Confidence

#: An answer is right when its F1 against a gold answer reaches this (0..100).
RIGHT_F1 = 50.0
#: Equal-width confidence bins of the reliability table and the expected calibration error.
BINS = 10


# --- stateless functions ----------------------------------------------------------------------------


def best_f1_threshold(scores: Sequence[float], f1s: Sequence[float], answerable: Sequence[bool], *,
                      max_false_abstentions: float | None = None) -> tuple[float, float]:
    """SQuAD 2.0's best-threshold rule: the score threshold (answer when score >= it) of the best F1.

    ``scores``: each question's best-span score (higher: likelier an answer); ``f1s``: that span's F1
    (0..100) against the question's gold answers (ignored for unanswerable ones). Returns (best F1,
    threshold); abstaining on everything is the starting point, and its threshold is above every score.
    Questions with equal scores are answered or abstained together. ``max_false_abstentions`` (a
    percentage): only thresholds that withhold at most that share of the answerable questions count.
    """
    if not len(scores) == len(f1s) == len(answerable) or not scores:
        raise ValueError("give one score, F1 and answerable flag per question, and at least one question")
    if max_false_abstentions is not None and not 0 <= max_false_abstentions <= 100:
        raise ValueError(f"max_false_abstentions is a percentage from 0 to 100, "
                         f"got {max_false_abstentions!r}")
    limit = 100.0 if max_false_abstentions is None else max_false_abstentions
    has = sum(bool(a) for a in answerable)
    order = sorted(range(len(scores)), key=lambda k: -scores[k])
    current = float(sum(not a for a in answerable))  # every question abstained
    withheld = has
    best, threshold = (current, math.inf) if has == 0 or limit >= 100 else (-math.inf, math.inf)
    i = 0
    while i < len(order):
        j = i
        while j < len(order) and scores[order[j]] == scores[order[i]]:
            k = order[j]
            current += f1s[k] / 100 if answerable[k] else -1.0
            withheld -= bool(answerable[k])
            j += 1
        if current > best and 100.0 * withheld / max(1, has) <= limit:
            best, threshold = current, float(scores[order[i]])
        i = j
    return 100.0 * best / len(scores), threshold


def fit_platt(margins: Sequence[float], right: Sequence[bool]) -> tuple[float, float]:
    """Slope and intercept of the logistic curve P(right | margin) (maximum likelihood, no penalty)."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    y = np.asarray(right, dtype=int)
    if len(y) != len(margins) or len(set(y.tolist())) < 2:
        raise ValueError("fitting a confidence needs one label per margin and both right and wrong answers")
    model = LogisticRegression(C=np.inf, solver="lbfgs", max_iter=1000)
    model.fit(np.asarray(margins, dtype=float).reshape(-1, 1), y)
    return float(model.coef_[0, 0]), float(model.intercept_[0])


def _bins(confidences: Sequence[float], right: Sequence[bool], bins: int) -> list[list[int]]:
    """The question indices of each equal-width confidence bin (1.0 falls in the last one)."""
    if len(confidences) != len(right):
        raise ValueError("give one confidence per right/wrong label")
    if not isinstance(bins, int) or isinstance(bins, bool) or bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins!r}")
    out: list[list[int]] = [[] for _ in range(bins)]
    for k, c in enumerate(confidences):
        out[min(bins - 1, max(0, int(c * bins)))].append(k)
    return out


def reliability(confidences: Sequence[float], right: Sequence[bool], *, bins: int = BINS
                ) -> list[dict[str, Any]]:
    """One row per equal-width confidence bin: its range, count, mean confidence and share right."""
    rows = []
    for b, inside in enumerate(_bins(confidences, right, bins)):
        n = len(inside)
        rows.append({
            "from": round(b / bins, 4), "to": round((b + 1) / bins, 4), "count": n,
            "confidence": round(sum(confidences[k] for k in inside) / n, 4) if n else None,
            "right": round(sum(bool(right[k]) for k in inside) / n, 4) if n else None,
        })
    return rows


def expected_calibration_error(confidences: Sequence[float], right: Sequence[bool], *,
                               bins: int = BINS) -> float:
    """The count-weighted mean gap between confidence and the share right over equal-width bins."""
    if not confidences:
        raise ValueError("no confidences to measure")
    gap = sum(abs(sum(confidences[k] for k in inside) - sum(bool(right[k]) for k in inside))
              for inside in _bins(confidences, right, bins))
    return gap / len(confidences)


def plot_reliability(rows: Sequence[dict[str, Any]], path: str | Path, *, title: str = "") -> Path:
    """Draw the reliability diagram of ``reliability`` rows (share right against confidence) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"the plot is a PNG file: give a path ending in .png, got {str(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(5.5, 6.5), height_ratios=(3, 1), sharex=True)
    width = rows[0]["to"] - rows[0]["from"] if rows else 0.1
    filled = [r for r in rows if r["count"]]
    top.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfect calibration")
    top.bar([r["from"] for r in filled], [r["right"] for r in filled], width=width, align="edge",
            color="#4c72b0", edgecolor="white", label="share right")
    top.plot([r["confidence"] for r in filled], [r["right"] for r in filled], "o", color="#dd8452",
             label="share right at the bin's mean confidence")
    top.set(ylabel="share of answers right", xlim=(0, 1), ylim=(0, 1), title=title)
    top.legend(loc="upper left", fontsize=8)
    bottom.bar([r["from"] for r in rows], [r["count"] for r in rows], width=width, align="edge",
               color="#8c8c8c", edgecolor="white")
    bottom.set(xlabel="confidence", ylabel="questions")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# --- qa calibrate-reader ----------------------------------------------------------------------------


def measure(items: Sequence[Any], reader: Any, *, progress: bool = False) -> list[tuple[float, float, bool]]:
    """Each question's best-span margin, that span's F1 and whether the question is answerable.

    ``items``: ``qa.lab.squad.EvalItem``s, each read with its own paragraph. A question the reader offers
    no span for gets a margin of minus infinity (never answered).
    """
    from tqdm import tqdm

    if hasattr(reader, "warm_up"):
        reader.warm_up()
    out = []
    for item in tqdm(items, desc="calibrate", unit="q", file=sys.stderr, disable=not progress):
        span = _best_span(reader, item.question, [_passage(item)])
        if span is not None and span.margin is None:
            raise ValueError(f"reader {getattr(reader, 'name', '?')} gives no span margins to calibrate")
        margin = -math.inf if span is None else float(span.margin)
        out.append((margin, f1(None if span is None else span.text, item.answers) if item.answerable
                    else 0.0, item.answerable))
    return out


def calibrate(rows: Sequence[tuple[float, float, bool]], *, fitted_on: str = "",
              max_false_abstentions: float | None = None) -> Confidence:
    """The best-F1 margin threshold and the Platt map fitted on ``measure`` rows.

    ``max_false_abstentions``: see ``best_f1_threshold``.
    """
    margins = [m for m, _, _ in rows]
    best_f1, threshold = best_f1_threshold(margins, [f for _, f, _ in rows], [a for _, _, a in rows],
                                           max_false_abstentions=max_false_abstentions)
    if not math.isfinite(threshold):
        raise ValueError("abstaining on every question scores best here: the file needs answerable "
                         "questions the reader gets right")
    slope, intercept = fit_map(rows)
    return Confidence(threshold_margin=threshold, slope=slope, intercept=intercept, fitted_on=fitted_on,
                      figures={"rule": rule_text(max_false_abstentions), "f1": round(best_f1, 2)})


def rule_text(max_false_abstentions: float | None) -> str:
    """The threshold rule in words, as stored and reported."""
    return "best SQuAD 2.0 F1" + ("" if max_false_abstentions is None else
                                  f", at most {max_false_abstentions:g} % false abstentions")


def fit_map(rows: Sequence[tuple[float, float, bool]]) -> tuple[float, float]:
    """The Platt map (slope, intercept) from margins to P(right) over ``measure`` rows with a span."""
    fit = [(m, a and f >= RIGHT_F1) for m, f, a in rows if math.isfinite(m)]
    return fit_platt([m for m, _ in fit], [r for _, r in fit])


def confidences(confidence: Confidence, margins: Sequence[float]) -> list[float]:
    """Each margin's probability under ``confidence`` (0 where the reader offered no span)."""
    return [confidence.probability(m) if math.isfinite(m) else 0.0 for m in margins]


def withheld_shares(rows: Sequence[tuple[float, float, bool]], threshold_margin: float
                    ) -> tuple[float, float]:
    """(no-answer accuracy, false abstentions) in percent: the unanswerable and answerable rows withheld."""
    no = [m < threshold_margin for m, _, a in rows if not a]
    has = [m < threshold_margin for m, _, a in rows if a]
    return round(100 * sum(no) / max(1, len(no)), 2), round(100 * sum(has) / max(1, len(has)), 2)


def cross_fitted(rows: Sequence[tuple[float, float, bool]], groups: Sequence[str]) -> list[float]:
    """Each question's confidence from a map fitted on the other half of the groups (articles).

    Groups are sorted and dealt alternately into two halves; the out-of-half confidences measure
    calibration on questions the map never saw.
    """
    names = sorted(set(groups))
    if len(names) < 2:
        raise ValueError("cross-fitting needs questions from at least two articles")
    half = {g: k % 2 for k, g in enumerate(names)}
    probs = [0.0] * len(rows)
    for h in (0, 1):
        fit = [r for r, g in zip(rows, groups, strict=True) if half[g] != h]
        conf = calibrate(fit)
        for k, (r, g) in enumerate(zip(rows, groups, strict=True)):
            if half[g] == h:
                probs[k] = confidences(conf, [r[0]])[0]
    return probs


def squad2_f1(rows: Sequence[tuple[float, float, bool]], threshold: float) -> float:
    """SQuAD 2.0 F1 when answering at margins >= ``threshold``: an abstention is right on unanswerables."""
    if not rows:
        raise ValueError("no questions to score")
    return sum((f if a else 0.0) if m >= threshold else (0.0 if a else 100.0) for m, f, a in rows) / len(rows)


def mean_and_spread(values: Sequence[float]) -> dict[str, float]:
    """Mean, standard deviation (population), minimum and maximum, to 4 decimals."""
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    return {"mean": round(mean, 4), "std": round(std, 4), "min": round(min(values), 4),
            "max": round(max(values), 4)}


def article_folds(groups: Sequence[str], folds: int) -> dict[str, int]:
    """Each article's fold: the articles, sorted, dealt in turn into ``folds`` folds (checked first)."""
    names = sorted(set(groups))
    check_folds(folds, len(names))
    return {g: k % folds for k, g in enumerate(names)}


def check_folds(folds: object, articles: int) -> None:
    """ValueError unless ``folds`` is an int from 2 to the number of articles."""
    if isinstance(folds, bool) or not isinstance(folds, int) or not 2 <= folds <= articles:
        raise ValueError(f"folds must be a whole number from 2 to the number of articles ({articles}), "
                         f"got {folds!r}")


def cross_validate(rows: Sequence[tuple[float, float, bool]], groups: Sequence[str], *, folds: int,
                   max_false_abstentions: float | None = None) -> dict[str, Any]:
    """The threshold and map fitted on all folds but one and measured on that one, for each fold.

    ``groups``: each row's article; articles, sorted, are dealt in turn into ``folds`` folds, so no
    article is both fitted and measured. Returns each fold's figures and their mean and spread:
    SQuAD 2.0 F1 at the fitted threshold, no-answer accuracy, false abstentions (and, with
    ``max_false_abstentions``, how far they land from that target) and the held-out calibration error.
    """
    fold_of = article_folds(groups, folds)
    per_fold = []
    for fold in range(folds):
        fit = [r for r, g in zip(rows, groups, strict=True) if fold_of[g] != fold]
        held = [r for r, g in zip(rows, groups, strict=True) if fold_of[g] == fold]
        conf = calibrate(fit, max_false_abstentions=max_false_abstentions)
        no_answer, false_abstentions = withheld_shares(held, conf.threshold_margin)
        row = {"fold": fold, "articles": sum(v == fold for v in fold_of.values()), "questions": len(held),
               "f1": round(squad2_f1(held, conf.threshold_margin), 2),
               "no_answer_accuracy": no_answer, "false_abstentions": false_abstentions,
               "ece": round(expected_calibration_error(confidences(conf, [m for m, _, _ in held]),
                                                       [a and f >= RIGHT_F1 for _, f, a in held]), 4)}
        if max_false_abstentions is not None:
            row["false_abstentions_gap"] = round(row["false_abstentions"] - max_false_abstentions, 2)
        per_fold.append(row)
    keys = [k for k in per_fold[0] if k not in ("fold", "articles", "questions")]
    return {"folds": folds, "articles": len(fold_of), "questions": len(rows),
            "rule": rule_text(max_false_abstentions),
            **{k: mean_and_spread([f[k] for f in per_fold]) for k in keys}, "per_fold": per_fold}


def figures(rows: Sequence[tuple[float, float, bool]], confidence: Confidence, held: Sequence[float]
            ) -> dict[str, Any]:
    """What a stored confidence does on ``measure`` rows: F1, abstentions, calibration error.

    ``held``: the rows' cross-fitted confidences (``cross_fitted``), for the honest calibration error.
    """
    best_f1, _ = best_f1_threshold([m for m, _, _ in rows], [f for _, f, _ in rows], [a for _, _, a in rows])
    right = [a and f >= RIGHT_F1 for _, f, a in rows]
    no_answer, false_abstentions = withheld_shares(rows, confidence.threshold_margin)
    return {
        "best_f1": round(best_f1, 2),
        "questions": len(rows),
        "threshold": round(confidence.threshold, 4),
        "no_answer_accuracy": no_answer,
        "false_abstentions": false_abstentions,
        "ece": round(expected_calibration_error(confidences(confidence, [m for m, _, _ in rows]), right), 4),
        "ece_cross_fitted": round(expected_calibration_error(held, right), 4),
    }
