"""Does abstention learned from more articles carry over? Fine-tune on some articles, measure on the others.

``python -m qa.lab.finetune_folds build/squad-v2-validation.json --folds 2 --control``

The articles of a SQuAD 2.0 file are dealt into folds as ``qa calibrate-reader --folds`` deals them
(``qa.lab.calibrate.article_folds``). For each fold the reader (``--base``, default the shipped one) is
fine-tuned for one epoch on every question of the other folds' articles, answerable and written to be
unanswerable, mixed with ``--replay`` times as many questions drawn from the mix of the shipped
reader's last training run (training articles only; ``--replay-from mix``: ``qa.lab.train_data.MIX``);
then the fold's questions are read by both readers. ``--control`` also fine-tunes on the replayed mix
alone, as many questions, so that a gain from the new articles is told apart from a gain from more
training. Printed as JSON, for each reader, the mean and spread over the held-out folds of:

- ``auc``: how well the margin ranks answerable questions above unanswerable ones;
- ``no_answer_accuracy`` and ``f1`` (SQuAD 2.0) at the margin that withholds ``--max-false-abstentions``
  percent of that fold's answerable questions: how well the margin separates, whatever the threshold;
- ``answerable_f1``: the answerable questions' F1, never abstaining.

Nothing is written into the repository: the fine-tuned readers stay under ``--work-dir``.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import json
import math
import random
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qa.lab.calibrate import article_folds, mean_and_spread, measure, squad2_f1, withheld_shares
from qa.lab.squad import EvalItem, load_squad
from qa.lab.train_data import DATA_DIR, MIX, Example, parse_mix

#: Questions of the usual training mix added per question of the new articles.
REPLAY = 1.0
#: The mix and negatives of the shipped reader's last training run (its model card's command): replaying
#: what it last learned from keeps its abstention where it was (``--replay-from mix`` draws ``MIX`` with
#: random negatives only).
SHIPPED_RUN_MIX = ("squad2-train-unanswerable=1", "squad-train=0.3", "qa/squadshifts-new-wiki.json=0.1",
                   "qa/tydiqa-goldp-en-train.json=0.1", "qa/qed-train-part.json=0.05")
SHIPPED_RUN_NEGATIVES = {"swap_rate": 0.5, "antonym_rate": 1.0, "same_document_rate": 0.1, "hard_rate": 0.05}
#: Fine-tuning's peak learning rate: a fifth of training's (``qa.lab.train_loop.LEARNING_RATE``).
LEARNING_RATE = 2e-5
#: The share of answerable questions withheld where the separation is read.
MAX_FALSE_ABSTENTIONS = 10.0

Rows = list[tuple[float, float, bool]]


def auc(rows: Rows) -> float:
    """The probability that an answerable question's margin beats an unanswerable one's (ties count half)."""
    pos = sorted(m for m, _, a in rows if a)
    neg = sorted(m for m, _, a in rows if not a)
    if not pos or not neg:
        raise ValueError("auc needs answerable and unanswerable questions")
    wins = sum(bisect.bisect_left(neg, m) + 0.5 * (bisect.bisect_right(neg, m) - bisect.bisect_left(neg, m))
               for m in pos)
    return wins / (len(pos) * len(neg))


def separation(rows: Rows, *, max_false_abstentions: float = MAX_FALSE_ABSTENTIONS) -> dict[str, float]:
    """AUC, and the unanswerable withheld and F1 at the margin withholding that share of answerable ones."""
    area = auc(rows)  # refuses rows without both kinds of question
    answerable = sorted(m for m, _, a in rows if a)
    cut = answerable[int(len(answerable) * max_false_abstentions / 100)]  # answer at margins >= cut
    return {"auc": round(area, 4), "no_answer_accuracy": withheld_shares(rows, cut)[0],
            "f1": round(squad2_f1(rows, cut), 2),
            "answerable_f1": round(sum(f for _, f, a in rows if a) / len(answerable), 2)}


def article_examples(items: Sequence[EvalItem]) -> list[Example]:
    """Training examples of these questions: the first gold answer, or none for an unanswerable one."""
    return [Example(i.qid, i.question, i.context, i.answers[0] if i.answers else "",
                    i.answer_starts[0] if i.answers else -1, "fold-articles", i.title) for i in items]


def fine_tune(base: str, examples: list[Example], out: Path, args: argparse.Namespace) -> Path:
    """``base`` trained one epoch on ``examples``; the model folder (uncalibrated: only margins are read)."""
    from qa.lab.train import parser
    from qa.lab.train_loop import train

    options = ["--base", base, "--work-dir", str(out), "--out", str(out / "model"), "--lr", str(args.lr),
               "--seed", str(args.seed), "--threads", str(args.threads), "--log-every", "50",
               "--save-every", "100000"]
    if args.max_steps:
        options += ["--max-steps", str(args.max_steps)]
    train_args = parser().parse_args(options)
    train_args.mix = parse_mix([])
    with contextlib.redirect_stdout(sys.stderr):  # stdout carries the JSON alone
        train(train_args, examples=examples)
    return out / "model"


def replay_mix(source: str) -> tuple[dict[str, float], dict[str, float]]:
    """The mix and negatives' rates to replay: the shipped reader's last run, or the usual ``MIX``."""
    if source == "mix":
        return dict(MIX), {}
    return parse_mix([f"{name}=0" for name in MIX] + list(SHIPPED_RUN_MIX)), dict(SHIPPED_RUN_NEGATIVES)


def _margins(items: Sequence[EvalItem], model: Path | str) -> Rows:
    """Each question's margin, F1 and answerability, read by this model folder."""
    from qa.reader.read import Reader

    return measure(items, Reader(model=model))


