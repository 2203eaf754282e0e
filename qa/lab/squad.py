"""SQuAD-format questions: the file, its items, the official v1.1 metrics and an item read as one passage."""

from __future__ import annotations

import json
import random
import re
import string
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qa.schema import Passage

#: Seed for pairing questions with contexts of other articles (generated unanswerable pairs).
NEGATIVE_SEED = 13

_PUNCTUATION = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


@dataclass(frozen=True)
class EvalItem:
    """One question with its paragraph; no answers means unanswerable."""

    qid: str
    question: str
    context: str
    answers: tuple[str, ...]
    answer_starts: tuple[int, ...]
    title: str
    paragraph: int
    article: int = 0

    @property
    def answerable(self) -> bool:
        """True when the question has at least one gold answer."""
        return bool(self.answers)

    @property
    def name(self) -> str:
        """The paragraph's file name: ``{article:03d}-{paragraph:03d}.txt``."""
        return f"{self.article:03d}-{self.paragraph:03d}.txt"


def normalize_answer(text: str) -> str:
    """Lowercase, drop punctuation and the articles a/an/the, collapse whitespace (SQuAD v1.1)."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _check(pred: str | None, golds: Sequence[str]) -> None:
    """Validate metric arguments."""
    if pred is not None and not isinstance(pred, str):
        raise TypeError(f"pred must be a str or None (abstained), got {type(pred).__name__}")
    if isinstance(golds, str) or not all(isinstance(g, str) for g in golds):
        raise TypeError("golds must be a sequence of answer strings (empty: unanswerable)")


def _f1_one(pred: str, gold: str) -> float:
    """Token-overlap F1 of two answers, 0..1."""
    p, g = normalize_answer(pred).split(), normalize_answer(gold).split()
    same = sum((Counter(p) & Counter(g)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(g)
    return 2 * precision * recall / (precision + recall)


def exact_match(pred: str | None, golds: Sequence[str]) -> float:
    """100 when the normalised prediction equals a normalised gold, else 0; no golds: 100 iff pred is None."""
    _check(pred, golds)
    if not golds:
        return 100.0 if pred is None else 0.0
    if pred is None:
        return 0.0
    p = normalize_answer(pred)
    return 100.0 if any(p == normalize_answer(g) for g in golds) else 0.0


def f1(pred: str | None, golds: Sequence[str]) -> float:
    """Token F1 (0..100), the max over golds; no golds: 100 iff pred is None."""
    _check(pred, golds)
    if not golds:
        return 100.0 if pred is None else 0.0
    if pred is None:
        return 0.0
    return 100.0 * max(_f1_one(pred, g) for g in golds)


def load_squad(path: str | Path) -> list[EvalItem]:
    """Read a SQuAD v1.1/v2.0 JSON file; ``is_impossible`` or no answers gives an unanswerable item."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{p}: no such SQuAD file "
                         f"(write the validation one with `python -m qa.lab.train --write-validation FILE`)")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))["data"]
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{p}: not a SQuAD-format JSON file ({err})") from err
    items: list[EvalItem] = []
    for a, art in enumerate(data):
        title = str(art.get("title") or f"article-{a}")
        for k, para in enumerate(art["paragraphs"]):
            for qa in para["qas"]:
                answers = [] if qa.get("is_impossible") else (qa.get("answers") or [])
                items.append(EvalItem(
                    qid=str(qa["id"]), question=qa["question"].strip(), context=para["context"],
                    answers=tuple(x["text"] for x in answers),
                    answer_starts=tuple(int(x["answer_start"]) for x in answers),
                    title=title, paragraph=k, article=a,
                ))
    return items


def _items(path_or_items: str | Path | Iterable[EvalItem]) -> list[EvalItem]:
    """Items from a path or an iterable of items."""
    if isinstance(path_or_items, (str, Path)):
        return load_squad(path_or_items)
    items = list(path_or_items)
    if not all(isinstance(x, EvalItem) for x in items):
        raise TypeError("pass a SQuAD file path or a list of EvalItem (see load_squad)")
    return items


def _passage(item: EvalItem, context: str | None = None) -> Passage:
    """The item's paragraph (or another context) as one whole-text passage."""
    text = item.context if context is None else context
    return Passage(id=f"{item.name}#0", source=item.name, start=0, end=len(text), text=text)


def _best_span(reader: Any, question: str, passages: list[Passage]) -> Any:
    """The reader's best span whatever its confidence, or None when it offers none."""
    spans = reader.read(question, passages, top_n=1)
    return spans[0] if spans else None


def negative_pairs(items: Sequence[EvalItem], *, seed: int = NEGATIVE_SEED) -> list[EvalItem]:
    """One unanswerable item per question: the question with a context from a different article."""
    contexts: dict[str, list[str]] = {}
    for it in items:
        ctx = contexts.setdefault(it.title, [])
        if not ctx or ctx[-1] != it.context:
            ctx.append(it.context)
    titles = sorted(contexts)
    if len(titles) < 2:
        raise ValueError("generating unanswerable pairs needs questions from at least two articles")
    rng = random.Random(seed)
    out = []
    for it in items:
        other = rng.choice([t for t in titles if t != it.title])
        ctx = rng.choice(contexts[other])
        out.append(EvalItem(qid=f"{it.qid}-neg", question=it.question, context=ctx, answers=(),
                            answer_starts=(), title=other, paragraph=it.paragraph, article=it.article))
    return out


def sample_questions(items: Sequence[EvalItem], n: int, *, seed: int = NEGATIVE_SEED) -> list[EvalItem]:
    """A fixed random sample of ``n`` questions (all of them when there are fewer), in file order."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"the sample size must be a positive integer, got {n!r}")
    if n >= len(items):
        return list(items)
    keep = sorted(random.Random(seed).sample(range(len(items)), n))
    return [items[k] for k in keep]
