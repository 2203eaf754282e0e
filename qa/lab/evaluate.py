"""Evaluation on SQuAD-format files: v1.1/v2.0 scores, abstention, calibration, recall, latency."""

from __future__ import annotations

import math
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from qa.chat.chatbot import shown_confidence
from qa.lab.calibrate import (
    RIGHT_F1,
    best_f1_threshold,
    check_folds,
    cross_validate,
    expected_calibration_error,
    reliability,
)
from qa.lab.squad import EvalItem, _best_span, _items, _passage, exact_match, f1, load_squad, negative_pairs
from qa.schema import UNCERTAIN_BELOW

#: Thresholds scanned by ``calibration``: 0.05, 0.10, ..., 0.95.
THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 20))
#: Confidence levels of the calibration table (answers shown at or above each).
CONFIDENCE_LEVELS = (0.5, 0.7, 0.9)
#: Default top-k passages for the full pipeline.
DEFAULT_TOP_K = 3


def _resolve_reader(reader: Any) -> Any:
    """A reader object: the default Reader for None, a Reader over a folder/id for a str or Path."""
    if reader is None or isinstance(reader, (str, Path)):
        from qa.reader.read import Reader

        return Reader() if reader is None else Reader(model=reader)
    if not all(hasattr(reader, a) for a in ("read", "threshold")):
        raise TypeError("reader must be a Reader-like object (read, answer, threshold), "
                        "a model folder or None")
    return reader


def _percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (linear interpolation), None for no values."""
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def _pct(num: float, den: int) -> float | None:
    """100 * num / den rounded, None when den is 0."""
    return None if den == 0 else round(100.0 * num / den, 2)


# --- evaluation -------------------------------------------------------------------------------------


def evaluate(
    path: str | Path,
    *,
    reader_only: bool,
    top_k: int = DEFAULT_TOP_K,
    reader: Any = None,
    chatbot_factory: Callable[..., Any] | None = None,
    progress: bool = True,
    min_similarity: float | None = None,
    database: str | None = None,
) -> dict[str, Any]:
    """Run every question of a SQuAD file through the reader (own context) or the full chatbot.

    ``database``: a PostgreSQL URL; the full chatbot then keeps its index there, in a schema of its own
    that is dropped afterwards.
    """
    if not isinstance(reader_only, bool):
        raise TypeError("reader_only must be True (own context per question) or False (full pipeline)")
    if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
        raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
    items = load_squad(path)
    if not items:
        raise ValueError(f"{path}: no questions to evaluate")
    from tqdm import tqdm

    reader = _resolve_reader(reader)
    preds: list[str | None] = []
    shown: list[float] = []  # the confidence people see with each answer given (abstentions: none)
    best: list[Any] = []  # each question's best span, answered or not
    latencies: list[float] = []
    recalled: list[bool] = []
    bar = tqdm(total=len(items), desc="evaluate", unit="q", file=sys.stderr, disable=not progress)
    if reader_only:
        if hasattr(reader, "warm_up"):
            reader.warm_up()
        for item in items:
            t0 = time.perf_counter()
            span = _best_span(reader, item.question, [_passage(item)])
            latencies.append(1000 * (time.perf_counter() - t0))
            best.append(span)
            preds.append(None if span is None or span.score < reader.threshold else span.text)
            if preds[-1] is not None:
                shown.append(shown_confidence(reader, span))
            bar.update(1)
    else:
        if chatbot_factory is None:
            from qa.chat.chatbot import Chatbot

            chatbot_factory = Chatbot
        with tempfile.TemporaryDirectory(prefix="qa-eval-") as tmp:
            docs = Path(tmp) / "docs"
            docs.mkdir()
            for item in items:
                f = docs / item.name
                if not f.exists():
                    with f.open("w", encoding="utf-8", newline="") as out:
                        out.write(item.context)
            floor: dict[str, Any] = {} if min_similarity is None else {"min_similarity": min_similarity}
            if database is not None:
                import uuid

                floor.update(database=database, database_schema=f"qa_eval_{uuid.uuid4().hex[:12]}")
            bot = chatbot_factory(sources=[docs], index_dir=Path(tmp) / "index", top_k=top_k, reader=reader,
                                  **floor)
            if hasattr(bot, "warm_up"):
                bot.warm_up()
            candidates = hasattr(bot, "candidate") and hasattr(bot, "reply")  # the span, for best_f1
            for item in items:
                t0 = time.perf_counter()
                if candidates:  # ask in two halves, to keep the span (its score: the one abstention compares)
                    hits, span = bot.candidate(item.question)
                    answer = bot.reply(item.question, hits, span)
                    best.append(span)
                else:
                    answer = bot.ask(item.question)
                latencies.append(1000 * (time.perf_counter() - t0))
                preds.append(None if answer.text is None else answer.text)
                if answer.text is not None:
                    shown.append(answer.score)
                if item.answerable:
                    recalled.append(_recalled(item, answer.passages))
                bar.update(1)
            if database is not None and hasattr(getattr(bot, "index", None), "drop"):
                bot.index.drop()  # the evaluation's own schema
    bar.close()
    return _summary(items, preds, latencies, None if reader_only else recalled,
                    best if len(best) == len(items) else None, shown)


def _recalled(item: EvalItem, hits: Sequence[Any]) -> bool:
    """True when a retrieved passage of the item's paragraph contains a gold answer start."""
    for hit in hits:
        if Path(str(hit.source)).name != item.name:
            continue
        if any(hit.start <= s < hit.end for s in item.answer_starts):
            return True
    return False


