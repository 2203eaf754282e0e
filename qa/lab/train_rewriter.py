"""Learn the follow-up rewriter's weights (``qa/chat/rewriter.json``) from people's rewrites (CANARD).

``python -m qa.lab.train_rewriter ../shared/data/conversations/canard-dev.json --out qa/chat/rewriter.json``
(``--cv-only`` measures a change to the candidates or features by cross-validation on the training
conversations alone, and writes nothing.)

The file is split by conversation (``QuAC_dialog_id``): a conversation whose id's SHA-256, read as a
number, is divisible by ``VALIDATION_EVERY`` is validation, the rest trains. Every candidate of
``qa.chat.rewrite`` is labelled with its sentence BLEU against the person's rewrite, and each step's
weights are fitted so that a softmax over an item's candidates matches the softmax of those labels
(temperature ``LABEL_TEMPERATURE``). The biases for leaving a question unchanged (step 1) and without an
addition (step 2) and the bonus per word of a candidate are chosen together by cross-validation over
conversations of the training part, for corpus BLEU. Validation is scored once, at the end. No pickle:
the weights are JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from qa.chat.rewrite import WEIGHTS_FILE, Candidate, Rewriter, Weights, additions, choose, replacements, tidy
from qa.lab.rewrites import RewriteItem, load_rewrites, score_rewrites, topic_and_turns

#: Where the training data comes from and its licence, carried in the weights file.
ATTRIBUTION = ("CANARD (Elgohary, Peskov and Boyd-Graber, EMNLP 2019), questions from QuAC "
               "(Choi et al., EMNLP 2018) about Wikipedia; CC BY-SA 4.0")
#: One conversation in this many is validation (by the SHA-256 of its QuAC_dialog_id).
VALIDATION_EVERY = 5
#: Temperature of the BLEU labels' softmax (BLEU points).
LABEL_TEMPERATURE = 3.0
#: L2 penalty, epochs and learning rate of each step's fit.
L2 = 1e-4
EPOCHS = 25
LEARNING_RATE = 0.05
#: A feature seen on fewer training items than this gets no weight.
MIN_FEATURE_COUNT = 3
#: Biases tried for keeping step 1's question unchanged (with the shipped weights -3 already replaces a
#: pronoun whenever the conversation offers a referent: -4 and -6 cross-validate the same) and step 2's
#: without an addition, and bonuses per word of a candidate (``qa.chat.rewrite.Weights``);
#: the setting with the best cross-validated BLEU is kept.
COPY_BIASES = (0.0, -1.0, -2.0, -3.0)
KEEP_BIASES = (-3.0, -2.0, -1.5, -1.0, -0.5, 0.0, 1.0)
LENGTH_BONUSES = (0.0, 0.03, 0.06)
#: Conversation folds of the training part for choosing the biases and the bonus.
FOLDS = 3

Labelled = list[tuple[list[Candidate], list[float]]]
Setting = tuple[float, float, float]  # (copy bias, keep bias, length bonus)


def is_validation(dialog: str) -> bool:
    """True for the conversations held out for validation (a fixed split by conversation id)."""
    return int(hashlib.sha256(dialog.encode("utf-8")).hexdigest(), 16) % VALIDATION_EVERY == 0


def split(items: Sequence[RewriteItem]) -> tuple[list[RewriteItem], list[RewriteItem]]:
    """(training, validation) items, split by conversation."""
    if any(not i.dialog for i in items):
        raise ValueError("every entry needs its QuAC_dialog_id to split by conversation")
    return [i for i in items if not is_validation(i.dialog)], [i for i in items if is_validation(i.dialog)]


def label(items: Sequence[RewriteItem], step: Callable[..., list[Candidate]],
          questions: Sequence[str]) -> Labelled:
    """Each item's candidates for ``step`` (from ``questions``), with sentence BLEU to the rewrite."""
    import sacrebleu

    out: Labelled = []
    for item, question in zip(items, questions, strict=True):
        topic, history = topic_and_turns(item.history)
        candidates = step(question, topic, history)
        bleu = [sacrebleu.sentence_bleu(tidy(c.text), [item.rewrite]).score for c in candidates]
        out.append((candidates, bleu))
    return out


