"""The questions people ask of their own documents, as the mix the confidence map is fitted on.

SQuAD 2.0 writes half of its questions to be unanswerable; people asking about a document they chose
mostly ask answerable ones, sometimes one the document is not about. A map fitted on SQuAD 2.0's
half-and-half is over-cautious for them (answers right 82 % of the time shown at 49 %, on the
article). The use mix keeps every answerable question of a validation file and adds, per the stated
shares of the whole mix, off-topic questions (an answerable question asked of another article's
paragraph) and questions written to be unanswerable (the file's own). The shares are a statement about
use, not tuned on results; the model card states them.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from qa.lab.calibrate import (
    RIGHT_F1,
    article_folds,
    confidences,
    expected_calibration_error,
    fit_map,
    mean_and_spread,
    reliability,
)
from qa.lab.squad import NEGATIVE_SEED, EvalItem, negative_pairs
from qa.reader.confidence import Confidence

#: Shares of the use mix: off-topic questions and questions written to be unanswerable (the rest,
#: 70 %, answerable). ``qa calibrate-reader VAL2 --folds K`` reports the calibration of each kind.
OFF_TOPIC_SHARE = 0.15
UNANSWERABLE_SHARE = 0.15
KINDS = ("answerable", "off-topic", "unanswerable")


def use_mix(items: Sequence[EvalItem], *, off_topic: float = OFF_TOPIC_SHARE,
            unanswerable: float = UNANSWERABLE_SHARE, seed: int = NEGATIVE_SEED
            ) -> list[tuple[str, EvalItem]]:
    """(kind, item) for every answerable question plus off-topic and unanswerable ones at the shares."""
    for label, share in (("off_topic", off_topic), ("unanswerable", unanswerable)):
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share < 1:
            raise ValueError(f"{label} is a share from 0 to below 1, got {share!r}")
    if off_topic + unanswerable >= 1:
        raise ValueError("the shares leave no room for answerable questions: keep their sum below 1")
    answerable = [it for it in items if it.answerable]
    written = [it for it in items if not it.answerable]
    if not answerable:
        raise ValueError("the use mix needs answerable questions")
    total = len(answerable) / (1 - off_topic - unanswerable)
    rng = random.Random(seed)
    pairs = negative_pairs(answerable, seed=seed) if off_topic else []
    off = rng.sample(pairs, min(len(pairs), round(total * off_topic)))
    unans = rng.sample(written, min(len(written), round(total * unanswerable)))
    if unanswerable and not unans:
        raise ValueError("the file has no questions written to be unanswerable for the use mix")
    return ([("answerable", it) for it in answerable] + [("off-topic", it) for it in off]
            + [("unanswerable", it) for it in unans])


def cross_validate_map(rows: Sequence[tuple[float, float, bool]], kinds: Sequence[str],
                       groups: Sequence[str], *, folds: int, threshold_margin: float,
                       file_rows: Sequence[tuple[float, float, bool]] | None = None,
                       file_groups: Sequence[str] | None = None) -> dict[str, Any]:
    """The map fitted on the mix of all article folds but one, its calibration measured on that one.

    Calibration is measured on what users see: the answers shown (margin >= ``threshold_margin``), by
    kind and together; the mean and spread over the held-out folds, and the pooled reliability table.
    ``file_rows``: the file's own questions, whose map (fitted on the same folds) is measured on the same
    held-out answers too (``ece_all_file_map``), for comparison.
    """
    fold_of = article_folds(groups, folds)
    per_fold, pooled_conf, pooled_right = [], [], []
    for fold in range(folds):
        mapped = Confidence(threshold_margin, *fit_map([r for r, g in zip(rows, groups, strict=True)
                                                        if fold_of[g] != fold]))
        row: dict[str, Any] = {"fold": fold}
        for kind in ("all", *KINDS):
            shown = [(m, f, a) for (m, f, a), k, g in zip(rows, kinds, groups, strict=True)
                     if fold_of[g] == fold and (kind == "all" or k == kind) and m >= threshold_margin]
            conf = confidences(mapped, [m for m, _, _ in shown])
            right = [a and f >= RIGHT_F1 for _, f, a in shown]
            row[f"shown_{kind}"] = len(shown)
            row[f"ece_{kind}"] = round(expected_calibration_error(conf, right), 4) if shown else None
            if kind == "all":
                pooled_conf += conf
                pooled_right += right
        if file_rows is not None and file_groups is not None:
            outside = [r for r, g in zip(file_rows, file_groups, strict=True) if fold_of[g] != fold]
            file_map = Confidence(threshold_margin, *fit_map(outside))
            shown = [(m, f, a) for (m, f, a), g in zip(rows, groups, strict=True)
                     if fold_of[g] == fold and m >= threshold_margin]
            conf = confidences(file_map, [m for m, _, _ in shown])
            right = [a and f >= RIGHT_F1 for _, f, a in shown]
            row["ece_all_file_map"] = round(expected_calibration_error(conf, right), 4) if shown else None
        per_fold.append(row)
    # a kind no fold showed an answer for (every one withheld) has no calibration to measure: None
    spread = {key: mean_and_spread(values) if (values := [r[key] for r in per_fold if r[key] is not None])
              else None for key in per_fold[0] if key.startswith("ece_")}
    return {"folds": folds, "mix": {k: sum(x == k for x in kinds) for k in KINDS}, **spread,
            "reliability": reliability(pooled_conf, pooled_right), "per_fold": per_fold}
