"""``qa compare-readers``: our Reader vs Haystack's TransformersExtractiveReader on one model and inputs."""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from qa.extras import require
from qa.lab.report import report_arg
from qa.lab.squad import EvalItem, exact_match, f1, load_squad
from qa.reader.read import BACKENDS, DEFAULT_READER, MAX_ANSWER_TOKENS, MAX_LENGTH, PRECISIONS, STRIDE
from qa.schema import Passage

ROOT = Path(__file__).resolve().parents[2]
#: The seed article and its hand-written questions.
DEFAULT_ARTICLE = ROOT / "seeds" / "article.txt"
DEFAULT_ARTICLE_QUESTIONS = ROOT.parent / "shared" / "data" / "article_dev.json"
#: Passages per article question (the chatbot's default top-k).
ARTICLE_PASSAGES = 3
#: SQuAD validation questions timed and scored, drawn with SAMPLE_SEED.
DEFAULT_QUESTIONS = 300
SAMPLE_SEED = 13
#: Our reader's engines and precisions to run, "backend:precision" (each its own row); Haystack's runs
#: transformers in float32.
DEFAULT_READERS = ("onnx:float32", "onnx:int8", "transformers:float32")

_WORD = re.compile(r"\w+")

#: (question, passages) -> (answer text or None when abstaining, best span text or None)
ReadFn = Callable[[str, list[Passage]], tuple[str | None, str | None]]


def article_passages(text: str, source: str) -> list[Passage]:
    """Split an article at blank lines into passages with their offsets."""
    out: list[Passage] = []
    seps = list(re.finditer(r"\n\s*\n", text))
    starts = [0] + [m.end() for m in seps]
    ends = [m.start() for m in seps] + [len(text)]
    for begin, stop in zip(starts, ends, strict=True):
        block = text[begin:stop]
        begin, stop = begin + len(block) - len(block.lstrip()), begin + len(block.rstrip())
        if stop > begin:
            out.append(Passage(id=f"{source}#{len(out)}", source=source, start=begin, end=stop,
                               text=text[begin:stop]))
    return out


def top_passages(question: str, passages: Sequence[Passage], k: int = ARTICLE_PASSAGES) -> list[Passage]:
    """The k passages sharing the most distinct words with the question (ties: earlier first)."""
    words = {w.lower() for w in _WORD.findall(question)}
    scored = sorted(passages, key=lambda p: -len(words & {w.lower() for w in _WORD.findall(p.text)}))
    return scored[:k]


def article_inputs(article: Path, questions: Path) -> list[tuple[EvalItem, list[Passage]]]:
    """Each article question with its 3 best-overlapping paragraphs of the article."""
    text = article.read_text(encoding="utf-8")
    passages = article_passages(text, article.name)
    return [(it, top_passages(it.question, passages)) for it in load_squad(questions)]


def squad_inputs(path: Path, n: int) -> list[tuple[EvalItem, list[Passage]]]:
    """A fixed sample of n validation questions, each with its own paragraph as the only passage."""
    items = [it for it in load_squad(path) if it.answerable]
    if n < len(items):
        keep = sorted(random.Random(SAMPLE_SEED).sample(range(len(items)), n))
        items = [items[k] for k in keep]
    return [(it, [Passage(id=f"{it.name}#0", source=it.name, start=0, end=len(it.context), text=it.context)])
            for it in items]


def ours(model: Path | str, precision: str = "auto",
         backend: str = "auto") -> tuple[ReadFn, Callable[[], None]]:
    """Our Reader on ``backend`` at ``precision`` as (read function, warm-up)."""
    from qa.reader.read import Reader

    reader = Reader(model=model, precision=precision, backend=backend)

    def read(question: str, passages: list[Passage]) -> tuple[str | None, str | None]:
        spans = reader.read(question, passages)
        best = spans[0] if spans else None
        answer = best.text if best is not None and best.score >= reader.threshold else None
        return answer, None if best is None else best.text

    return read, reader.warm_up