def _summary(items: list[EvalItem], preds: list[str | None], latencies: list[float],
             recalled: list[bool] | None, best: list[Any] | None = None,
             shown: Sequence[float] = ()) -> dict[str, Any]:
    """The metrics dictionary returned by ``evaluate``.

    ``best``: each question's best span whatever its confidence (None: unknown), for SQuAD 2.0's
    ``best_f1`` (the F1 at the best confidence threshold, answering when the confidence reaches
    ``best_f1_threshold``) and ``no_abstention_f1`` (every question answered). ``shown``: the
    confidence shown with each answer given, in order, for how far it matches how often they are right.
    """
    ems = [exact_match(p, it.answers) for it, p in zip(items, preds, strict=True)]
    f1s = [f1(p, it.answers) for it, p in zip(items, preds, strict=True)]
    has = [k for k, it in enumerate(items) if it.answerable]
    no = [k for k, it in enumerate(items) if not it.answerable]
    p50, p95 = _percentile(latencies, 50), _percentile(latencies, 95)
    return {
        "questions": len(items),
        "exact_match": round(sum(ems) / len(items), 2),
        "f1": round(sum(f1s) / len(items), 2),
        "has_answer_f1": round(sum(f1s[k] for k in has) / len(has), 2) if has else None,
        "no_answer_accuracy": _pct(sum(preds[k] is None for k in no), len(no)),
        "false_abstentions": _pct(sum(preds[k] is None for k in has), len(has)),
        "recall_at_k": None if recalled is None else _pct(sum(recalled), len(recalled)),
        "latency_ms_p50": None if p50 is None else round(p50, 1),
        "latency_ms_p95": None if p95 is None else round(p95, 1),
        **_best_threshold(items, best),
        **_answers_shown(f1s, preds, shown),
    }


def _answers_shown(f1s: Sequence[float], preds: list[str | None], shown: Sequence[float]) -> dict[str, Any]:
    """Of the answers given: the share right (F1 >= ``RIGHT_F1``), mean confidence shown, how many unsure.

    ``f1s``: each question's F1 (an answer to an unanswerable question scores 0).
    """
    given = [f for f, p in zip(f1s, preds, strict=True) if p is not None]
    if not given or len(shown) != len(given):
        return {"answers_right": None, "answers_confidence_shown": None, "answers_uncertain": None}
    right = sum(f >= RIGHT_F1 for f in given)
    return {"answers_right": _pct(right, len(given)),
            "answers_confidence_shown": round(100 * sum(shown) / len(shown), 2),
            "answers_uncertain": sum(c < UNCERTAIN_BELOW for c in shown)}


def _best_threshold(items: list[EvalItem], best: list[Any] | None) -> dict[str, Any]:
    """``best_f1``, ``best_f1_threshold`` and ``no_abstention_f1`` from the best spans (None without)."""
    if best is None:
        return {"best_f1": None, "best_f1_threshold": None, "no_abstention_f1": None}
    scores = [-1.0 if s is None else float(s.score) for s in best]
    f1s = [f1(None if s is None else s.text, it.answers) if it.answerable else 0.0
           for it, s in zip(items, best, strict=True)]
    best_f1, threshold = best_f1_threshold(scores, f1s, [it.answerable for it in items])
    never = [f if it.answerable else (100.0 if s is None else 0.0)
             for it, s, f in zip(items, best, f1s, strict=True)]
    return {"best_f1": round(best_f1, 2),
            "best_f1_threshold": None if not math.isfinite(threshold) else round(threshold, 4),
            "no_abstention_f1": round(sum(never) / len(items), 2)}


# --- threshold tuning -------------------------------------------------------------------------------


def lookalike_pairs(items: Sequence[EvalItem]) -> list[EvalItem]:
    """Each answerable question with its look-alike: the BM25-best paragraph of another article.

    The paragraph holds none of the question's answers; these are the passages a real corpus offers
    when it does not answer (harder to reject than ``negative_pairs``). Questions without such a
    paragraph are left out. The search is ``qa.lab.train_negatives.hard_negatives``, the chatbot's BM25
    settings.
    """
    from qa.lab.train_data import Example
    from qa.lab.train_negatives import hard_negatives

    examples = [Example(it.qid, it.question, it.context, it.answers[0] if it.answers else "",
                        it.answer_starts[0] if it.answers else -1, "eval", it.title) for it in items]
    wanted = [e for e in examples if e.answer]
    if not wanted:
        return []
    by_id = {it.qid: it for it in items}
    title_of = {e.context: e.doc for e in examples}
    out = []
    for neg in hard_negatives(wanted, examples):
        it = by_id[neg.qid.removesuffix("-hard")]
        if any(a.lower() in neg.context.lower() for a in it.answers):
            continue
        out.append(EvalItem(qid=f"{it.qid}-lookalike", question=it.question, context=neg.context,
                            answers=(), answer_starts=(), title=title_of[neg.context], paragraph=it.paragraph,
                            article=it.article))
    return out


