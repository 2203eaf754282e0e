"""Whole-pipeline abstention: held-out SQuAD questions with their article in the corpus, and without it.

Run ``python scripts/abstention_check.py`` from the repository root. The corpus is every paragraph of
``squad-v1.1-dev-40.json`` (passages as the chatbot cuts them; vectors cached like ``qa bench``'s). A
fixed sample of questions from the 10 validation articles (``qa.lab.train_data.split_squad``) is answered
twice
with the chatbot's retrieval, reader and answer selection: from the top passages of the whole corpus
(answerable), from the top passages of the other articles (unanswerable), and from the seed article in
``seeds/`` (unanswerable: a news article that none of them is about). It prints, for each similarity
floor, how many answerable questions are answered right (F1 >= 50), how many unanswerable ones are
abstained on, and the false abstentions, at the reader's threshold.
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from qa.chat.chatbot import DEFAULT_SOURCES, Chatbot  # noqa: E402
from qa.chat.select import select_span  # noqa: E402
from qa.lab.bench_corpus import open_domain_retriever, split_check_setup  # noqa: E402
from qa.lab.squad import f1  # noqa: E402
from qa.reader.read import Reader  # noqa: E402

FLOORS = (-1.0, 0.2, 0.3, 0.35, 0.4, 0.45, 0.5)
#: Candidates retrieved before the question's own article is removed (unanswerable case).
WIDE = 40


def main(argv: list[str] | None = None) -> int:
    """Print the abstention table."""
    args, data, split = split_check_setup(argv, description=__doc__.splitlines()[0], sample=500,
                                          sample_help="validation questions")
    questions = [(q, answers, f"{a}:") for q, answers, a in split["validation"]]
    sample = random.Random(args.seed).sample(questions, min(args.sample, len(questions)))
    retriever = open_domain_retriever(data)
    reader = Reader(model=args.reader)
    with tempfile.TemporaryDirectory(prefix="qa-abstention-") as tmp:
        seed = Chatbot(sources=list(DEFAULT_SOURCES), index_dir=Path(tmp) / "index", reader=reader,
                       top_k=args.top_k, log=lambda _m: None)
        seed.warm_up()
        # score, cosine, right; then the other articles' score, cosine; then the seed article's
        rows: list[tuple[float, float, bool, float, float, float, float]] = []
        for question, answers, article in sample:
            hits = retriever.retrieve(question, top_k=args.top_k)
            others = [h for h in retriever.retrieve(question, top_k=WIDE) if not h.source.startswith(article)]
            picked = []
            for cands in (hits, others[: args.top_k], seed.retrieve(question)):
                spans = reader.read(question, cands, top_n=len(cands), per_passage=True) if cands else []
                span = select_span(spans, cands)
                cosine = next((h.score for h in cands if span and h.id == span.passage_id), -1.0)
                picked.append((span, cosine))
            (s1, c1), (s2, c2), (s3, c3) = picked
            rows.append((s1.score if s1 else 0.0, c1, bool(s1) and f1(s1.text, answers) >= 50,
                         s2.score if s2 else 0.0, c2, s3.score if s3 else 0.0, c3))
    t, n = reader.threshold, len(rows)
    table = []
    for floor in FLOORS:
        answered = [r[0] >= t and r[1] >= floor for r in rows]
        right = sum(a and r[2] for a, r in zip(answered, rows, strict=True))
        abstained = sum(not (r[3] >= t and r[4] >= floor) for r in rows)
        seed_abstained = sum(not (r[5] >= t and r[6] >= floor) for r in rows)
        table.append({
            "min_similarity": floor,
            "answered_right": round(100 * right / n, 1),
            "false_abstentions": round(100 * sum(not a for a in answered) / n, 1),
            "no_answer_accuracy": round(100 * abstained / n, 1),
            "seed_article_no_answer_accuracy": round(100 * seed_abstained / n, 1),
        })
    if args.json:
        print(json.dumps({"questions": n, "threshold": t, "table": table}))
    else:
        print(f"{n} validation questions, reader {reader.name} ({reader.precision}), threshold {t}")
        for row in table:
            print("  ".join(f"{k} {v}" for k, v in row.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
