"""Answer selection on open-domain SQuAD: reader confidence alone vs weighted by retrieval rank.

Run ``python scripts/selection_check.py`` from the repository root. Every paragraph of
``squad-v1.1-dev-40.json`` forms one corpus (vectors cached like ``qa bench``'s). For a fixed sample of
questions from the 30 training-split articles and one from the 10 validation articles
(``qa.lab.train_data.split_squad``), the chatbot's retrieval gives the top passages and the reader each
one's best span; the table is the whole-pipeline F1 of picking the span with the highest confidence *
prior ** rank, for each prior (1.0 = confidence alone, 0.0 = the top passage only).
``qa.chat.select.RANK_PRIOR`` is chosen by the training-split F1 (see its comment).
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from qa.chat.select import select_span  # noqa: E402
from qa.lab.bench_corpus import open_domain_retriever, split_check_setup  # noqa: E402
from qa.lab.squad import f1  # noqa: E402
from qa.reader.read import Reader  # noqa: E402

PRIORS = (1.0, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.0)


def main(argv: list[str] | None = None) -> int:
    """Print the F1 table per prior."""
    args, data, split = split_check_setup(argv, description=__doc__.splitlines()[0], sample=700,
                                          sample_help="questions per split")
    rng = random.Random(args.seed)
    samples = {name: rng.sample(qs, min(args.sample, len(qs))) for name, qs in split.items()}
    retriever = open_domain_retriever(data)
    reader = Reader(model=args.reader)
    read = {}
    for name, sample in samples.items():
        rows = []
        for question, answers, _ in sample:
            hits = retriever.retrieve(question, top_k=args.top_k)
            rows.append((reader.read(question, hits, top_n=len(hits), per_passage=True), hits, answers))
        read[name] = rows
    table = []
    for prior in PRIORS:
        row: dict[str, float] = {"prior": prior}
        for name, rows in read.items():
            picks = [(select_span(spans, hits, prior=prior), answers) for spans, hits, answers in rows]
            row[f"{name}_f1"] = round(sum(f1(s.text, a) if s else 0.0 for s, a in picks) / len(picks), 2)
        table.append(row)
    if args.json:
        print(json.dumps({"questions_per_split": args.sample, "table": table}))
    else:
        print(f"{args.sample} questions per split, top {args.top_k}, "
              f"reader {reader.name} ({reader.precision})")
        for row in table:
            print("  ".join(f"{k} {v}" for k, v in row.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
