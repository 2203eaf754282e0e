"""Conversation evaluation: ``qa-conversations-1`` files, each turn asked with the system's own history."""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qa.lab.evaluate import _percentile, _resolve_reader
from qa.lab.squad import exact_match, f1

FORMAT = "qa-conversations-1"
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Conversation:
    """One conversation: its id and its turns as (question, gold answers; empty: unanswerable)."""

    id: str
    turns: tuple[tuple[str, tuple[str, ...]], ...]


def is_conversations_file(path: str | Path) -> bool:
    """True when the file is JSON with ``"version": "qa-conversations-1"``."""
    try:
        with Path(path).open(encoding="utf-8") as f:
            head = f.read(4096)
    except (OSError, UnicodeDecodeError):
        return False
    return f'"{FORMAT}"' in head


def load_conversations(path: str | Path) -> tuple[Path, list[Conversation]]:
    """The source document and the conversations of a ``qa-conversations-1`` file."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ValueError(f"{p}: not a readable {FORMAT} JSON file ({err})") from err
    if not isinstance(data, dict) or data.get("version") != FORMAT:
        raise ValueError(f"{p}: not a {FORMAT} file (its \"version\" must be {FORMAT!r})")
    source = data.get("source")
    if not isinstance(source, str) or not source:
        raise ValueError(f"{p}: \"source\" must name the document the conversations are about")
    candidates = [Path(source), p.parent / source, REPO_ROOT / source]
    found = next((c for c in candidates if c.exists()), None)  # a file or a folder of documents
    if found is None:
        raise ValueError(f"{p}: its source {source!r} was not found (looked in the current folder, "
                         f"beside the file and in the repository)")
    out: list[Conversation] = []
    try:
        for k, conv in enumerate(data["conversations"]):
            turns = tuple((str(t["question"]).strip(), tuple(str(a) for a in t.get("answers") or ()))
                          for t in conv["turns"])
            if turns:
                out.append(Conversation(id=str(conv.get("id", k)), turns=turns))
    except (KeyError, TypeError) as err:
        raise ValueError(f"{p}: a conversation lacks \"turns\" with \"question\" fields ({err})") from err
    if not out:
        raise ValueError(f"{p}: no conversations to evaluate")
    return found, out


def evaluate_conversations(
    path: str | Path,
    *,
    top_k: int = 3,
    reader: Any = None,
    chatbot_factory: Callable[..., Any] | None = None,
    progress: bool = True,
    min_similarity: float | None = None,
) -> dict[str, Any]:
    """Ask every turn with the conversation so far (the system's own answers); return the metrics."""
    source, conversations = load_conversations(path)
    from tqdm import tqdm

    if chatbot_factory is None:
        from qa.chat.chatbot import Chatbot

        chatbot_factory = Chatbot
    reader = _resolve_reader(reader)
    floor = {} if min_similarity is None else {"min_similarity": min_similarity}
    rows: list[tuple[bool, tuple[str, ...], str | None, float]] = []  # first turn?, golds, answer, ms
    total = sum(len(c.turns) for c in conversations)
    with tempfile.TemporaryDirectory(prefix="qa-eval-conv-") as tmp:
        bot = chatbot_factory(sources=[source], index_dir=Path(tmp) / "index", top_k=top_k, reader=reader,
                              **floor)
        if hasattr(bot, "warm_up"):
            bot.warm_up()
        bar = tqdm(total=total, desc="conversations", unit="turn", file=sys.stderr, disable=not progress)
        for conv in conversations:
            history: list[Any] = []
            for n, (question, golds) in enumerate(conv.turns):
                t0 = time.perf_counter()
                answer = bot.ask(question, history=list(history))
                rows.append((n == 0, golds, answer.text, 1000 * (time.perf_counter() - t0)))
                history.append(answer)
                bar.update(1)
        bar.close()
    return conversation_summary(len(conversations), rows)


def conversation_summary(conversations: int, rows: list[tuple[bool, tuple[str, ...], str | None, float]]
                         ) -> dict[str, Any]:
    """The metrics of ``evaluate_conversations`` from (first turn?, golds, answer, milliseconds) rows."""
    def mean(values: list[float]) -> float | None:
        return round(sum(values) / len(values), 2) if values else None

    f1s = [f1(answer, golds) for _, golds, answer, _ in rows]
    first = [s for s, (is_first, *_rest) in zip(f1s, rows, strict=True) if is_first]
    follow = [s for s, (is_first, *_rest) in zip(f1s, rows, strict=True) if not is_first]
    no = [answer is None for _, golds, answer, _ in rows if not golds]
    first_ms = [ms for is_first, _, _, ms in rows if is_first]
    follow_ms = [ms for is_first, _, _, ms in rows if not is_first]
    p_first, p_follow = _percentile(first_ms, 50), _percentile(follow_ms, 50)
    return {
        "conversations": conversations,
        "turns": len(rows),
        "first_turn_f1": mean(first),
        "followup_f1": mean(follow),
        "exact_match": mean([exact_match(answer, golds) for _, golds, answer, _ in rows]),
        "f1": mean(f1s),
        "no_answer_accuracy": round(100 * sum(no) / len(no), 2) if no else None,
        "false_abstentions": mean([100.0 * (answer is None) for _, golds, answer, _ in rows if golds]),
        "latency_ms_p50_first": None if p_first is None else round(p_first, 1),
        "latency_ms_p50_followup": None if p_follow is None else round(p_follow, 1),
    }