def _summary(per_fold: list[dict[str, float]]) -> dict[str, Any]:
    """Mean and spread of each figure over the folds."""
    return {k: mean_and_spread([f[k] for f in per_fold]) for k in per_fold[0]} | {"per_fold": per_fold}


def main(argv: Sequence[str] | None = None) -> int:
    """Fine-tune per fold and print the held-out separation of the base and fine-tuned readers as JSON."""
    from qa.reader.read import DEFAULT_READER

    p = argparse.ArgumentParser(prog="python -m qa.lab.finetune_folds", description=__doc__.split("\n")[0])
    p.add_argument("squad2", type=Path, help="a SQuAD 2.0 file of whole articles (both kinds of question)")
    p.add_argument("--folds", type=int, default=2)
    p.add_argument("--base", default=str(DEFAULT_READER), help="the reader to fine-tune (a model folder)")
    p.add_argument("--work-dir", type=Path, default=Path("finetune-work"))
    p.add_argument("--data-dir", type=Path, default=DATA_DIR, help="the usual training data (replay)")
    p.add_argument("--replay", type=float, default=REPLAY, help="replayed questions per new question")
    p.add_argument("--replay-from", choices=("shipped-run", "mix"), default="shipped-run",
                   help="replay the shipped reader's last training mix (default) or qa.lab.train_data.MIX")
    p.add_argument("--control", action="store_true", help="also fine-tune on the replayed mix alone")
    p.add_argument("--lr", type=float, default=LEARNING_RATE)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--max-steps", type=int, default=0, help="stop each fine-tuning after this many steps")
    p.add_argument("--max-false-abstentions", type=float, default=MAX_FALSE_ABSTENTIONS)
    args = p.parse_args(argv)
    if args.replay < 0 or (args.control and args.replay == 0):
        p.error("--replay must be 0 or more, and above 0 with --control")
    if not 0 < args.max_false_abstentions < 100:
        p.error("--max-false-abstentions is a percentage between 0 and 100")
    try:
        items = load_squad(args.squad2)
        fold_of = article_folds([i.title for i in items], args.folds)
    except ValueError as err:
        p.error(str(err))
    for fold in range(args.folds):
        if {i.answerable for i in items if fold_of[i.title] == fold} != {True, False}:
            p.error(f"fold {fold + 1} lacks answerable or unanswerable questions: give a SQuAD 2.0 file "
                    f"with both kinds in every article group, or fewer --folds")
    if not Path(args.base).is_dir():
        p.error(f"--base: no model folder at {args.base}")
    used = sorted(args.work_dir.glob("fold*")) if args.work_dir.is_dir() else []
    if used:  # qa.lab.train would resume from the features kept there, not train on these examples
        p.error(f"--work-dir {args.work_dir} already holds {used[0].name} from an earlier run: "
                f"remove it or choose another --work-dir")
    if args.replay and not args.data_dir.is_dir():
        p.error(f"--data-dir: no training data at {args.data_dir} (expected ../shared/data beside the repo; "
                f"--replay 0 replays nothing)")
    replay: list[Example] = []
    if args.replay:
        from qa.lab.train_negatives import training_examples

        mix, rates = replay_mix(args.replay_from)
        replay = training_examples(args.data_dir, random.Random(args.seed), mix, **rates)
    base_rows = _margins(items, args.base)
    figures: dict[str, list[dict[str, float]]] = {"base": [], "fine_tuned": []} | (
        {"control": []} if args.control else {})
    for fold in range(args.folds):
        rng = random.Random(args.seed + fold)
        held = [k for k, i in enumerate(items) if fold_of[i.title] == fold]
        new = article_examples([i for i in items if fold_of[i.title] != fold])
        mixed = new + rng.sample(replay, min(len(replay), math.ceil(args.replay * len(new))))
        rng.shuffle(mixed)
        held_items = [items[k] for k in held]
        tuned = fine_tune(args.base, mixed, args.work_dir / f"fold{fold}", args)
        cut = args.max_false_abstentions
        figures["base"].append(separation([base_rows[k] for k in held], max_false_abstentions=cut))
        figures["fine_tuned"].append(separation(_margins(held_items, tuned), max_false_abstentions=cut))
        if args.control:
            alone = fine_tune(args.base, rng.sample(replay, min(len(replay), len(mixed))),
                              args.work_dir / f"fold{fold}-control", args)
            figures["control"].append(separation(_margins(held_items, alone), max_false_abstentions=cut))
        done = ", ".join(f"{name} {rows[-1]}" for name, rows in figures.items())
        print(f"finetune_folds: fold {fold + 1}/{args.folds}: {done}", file=sys.stderr, flush=True)
    print(json.dumps({"folds": args.folds, "articles": len(fold_of), "questions": len(items),
                      "max_false_abstentions": args.max_false_abstentions, "replay": args.replay,
                      "replay_from": args.replay_from, "lr": args.lr,
                      **{name: _summary(rows) for name, rows in figures.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
