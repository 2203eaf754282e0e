"""Follow-up rewriting measured against people's rewrites: CANARD-format files, corpus BLEU (``qa eval``).

A CANARD-format file is a JSON list of ``{"History": [title, section, q1, a1, ...], "Question",
"Rewrite"}`` (Elgohary et al., EMNLP 2019): each follow-up question with the conversation before it
and the self-contained question a person wrote for it. The rewriter under test gets the question and
the conversation as :class:`~qa.chat.followup.Turn` s, the titles first (as a turn whose question is
the article's title and whose answer is the section's), since they are part of what the person saw.
Scores are sacrebleu's corpus BLEU with its defaults; ``copy_bleu`` is the question left unchanged and
``title_bleu`` the one-line baseline (the first pronoun replaced by the article's title).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qa.chat.followup import Turn
from qa.chat.rewrite import Rewriter as LearnedRewriter
from qa.extras import require

#: QuAC's answers for a turn the section does not answer (CANARD's History writes "I don't know.").
NO_ANSWERS = frozenset({"", "CANNOTANSWER", "I don't know."})
#: The keys of one CANARD-format entry.
FIELDS = ("History", "Question", "Rewrite")

Rewriter = Callable[[str, Sequence[Turn]], str]
#: The one-line baseline every rewriter must beat: the question's first pronoun replaced by the title.
_FIRST_PRONOUN = re.compile(r"\b(he|she|they|it|him|her|his|its|their|them)\b", re.IGNORECASE)


@dataclass(frozen=True)
class RewriteItem:
    """One follow-up: the conversation before it, the question as asked and a person's rewrite."""

    history: tuple[Turn, ...]
    question: str
    rewrite: str
    dialog: str = ""


def is_rewrites_file(path: str | Path) -> bool:
    """True when the file is a JSON list whose first entry has CANARD's History, Question and Rewrite."""
    try:
        with open(path, encoding="utf-8") as f:
            head = f.read(1 << 16).lstrip()
    except (OSError, UnicodeDecodeError):
        return False
    return head.startswith("[") and all(re.search(rf'"{key}"\s*:', head) for key in FIELDS)


def history_turns(history: Sequence[str]) -> tuple[Turn, ...]:
    """CANARD's ``History`` as turns: (title, section) first, then each question with its answer."""
    if len(history) < 2 or len(history) % 2 or not all(isinstance(h, str) for h in history):
        raise ValueError("History must be [title, section, question, answer, ...] as strings")
    pairs = [(history[i], history[i + 1]) for i in range(0, len(history), 2)]
    return tuple(Turn(q.strip(), None if a.strip() in NO_ANSWERS else a.strip()) for q, a in pairs)


def topic_and_turns(history: Sequence[Turn]) -> tuple[tuple[str, ...], tuple[Turn, ...]]:
    """A CANARD history's topic (the article's and the section's titles) and its questions and answers."""
    if not history or not history[0].question:
        return (), tuple(history[1:])
    return (history[0].question, history[0].answer or ""), tuple(history[1:])


def load_rewrites(path: str | Path) -> list[RewriteItem]:
    """The entries of a CANARD-format file; ValueError naming the first one that is not well formed."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, list) or not data:
        raise ValueError(f"{path}: not a CANARD-format file (a JSON list of History, Question, Rewrite)")
    items = []
    for n, entry in enumerate(data):
        if not isinstance(entry, dict) or not all(isinstance(entry.get(k), (str, list)) for k in FIELDS):
            raise ValueError(f"{path}: entry {n} lacks one of {', '.join(FIELDS)}")
        try:
            turns = history_turns(entry["History"])
        except ValueError as e:
            raise ValueError(f"{path}: entry {n}: {e}") from e
        items.append(RewriteItem(turns, entry["Question"].strip(), entry["Rewrite"].strip(),
                                 str(entry.get("QuAC_dialog_id", ""))))
    return items


def _same(a: str, b: str) -> bool:
    """Equal but for case and spacing."""
    return " ".join(a.lower().split()) == " ".join(b.lower().split())


def title_baseline(question: str, history: Sequence[Turn]) -> str:
    """The question with its first pronoun replaced by the article's title (the first turn's question)."""
    found = _FIRST_PRONOUN.search(question)
    if not found or not history:
        return question
    return question[:found.start()] + history[0].question + question[found.end():]


def learned(weights: str | Path | None = None) -> Rewriter:
    """The learned rewriter (``qa.chat.rewrite``) as a rewriter of CANARD turns (the titles first)."""
    model = LearnedRewriter(weights=weights)
    model.warm_up()

    def rewrite(question: str, history: Sequence[Turn]) -> str:
        topic, turns = topic_and_turns(history)
        return model.rewrite(question, turns, topic=topic).text

    rewrite.__qualname__ = "learned"
    rewrite.__module__ = "qa.chat.rewrite"
    return rewrite


def score_rewrites(items: Sequence[RewriteItem], rewritten: Sequence[str]) -> dict[str, Any]:
    """Corpus BLEU and exact match of ``rewritten`` and of the questions as asked, against the rewrites.

    ``rewrite_length_ratio`` is the rewrites' length over the people's, in sacrebleu's tokens.
    """
    require("sacrebleu")
    import sacrebleu

    if len(items) != len(rewritten) or not items:
        raise ValueError("give one rewritten question per item, and at least one item")
    refs = [[i.rewrite for i in items]]
    asked = [i.question for i in items]
    bleu = sacrebleu.corpus_bleu(list(rewritten), refs)
    return {
        "questions": len(items),
        "conversations": len({i.dialog for i in items}),
        "rewrite_bleu": round(bleu.score, 2),
        "rewrite_length_ratio": round(bleu.sys_len / max(bleu.ref_len, 1), 3),  # below 1: brevity penalty
        "copy_bleu": round(sacrebleu.corpus_bleu(asked, refs).score, 2),
        "title_bleu": round(sacrebleu.corpus_bleu([title_baseline(i.question, i.history) for i in items],
                                                  refs).score, 2),
        "rewrite_exact_match": round(100 * sum(map(_same, rewritten, refs[0])) / len(items), 2),
        "copy_exact_match": round(100 * sum(map(_same, asked, refs[0])) / len(items), 2),
        "changed": round(100 * sum(r != q for r, q in zip(rewritten, asked, strict=True)) / len(items), 2),
    }


def evaluate_rewrites(path: str | Path, rewriter: Rewriter | None = None) -> dict[str, Any]:
    """Rewrite every follow-up of a CANARD-format file and score it (``qa eval FILE``; default: learned)."""
    items = load_rewrites(path)
    rewriter = rewriter or learned()
    result = score_rewrites(items, [rewriter(i.question, i.history) for i in items])
    return {"rewriter": f"{rewriter.__module__}.{rewriter.__qualname__}", **result}