def fit(data: Labelled, *, seed: int = 0) -> dict[str, float]:
    """Weights whose softmax over each item's candidates matches the softmax of their BLEU labels."""
    import torch

    counts = Counter(f for candidates, _ in data for f in {f for c in candidates for f in c.features})
    features = sorted(f for f, n in counts.items() if n >= MIN_FEATURE_COUNT)
    index = {f: i for i, f in enumerate(features)}
    tensors = []
    for candidates, labels in data:
        x = torch.zeros(len(candidates), len(features))
        for r, c in enumerate(candidates):
            for f in c.features:
                if f in index:
                    x[r, index[f]] += 1
        tensors.append((x, torch.softmax(torch.tensor(labels) / LABEL_TEMPERATURE, 0)))
    torch.manual_seed(seed)
    w = torch.zeros(len(features), requires_grad=True)
    opt = torch.optim.Adam([w], lr=LEARNING_RATE)
    batch = 64
    for epoch in range(EPOCHS):
        random.Random(seed + epoch).shuffle(tensors)
        for b in range(0, len(tensors), batch):
            opt.zero_grad()
            loss = sum(-(t * torch.log_softmax(x @ w, 0)).sum() for x, t in tensors[b:b + batch])
            (loss / batch + L2 * (w * w).sum()).backward()
            opt.step()
    return {f: float(v) for f, v in zip(features, w.detach().tolist(), strict=True)}


def first_steps(items: Sequence[RewriteItem], weights: dict[str, float]) -> list[str]:
    """The step-1 choice for each item."""
    out = []
    for item in items:
        topic, history = topic_and_turns(item.history)
        out.append(choose(weights, replacements(item.question, topic, history))[0].text)
    return out


def train(items: Sequence[RewriteItem], *, copy_bias: float = 0.0, keep_bias: float = 0.0,
          length_bonus: float = 0.0, log: Callable[[str], None] = print) -> Weights:
    """Both steps' weights from these items (the biases and the length bonus are given, not fitted)."""
    t = time.perf_counter()
    replace = fit(label(items, replacements, [i.question for i in items]))
    add = fit(label(items, additions, first_steps(items, replace)))
    log(f"train_rewriter: fitted {len(replace)} + {len(add)} weights on {len(items)} follow-ups "
        f"in {time.perf_counter() - t:.0f} s")
    return Weights(replace, add, keep_bias=keep_bias, length_bonus=length_bonus, copy_bias=copy_bias)


def rewrite_all(weights: Weights, items: Sequence[RewriteItem]) -> list[str]:
    """The rewriter's output for each item."""
    model = Rewriter(weights=weights)
    out = []
    for item in items:
        topic, history = topic_and_turns(item.history)
        out.append(model.rewrite(item.question, history, topic=topic).text)
    return out


def setting_name(setting: Setting) -> str:
    """A (copy bias, keep bias, length bonus) setting as printed: "-3/-1.5/0.03"."""
    return "/".join(f"{v:g}" for v in setting)


def choose_settings(items: Sequence[RewriteItem], *, folds: int = FOLDS,
                    log: Callable[[str], None] = print) -> tuple[Setting, dict[Setting, float]]:
    """The (copy bias, keep bias, length bonus) with the best BLEU over conversation folds, and each's."""
    dialogs = sorted({i.dialog for i in items}, key=lambda d: hashlib.sha256(d.encode("utf-8")).hexdigest())
    fold_of = {d: n % folds for n, d in enumerate(dialogs)}
    settings = [(c, b, g) for c in COPY_BIASES for g in LENGTH_BONUSES for b in KEEP_BIASES]
    totals = dict.fromkeys(settings, 0.0)
    for k in range(folds):
        inside = [i for i in items if fold_of[i.dialog] != k]
        held = [i for i in items if fold_of[i.dialog] == k]
        weights = train(inside, log=log)
        for copy, bias, bonus in settings:
            setting = dataclasses.replace(weights, copy_bias=copy, keep_bias=bias, length_bonus=bonus)
            outputs = rewrite_all(setting, held)
            totals[copy, bias, bonus] += score_rewrites(held, outputs)["rewrite_bleu"] / folds
        best = max(settings, key=totals.__getitem__)
        log(f"train_rewriter: fold {k + 1}/{folds}: best so far {setting_name(best)}: "
            f"{totals[best] * folds / (k + 1):.2f}; with no bias on step 1 and no length bonus: "
            + ", ".join(f"{b:+g}: {totals[0.0, b, 0.0] * folds / (k + 1):.2f}" for b in KEEP_BIASES))
    best = max(settings, key=totals.__getitem__)
    return best, totals