def calibration(path_or_items: str | Path | Iterable[EvalItem], reader: Any, *,
                negatives: bool | None = None, progress: bool = False, folds: int | None = None
                ) -> dict[str, Any]:
    """How far the reader's confidence can be trusted, reader only.

    Right means F1 >= 50; an answer to an unanswerable question is wrong. Returns the threshold scan,
    the share right of answers shown at each of CONFIDENCE_LEVELS, the reliability table (equal-width
    confidence bins), the expected calibration error and the Brier score.
    ``negatives`` (default: when the questions include no unanswerable one, as in SQuAD v1.1): add two
    unanswerable pairs per question, one with a random paragraph of another article
    (``negative_pairs``) and one with a look-alike (``lookalike_pairs``). The best threshold maximises
    accuracy over all questions and pairs (ties: the one nearer 0.5). ``folds``: also cross-validate the
    stored rule (``qa.lab.calibrate.cross_validate``) with the articles as that many folds.
    """
    items = _items(path_or_items)
    if not items:
        raise ValueError("no questions to calibrate on")
    if negatives is None:
        negatives = all(it.answerable for it in items)
    lookalike: set[int] = set()
    if negatives:
        random_pairs = negative_pairs(items)  # raises first when there is only one article
        found = lookalike_pairs(items)
        start = len(items) + len(random_pairs)
        lookalike = set(range(start, start + len(found)))
        items = items + random_pairs + found
    if folds is not None:
        check_folds(folds, len({it.title for it in items}))  # before minutes of reading
    from tqdm import tqdm

    reader = _resolve_reader(reader)
    scores: list[float] = []
    right: list[bool] = []  # answering this item with the best span is right
    margins: list[tuple[float, float, bool]] = []  # qa.lab.calibrate.measure's rows, for the folds
    for item in tqdm(items, desc="calibrate", unit="q", file=sys.stderr, disable=not progress):
        span = _best_span(reader, item.question, [_passage(item)])
        scores.append(0.0 if span is None else float(span.score))
        got = 0.0 if span is None or not item.answerable else f1(span.text, item.answers)
        right.append(span is not None and item.answerable and got >= RIGHT_F1)
        margin = getattr(span, "margin", None)
        margins.append((-math.inf if margin is None else float(margin), got, item.answerable))
    has = [k for k, it in enumerate(items) if it.answerable]
    no = [k for k, it in enumerate(items) if not it.answerable]
    other = [k for k in no if k not in lookalike]  # the file's own unanswerables and random pairs
    rows = []
    for t in THRESHOLDS:
        ok = sum(right[k] for k in has if scores[k] >= t) + sum(scores[k] < t for k in no)
        rows.append({
            "threshold": t,
            "accuracy": _pct(ok, len(items)),
            "answered_right": _pct(sum(right[k] for k in has if scores[k] >= t), len(has)),
            "no_answer_accuracy": _pct(sum(scores[k] < t for k in other), len(other)),
            "lookalike_no_answer_accuracy": _pct(sum(scores[k] < t for k in lookalike), len(lookalike)),
            "false_abstentions": _pct(sum(scores[k] < t for k in has), len(has)),
        })
    best = max(rows, key=lambda r: (r["accuracy"], -abs(r["threshold"] - 0.5)))
    table = []
    for level in CONFIDENCE_LEVELS:
        above = [k for k in range(len(items)) if scores[k] >= level]
        table.append({"confidence_at_least": level, "answered": len(above),
                      "right": _pct(sum(right[k] for k in above), len(above))})
    brier = sum((s - r) ** 2 for s, r in zip(scores, right, strict=True)) / len(items)
    return {
        "questions": len(items),
        "answerable": len(has),
        "unanswerable": len(no),
        "lookalike": len(lookalike),
        "right_means": f"F1 >= {RIGHT_F1:g} (SQuAD normalisation); answering an unanswerable is wrong",
        "reader_threshold": round(float(reader.threshold), 4),
        "best_threshold": best["threshold"],
        "best_accuracy": best["accuracy"],
        "thresholds": rows,
        "calibration": table,
        "reliability": reliability(scores, right),
        "ece": round(expected_calibration_error(scores, right), 4),
        "brier": round(brier, 4),
        **({} if folds is None else
           {"cross_validated": cross_validate(margins, [it.title for it in items], folds=folds)}),
    }