def haystack(model: Path | str) -> tuple[ReadFn, Callable[[], None]]:
    """Haystack's TransformersExtractiveReader, configured like ours, as (read function, warm-up)."""
    os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")
    import torch
    from haystack import Document
    from haystack.utils import ComponentDevice
    from haystack_integrations.components.readers.transformers import TransformersExtractiveReader

    reader = TransformersExtractiveReader(
        model=str(model), device=ComponentDevice.from_str("cpu"), top_k=1, max_seq_length=MAX_LENGTH,
        stride=STRIDE, no_answer=True, model_kwargs={"dtype": torch.float32},
    )

    def read(question: str, passages: list[Passage]) -> tuple[str | None, str | None]:
        docs = [Document(id=p.id, content=p.text) for p in passages]
        answers = reader.run(query=question, documents=docs)["answers"]
        spans = [a for a in answers if a.data is not None]
        best = spans[0].data if spans else None
        # its no-answer entry ranks first when the best span's probability is under 1/2
        answer = None if not answers or answers[0].data is None else answers[0].data
        return answer, best

    return read, reader.warm_up


def _percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile with linear interpolation."""
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def run_inputs(read: ReadFn, inputs: list[tuple[EvalItem, list[Passage]]]) -> dict[str, Any]:
    """Time and score one reader on one input set."""
    latencies, answers, bests = [], [], []
    for item, passages in inputs:
        t0 = time.perf_counter()
        answer, best = read(item.question, passages)
        latencies.append(1000 * (time.perf_counter() - t0))
        answers.append(answer)
        bests.append(best)
    n = len(inputs)
    golds = [it.answers for it, _ in inputs]
    return {
        "questions": n,
        "ms_p50": round(_percentile(latencies, 50), 1),
        "ms_p95": round(_percentile(latencies, 95), 1),
        "ms_mean": round(sum(latencies) / n, 1),
        "exact_match": round(sum(exact_match(a, g) for a, g in zip(answers, golds, strict=True)) / n, 2),
        "f1": round(sum(f1(a, g) for a, g in zip(answers, golds, strict=True)) / n, 2),
        "best_span_exact_match": round(sum(exact_match(b, g) if g else 0.0
                                           for b, g in zip(bests, golds, strict=True)) / n, 2),
        "best_span_f1": round(sum(f1(b, g) if g else 0.0 for b, g in zip(bests, golds, strict=True)) / n, 2),
        "abstained": sum(a is None for a in answers),
        "_answers": bests,
    }


def parse_readers(text: str) -> list[tuple[str, str]]:
    """``"onnx:float32,transformers:int8"`` as [(backend, precision)]; ValueError naming what is wrong."""
    specs = []
    for item in (x.strip() for x in text.split(",")):
        backend, _, precision = item.partition(":")
        if backend not in BACKENDS or precision not in PRECISIONS:
            raise ValueError(f"{item!r} is not BACKEND:PRECISION with a backend from {', '.join(BACKENDS)} "
                             f"and a precision from {', '.join(PRECISIONS)}")
        specs.append((backend, precision))
    return specs


def compare(model: Path | str, sets: dict[str, list[tuple[EvalItem, list[Passage]]]],
            threads: int, readers_wanted: Sequence[str] = DEFAULT_READERS) -> dict[str, Any]:
    """Warm every reader up, then run each on every input set; return the report."""
    import torch

    from qa import ort

    torch.set_num_threads(threads)
    os.environ[ort.THREADS_ENV] = str(threads)
    readers = {f"ours-{b}-{pr}": ours(model, pr, b) for b, pr in parse_readers(",".join(readers_wanted))}
    readers["haystack"] = haystack(model)
    for read, warm_up in readers.values():
        warm_up()
        item, passages = next(iter(sets.values()))[0]
        for _ in range(2):
            read(item.question, passages)
    report: dict[str, Any] = {"model": str(model), "threads": threads, "readers": list(readers), "sets": {}}
    for name, inputs in sets.items():
        rows = {r: run_inputs(read, inputs) for r, (read, _) in readers.items()}
        answers = {r: row.pop("_answers") for r, row in rows.items()}
        theirs = rows["haystack"]
        for r, row in rows.items():
            if r != "haystack":
                row["speedup_p50"] = round(theirs["ms_p50"] / max(row["ms_p50"], 1e-9), 2)
                row["speedup_mean"] = round(theirs["ms_mean"] / max(row["ms_mean"], 1e-9), 2)
                row["same_best_span_as_haystack"] = round(100 * sum(
                    x == y for x, y in zip(answers[r], answers["haystack"], strict=True)) / len(inputs), 1)
        report["sets"][name] = rows
    return report


def _print(report: dict[str, Any]) -> None:
    """Human-readable side-by-side table."""
    print(f"model {report['model']} · {report['threads']} thread(s) · CPU")
    cols = ["ms_p50", "ms_p95", "exact_match", "f1", "best_span_f1", "abstained", "speedup_p50",
            "speedup_mean"]
    for name, rows in report["sets"].items():
        print(f"\n{name} ({rows['haystack']['questions']} questions)")
        print(f"{'reader':<26}" + "".join(f"{c:>14}" for c in cols))
        for r, row in rows.items():
            print(f"{r:<26}" + "".join(f"{row.get(c, '-'):>14}" for c in cols))
    print("\nspeed-up = Haystack's time / ours. Notes: Haystack's reader has no maximum answer length (ours: "
          f"{MAX_ANSWER_TOKENS} tokens) and feeds no token_type_ids to the model; it abstains when its "
          "no-answer score (product of 1 - answer scores) beats the best answer, ours below its threshold.")


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``qa compare-readers``."""
    p = argparse.ArgumentParser(prog="qa compare-readers", description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(DEFAULT_READER), help="QA model folder or hub id for both readers")
    p.add_argument("--questions", type=int, default=DEFAULT_QUESTIONS,
                   help="SQuAD validation questions to time and score")
    p.add_argument("--validation", default=None,
                   help="SQuAD validation file (default: written by qa.lab.train_data's split into a temp "
                        "file)")
    p.add_argument("--article", default=str(DEFAULT_ARTICLE))
    p.add_argument("--article-questions", default=str(DEFAULT_ARTICLE_QUESTIONS))
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--readers", default=",".join(DEFAULT_READERS),
                   help=f"our reader's rows, comma-separated BACKEND:PRECISION (backends "
                        f"{', '.join(BACKENDS)}; precisions {', '.join(PRECISIONS)})")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--report", default=None, metavar="MD", type=report_arg,
                   help="also write the table as a Markdown report (and a .json beside it)")
    args = p.parse_args(argv)
    require("haystack", "haystack_integrations")  # before any work: say which extra is missing
    if args.questions < 1 or args.threads < 1:
        p.error("--questions and --threads must be positive")
    try:
        wanted = [f"{b}:{pr}" for b, pr in parse_readers(args.readers)]
    except ValueError as e:
        p.error(f"--readers: {e}")
    model = Path(args.model) if Path(args.model).exists() else args.model
    if isinstance(model, Path) and not (model / "config.json").is_file():
        p.error(f"{model} is not a model folder: train one with `qa train-reader` or pass --model")
    sets: dict[str, list[tuple[EvalItem, list[Passage]]]] = {}
    article, questions = Path(args.article), Path(args.article_questions)
    if article.is_file() and questions.is_file():
        sets["article (top-3 paragraphs by word overlap)"] = article_inputs(article, questions)
    else:
        print(f"skipping the article set: {article} or {questions} missing", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="qa-compare-") as tmp:
        val = Path(args.validation) if args.validation else None
        if val is None:
            from qa.lab.train_data import write_validation_file

            val = Path(tmp) / "validation.json"
            write_validation_file(val)
        sets["squad validation (reader-only, own paragraph)"] = squad_inputs(val, args.questions)
    result = compare(model, sets, args.threads, wanted)
    if args.json:
        print(json.dumps(result))
    else:
        _print(result)
    if args.report:
        from qa.lab import report

        cols = ["ms_p50", "ms_p95", "exact_match", "f1", "best_span_f1", "speedup_p50"]
        sections = [f"## {name}\n\n{rows['haystack']['questions']} questions, {args.threads} thread(s).\n\n"
                    + report.table(["reader", *cols], [[r, *(row.get(c) for c in cols)]
                                                       for r, row in rows.items()])
                    for name, rows in result["sets"].items()]
        report.write(args.report, title="Our reader on each engine against Haystack's", kind="readers",
                     result=result, sections=sections,
                     command=["qa", "compare-readers", *(argv if argv is not None else sys.argv[1:])])
        print(f"report: {args.report}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
