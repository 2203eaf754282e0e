"""Train the project's extractive reader on the SQuAD-format data in ``../shared/data``.

Run ``python -m qa.lab.train --help``. The run is seeded, prints loss, questions per second and time
left, saves a checkpoint every ``--save-every`` steps under ``--work-dir`` and resumes from the newest
one when started again with the same arguments. ``--out`` receives the final weights in
``save_pretrained`` layout (safetensors, half precision).

The split is fixed and by article (see ``split_squad``); the article in ``seeds/`` never enters
training or tuning. ``--teacher`` distils: the mean start/end logits of other QA models become soft
targets beside the gold labels (``distill_loss``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from qa.lab.distill import DISTILL_WEIGHT, TEMPERATURE
from qa.lab.train_data import DATA_DIR, parse_mix, write_validation_file
from qa.lab.train_features import MAX_LENGTH, STRIDE, report_answer_lengths
from qa.lab.train_loop import (
    BATCH_SIZE,
    LEARNING_RATE,
    SEED,
    WARMUP,
    average,
    default_base_model,
    export,
    train,
)
from qa.lab.train_negatives import ANTONYM_RATE, HARD_NEGATIVE_RATE, SAME_DOCUMENT_RATE, SWAP_RATE


def parser() -> argparse.ArgumentParser:
    """The training command's options (``qa.lab.finetune_folds`` reuses them)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=str(DATA_DIR))
    p.add_argument("--base", default=None, help="encoder to start from (default: bundled MiniLM)")
    p.add_argument("--work-dir", default="train-work")
    p.add_argument("--out", default="qa/reader_model")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--max-steps", type=int, default=0)
    p.add_argument("--minutes", type=float, default=0,
                   help="time budget: from the speed of the first 70 steps, and again every 200 steps "
                        "over the first half of the budget, shorten the schedule to what fits")
    p.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    p.add_argument("--lr", type=float, default=LEARNING_RATE)
    p.add_argument("--warmup", type=float, default=WARMUP, help="share of steps spent warming up")
    p.add_argument("--init", default=None,
                   help="start from this training checkpoint's weights (a new schedule; continues a run)")
    p.add_argument("--skip", type=int, default=0,
                   help="leave out the first N batches (a continuation from --base that already saw them)")
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--limit", type=int, default=0, help="use only the first N questions")
    p.add_argument("--mix", nargs="*", default=[], metavar="NAME=WEIGHT",
                   help="override qa.lab.train.MIX weights for this run's features (--mix squad-train=2)")
    p.add_argument("--hard-negatives", type=float, default=HARD_NEGATIVE_RATE, metavar="RATE",
                   help="share of questions also paired with a look-alike paragraph of another document "
                        "(BM25), labelled no answer (default 0)")
    p.add_argument("--same-document-negatives", type=float, default=SAME_DOCUMENT_RATE, metavar="RATE",
                   help="share of questions also paired with another paragraph of their own document "
                        "(the BM25-best without the answer), labelled no answer (default 0)")
    p.add_argument("--swap-negatives", type=float, default=SWAP_RATE, metavar="RATE",
                   help="share of questions also asked with a name or number swapped for another of their "
                        "document, labelled no answer (default 0)")
    p.add_argument("--antonym-negatives", type=float, default=ANTONYM_RATE, metavar="RATE",
                   help="share of questions also asked with a word of the answer's sentence turned into its "
                        "opposite, labelled no answer (default 0)")
    p.add_argument("--gold-no-answer", action="store_true",
                   help="with --teacher: windows labelled no answer learn from the gold label alone")
    p.add_argument("--teacher", nargs="+", default=[], metavar="MODEL",
                   help="distil from these QA model folders: their mean start/end logits become soft "
                        "targets (computed once, kept in the work folder)")
    p.add_argument("--distill-weight", type=float, default=DISTILL_WEIGHT,
                   help=f"share of the loss from the teachers (default {DISTILL_WEIGHT})")
    p.add_argument("--temperature", type=float, default=TEMPERATURE,
                   help=f"softmax temperature of distillation (default {TEMPERATURE})")
    p.add_argument("--max-length", type=int, default=MAX_LENGTH, help="window length in tokens")
    p.add_argument("--stride", type=int, default=STRIDE, help="tokens shared by neighbouring windows")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--freeze-layers", type=int, default=0, metavar="N",
                   help="freeze the embeddings and the first N encoder layers (faster steps, less drift)")
    p.add_argument("--prepare", action="store_true",
                   help="write the work folder's features.jsonl (tokenized windows) and exit")
    p.add_argument("--bf16", action="store_true",
                   help="bfloat16 autocast for the matrix products (CPUs with AVX512-BF16/AMX, recent GPUs)")
    p.add_argument("--log-every", type=int, default=20)
    p.add_argument("--save-every", type=int, default=200)
    p.add_argument("--write-validation", default=None, help="write the SQuAD validation file and exit")
    p.add_argument("--squad2", action="store_true",
                   help="with --write-validation: the SQuAD 2.0 validation articles, unanswerables included")
    p.add_argument("--export", action="store_true",
                   help="export the work folder's checkpoint to --out and exit")
    p.add_argument("--average", nargs="+", default=[], metavar="MODEL",
                   help="save the weighted average of these QA model folders to --out and exit")
    p.add_argument("--weights", nargs="+", type=float, default=[], metavar="W",
                   help="one weight per --average model (default: equal)")
    p.add_argument("--answer-lengths", action="store_true",
                   help="print each training set's answer lengths in tokens (percentiles) and exit")
    return p


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    p = parser()
    args = p.parse_args(argv)
    try:
        args.mix = parse_mix(args.mix)  # checked once, before any work; train() uses the result
    except ValueError as err:
        p.error(str(err))
    for flag in ("hard_negatives", "same_document_negatives", "swap_negatives", "antonym_negatives"):
        if not 0 <= getattr(args, flag) <= 1:
            p.error(f"--{flag.replace('_', '-')} must be a share from 0 to 1, got {getattr(args, flag):g}")
    if args.max_length < 32 or not 0 < args.stride < args.max_length // 2:
        p.error(f"--max-length must be 32 or more and --stride from 1 to under half of it, got "
                f"{args.max_length} and {args.stride}")
    if not 0 <= args.distill_weight <= 1 or args.temperature <= 0:
        p.error(f"--distill-weight must be a share from 0 to 1 and --temperature above 0, got "
                f"{args.distill_weight:g} and {args.temperature:g}")
    missing = [t for t in args.teacher if not Path(t).is_dir()]
    if missing:
        p.error(f"--teacher: no model folder at {', '.join(missing)}")
    if args.freeze_layers < 0:
        p.error(f"--freeze-layers must be 0 (train everything) or more, got {args.freeze_layers}")
    if args.minutes < 0:
        p.error(f"--minutes must be 0 (no budget) or more, got {args.minutes:g}")
    if args.export:
        export(Path(args.work_dir) / "checkpoint.pt", Path(args.out), args.base)
        return
    if args.average:
        try:
            average(args.average, args.weights or [1.0] * len(args.average), Path(args.out))
        except ValueError as err:
            p.error(str(err))
        return
    if args.write_validation:
        n = write_validation_file(Path(args.write_validation), Path(args.data_dir), squad2=args.squad2)
        print(f"wrote {n} validation questions to {args.write_validation}")
        return
    made = (Path(args.work_dir) / "features.jsonl").exists() and not args.answer_lengths
    if not Path(args.data_dir).is_dir() and not made:  # kept features need no data folder
        sys.exit(f"data folder not found: {args.data_dir} (expected ../shared/data beside the repo)")
    if args.answer_lengths:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(args.base or default_base_model())
        print("\n".join(report_answer_lengths(Path(args.data_dir), tokenizer, args.mix)))
        return
    train(args)


if __name__ == "__main__":
    main()