def main(argv: Sequence[str] | None = None) -> int:
    """Train on the training conversations, report both parts, write the weights."""
    parser = argparse.ArgumentParser(prog="python -m qa.lab.train_rewriter",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("canard", type=Path, help="a CANARD-format file with QuAC_dialog_id")
    parser.add_argument("--out", type=Path, default=WEIGHTS_FILE)
    parser.add_argument("--write-validation", type=Path, metavar="PATH",
                        help="also write the validation conversations' entries there (for qa eval)")
    parser.add_argument("--split-only", action="store_true",
                        help="with --write-validation: write the validation file and stop (no training)")
    parser.add_argument("--folds", type=int, default=FOLDS,
                        help="conversation folds for choosing the biases and the length bonus")
    parser.add_argument("--cv-only", action="store_true",
                        help="print the cross-validated BLEU of each setting of the biases and bonus on the "
                             "training conversations and stop: measures a change to the candidates or "
                             "features, writes nothing and never scores validation")
    args = parser.parse_args(argv)
    if args.folds < 2:
        parser.error("--folds must be at least 2")
    if args.split_only and not args.write_validation:
        parser.error("--split-only goes with --write-validation PATH")
    if args.cv_only and (args.split_only or args.write_validation):
        parser.error("--cv-only writes nothing; leave out --write-validation and --split-only")
    training, validation = split(load_rewrites(args.canard))
    if args.write_validation:
        held = [e for e in json.loads(args.canard.read_text(encoding="utf-8"))
                if is_validation(str(e.get("QuAC_dialog_id", "")))]
        args.write_validation.parent.mkdir(parents=True, exist_ok=True)
        args.write_validation.write_text(json.dumps(held, indent=1) + "\n", encoding="utf-8")
        print(f"train_rewriter: wrote the {len(held)} validation entries to {args.write_validation}")
        if args.split_only:
            return 0
    print(f"train_rewriter: {len(training)} training and {len(validation)} validation follow-ups "
          f"({len({i.dialog for i in validation})} validation conversations)")
    (copy, bias, bonus), means = choose_settings(training, folds=args.folds)
    if args.cv_only:
        print(json.dumps({"folds": args.folds, "training_follow_ups": len(training), "best_copy_bias": copy,
                          "best_keep_bias": bias, "best_length_bonus": bonus,
                          "cv_rewrite_bleu": {setting_name(s): round(v, 2) for s, v in means.items()}}))
        return 0
    weights = train(training, copy_bias=copy, keep_bias=bias, length_bonus=bonus)
    result: dict[str, dict[str, Any]] = {}
    for name, part in (("training", training), ("validation", validation)):
        result[name] = score_rewrites(part, rewrite_all(weights, part))
        print(f"train_rewriter: {name}: rewrite_bleu {result[name]['rewrite_bleu']}, "
              f"copy_bleu {result[name]['copy_bleu']}, length ratio {result[name]['rewrite_length_ratio']}")
    args.out.write_text(weights.to_json(trained_on=f"{args.canard.name}, conversations not held out",
                                        attribution=ATTRIBUTION, validation=result["validation"]) + "\n",
                        encoding="utf-8")
    print(f"train_rewriter: wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
