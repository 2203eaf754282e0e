"""``qa calibrate-reader``: fit and store a reader's abstention threshold and its confidence map.

The threshold and the spans' map come from the SQuAD 2.0 file given (``qa.lab.calibrate.calibrate``:
its best-F1 rule). ``--map use`` also fits the map people are shown on the use mix of that file's
questions (``qa.lab.use_mix``: mostly answerable, some off-topic, a stated share written to be
unanswerable), what people asking about their own documents meet, and stores it as ``shown_slope`` and
``shown_intercept``. The spans keep the file's map because the chatbot compares their scores when it
picks between passages (each rank below the first weighs 0.6): scored with the use-mix map it picked
other answers on the article's development questions (F1 72.97 against 78.85, ``qa eval
../shared/data/article_dev.json``). ``--folds K`` cross-validates the rule and both maps with whole
articles as folds.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from qa.lab.calibrate import (
    RIGHT_F1,
    calibrate,
    check_folds,
    cross_fitted,
    cross_validate,
    figures,
    fit_map,
    measure,
    plot_reliability,
    reliability,
)
from qa.lab.squad import load_squad
from qa.lab.use_mix import OFF_TOPIC_SHARE, UNANSWERABLE_SHARE, cross_validate_map, use_mix
from qa.reader.confidence import CONFIDENCE_FILE, Confidence

#: What the confidence map can be fitted on.
MAPS = ("use", "file")


def _parser() -> argparse.ArgumentParser:
    """The command's arguments."""
    p = argparse.ArgumentParser(prog="qa calibrate-reader", description=__doc__.splitlines()[0])
    p.add_argument("file", help="SQuAD 2.0 validation file (with unanswerable questions), e.g. written by "
                                "`python -m qa.lab.train --write-validation VAL2 --squad2`")
    p.add_argument("--reader", default=None, help="model folder (default: the shipped qa/reader_model)")
    p.add_argument("--precision", default="auto", help="the reader's arithmetic (see `qa ask --help`)")
    p.add_argument("--max-false-abstentions", type=float, default=None, metavar="PCT",
                   help="choose the best-F1 threshold among those that withhold at most PCT %% of the "
                        "answerable questions (default: the plain best-F1 threshold of SQuAD 2.0)")
    p.add_argument("--map", choices=MAPS, default="file",
                   help=f"show people the map fitted on the file as it is (the default) or the map fitted "
                        f"on its use mix ({100 * OFF_TOPIC_SHARE:g} %% off-topic, "
                        f"{100 * UNANSWERABLE_SHARE:g} %% written to be unanswerable, the rest answerable); "
                        f"spans are scored with the file's map either way")
    p.add_argument("--dry-run", action="store_true", help="print the figures, write nothing")
    p.add_argument("--folds", type=int, default=None, metavar="K",
                   help="also cross-validate the rule and the map with whole articles as K folds: fitted "
                        "on K-1, measured on the one left out (mean and spread)")
    p.add_argument("--plot", default=None, metavar="PNG", help="draw the cross-fitted reliability diagram")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def _use_map(items: list, rows: list, reader: Any, confidence: Confidence, folds: int | None,
             progress: bool) -> tuple[Confidence, dict[str, Any] | None, list[float], list[bool]]:
    """The confidence with a shown map fitted on the use mix (its off-topic pairs read here)."""
    mixed = use_mix(items)
    by_qid = {it.qid: r for it, r in zip(items, rows, strict=True)}
    off = iter(measure([it for kind, it in mixed if kind == "off-topic"], reader, progress=progress))
    mix_rows = [next(off) if kind == "off-topic" else by_qid[it.qid] for kind, it in mixed]
    kinds, groups = [k for k, _ in mixed], [it.title for _, it in mixed]
    slope, intercept = fit_map(mix_rows)
    counts = {k: kinds.count(k) for k in dict.fromkeys(kinds)}
    fitted_on = (f"{confidence.fitted_on}; shown map: the use mix of its questions "
                 f"({', '.join(f'{n} {k}' for k, n in counts.items())})")
    validated = None if folds is None else cross_validate_map(
        mix_rows, kinds, groups, folds=folds, threshold_margin=confidence.threshold_margin,
        file_rows=rows, file_groups=[it.title for it in items])
    shown = [(m, f, a) for m, f, a in mix_rows if m >= confidence.threshold_margin]
    conf = replace(confidence, fitted_on=fitted_on, shown_slope=slope, shown_intercept=intercept)
    return (conf, validated, [conf.shown(m) for m, _, _ in shown], [a and f >= RIGHT_F1 for _, f, a in shown])


def main(argv: list[str] | None = None) -> int:
    """Fit, print and (unless ``--dry-run``) store the threshold and map beside the model's weights."""
    args = _parser().parse_args(argv)
    from qa.reader.read import DEFAULT_READER, Reader

    progress = not args.json
    try:
        folder = Path(args.reader or DEFAULT_READER)
        items = load_squad(args.file)
        if all(it.answerable for it in items):
            raise ValueError(f"{args.file} has no unanswerable questions: calibrate on a SQuAD 2.0 file")
        titles = [it.title for it in items]
        if args.folds is not None:
            check_folds(args.folds, len(set(titles)))  # before minutes of reading
        reader = Reader(model=folder, precision=args.precision)
        rows = measure(items, reader, progress=progress)
        confidence = calibrate(rows, fitted_on=f"{Path(args.file).name}: {len(rows)} questions, "
                                               f"{sum(not a for _, _, a in rows)} unanswerable",
                               max_false_abstentions=args.max_false_abstentions)
        held = cross_fitted(rows, titles)
        result: dict[str, Any] = {}
        if args.folds is not None:
            result["cross_validated"] = cross_validate(rows, titles, folds=args.folds,
                                                       max_false_abstentions=args.max_false_abstentions)
        diagram = reliability(held, [a and f >= RIGHT_F1 for _, f, a in rows])
        if args.map == "use":
            confidence, validated_map, shown, right = _use_map(items, rows, reader, confidence, args.folds,
                                                               progress)
            if validated_map is not None:
                result["map_cross_validated"] = validated_map
                diagram = validated_map["reliability"]
            else:
                diagram = reliability(shown, right)
        measured = {**confidence.figures, **figures(rows, confidence, held), "map": args.map,
                    "precision": reader.precision}
        confidence = replace(confidence, figures=measured)
        if args.plot:
            plot_reliability(diagram, args.plot, title=f"{folder.name}, {Path(args.file).name} (held out)")
        if not args.dry_run:
            confidence.save(folder)
    except (ValueError, OSError) as err:
        print(f"qa calibrate-reader: error: {err}", file=sys.stderr)
        return 2
    result = {**asdict(confidence), "written": None if args.dry_run else str(folder / CONFIDENCE_FILE),
              **result}
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>20}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
