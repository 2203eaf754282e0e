"""Follow-up questions: the conversation so far as turns, which questions lean on it, and names in text.

A reader sees one question at a time, so "Why did they object?" after "Who objected to the factory
deal?" → "the United States" must reach it made self-contained: ``qa.chat.rewrite`` does that with
weights learned from people's rewrites. This module gives it the turns (``turns`` accepts every form a
surface passes: ``Answer``s, pairs, dicts, chat messages), says which questions are follow-ups (a
pointing word, or very few words: retrieval then reads the previous question too) and finds names.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

#: A question with at most this many words and an earlier turn is a follow-up ("And then?"):
#: retrieval reads it together with the last question.
FOLLOW_UP_MAX_WORDS = 3
#: A question with at most this many content words and no name is elliptical ("Why?", "An
#: alternative to what?"): a follow-up, whatever its length.
ELLIPSIS_MAX_WORDS = 1
#: Words that carry no content of their own, for counting an elliptical question's words.
FUNCTION_WORDS = frozenset(
    "a an the to of in on at for with by from about and or is are was were be been do does did "
    "has have had can could will would should".split()
)
#: Only the latest turns of a history are kept: pronouns point back a few turns, not dozens.
MAX_HISTORY_TURNS = 20

PERSON = frozenset({"he", "she", "him", "his", "her", "hers"})
PLURAL = frozenset({"they", "them", "their", "theirs"})
NEUTER = frozenset({"it", "its"})
THING = PLURAL | NEUTER
DEMONSTRATIVE = frozenset({"that", "this", "these", "those"})
#: Words that point back to an earlier turn (retrieval then reads the last question too).
FOLLOW_UP_WORDS = PERSON | THING | DEMONSTRATIVE | frozenset(
    "there then such same one ones former latter".split()
)
WH_WORDS = frozenset("who whom whose what which when where why how".split())
#: Lower-case words allowed inside a name ("Bank of England", "Democratic Initiatives Foundation").
NAME_JOINERS = frozenset({"of", "and", "the", "de", "for", "on"})
_TOKEN = re.compile(r"[A-Za-z][A-Za-z'’-]*|\d[\d,.]*|\S")
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class Turn:
    """One earlier exchange: the user's question and the answer given (None: abstained or unknown)."""

    question: str
    answer: str | None = None


def turns(history: Sequence[Any] | None) -> list[Turn]:
    """The conversation as turns, from earlier ``Answer``s, (question, answer) pairs, questions or dicts.

    Dicts are ``{"question": ..., "answer": ...}`` or chat messages (``{"role": ..., "content": ...}``):
    each user message pairs with the assistant message after it, whose content is the answer text (or a
    dict or object with ``text``). An answer of None means the system abstained or is not known.
    """
    if history is None:
        return []
    if isinstance(history, (str, bytes)) or not isinstance(history, Sequence):
        raise TypeError("history must be a list of earlier Answers, (question, answer) pairs or questions")
    out: list[Turn] = []
    for item in history[-2 * MAX_HISTORY_TURNS:]:  # chat messages take two items a turn; older: dropped
        if isinstance(item, Turn):
            out.append(item)
        elif isinstance(item, str):
            if item.strip():
                out.append(Turn(item.strip()))
        elif isinstance(item, dict) and "question" in item:  # {"question": ..., "answer": ...}, as /ask takes
            question, answer = item.get("question"), item.get("answer")
            if not isinstance(question, str) or not (answer is None or isinstance(answer, str)):
                raise TypeError("a history entry must be {\"question\": text, \"answer\": text or null}")
            if question.strip():
                out.append(Turn(question.strip(), answer.strip() if answer and answer.strip() else None))
        elif isinstance(item, dict):
            role, content = item.get("role", "user"), item.get("content")
            if role == "user" and isinstance(content, str) and content.strip():
                out.append(Turn(content.strip()))
            elif role == "assistant" and out and out[-1].answer is None:
                text = _answer_text(content)
                if text:
                    out[-1] = Turn(out[-1].question, text)
        elif isinstance(item, (tuple, list)) and len(item) == 2:
            question, answer = item
            if not isinstance(question, str) or not (answer is None or isinstance(answer, str)):
                raise TypeError("a history pair must be (question, answer text or None), "
                                f"got ({type(question).__name__}, {type(answer).__name__})")
            if question.strip():
                out.append(Turn(question.strip(), answer.strip() if answer and answer.strip() else None))
        elif hasattr(item, "question") and hasattr(item, "text"):  # an earlier Answer
            out.append(Turn(str(item.question), item.text or None))
        else:
            raise TypeError(f"history items must be Answers, (question, answer) pairs or questions, "
                            f"not {type(item).__name__}")
    return out[-MAX_HISTORY_TURNS:]


def _answer_text(content: Any) -> str | None:
    """The answer text of an assistant chat message's content (a string, dict or Answer-like object)."""
    if isinstance(content, str):
        return content.strip() or None
    if isinstance(content, dict):
        text = content.get("text") or content.get("answer")
        return text.strip() if isinstance(text, str) and text.strip() else None
    text = getattr(content, "text", None)
    return text.strip() if isinstance(text, str) and text.strip() else None


def is_follow_up(question: str, history: Sequence[Turn]) -> bool:
    """True when the question leans on the conversation: a pointing word, or very few words."""
    if not history:
        return False
    words = [w.lower() for w in _WORD.findall(question)]
    return (len(words) <= FOLLOW_UP_MAX_WORDS or bool(FOLLOW_UP_WORDS.intersection(words))
            or elliptical(question))


def elliptical(question: str) -> bool:
    """True for a question with at most ELLIPSIS_MAX_WORDS content words and no name ("Why?")."""
    words = [w for w in _WORD.findall(question.lower()) if w not in WH_WORDS and w not in FUNCTION_WORDS]
    return len(words) <= ELLIPSIS_MAX_WORDS and not names(question)


def names(text: str) -> list[str]:
    """The names in a text: runs of capitalised words ("Bank of England"), sentence-initial words skipped.

    A capitalised first word counts only when it is not a common sentence opener ("The", "Is", ...).
    """
    tokens = _TOKEN.findall(text)
    found: list[str] = []
    run: list[str] = []
    for i, tok in enumerate(tokens):
        capital = tok[:1].isupper() and tok.lower() not in WH_WORDS
        sentence_start = i == 0 or tokens[i - 1] in {".", "?", "!"}
        if capital and not (sentence_start and tok.lower() in _COMMON_STARTS):
            run.append(tok)
        elif run and tok.lower() in NAME_JOINERS and i + 1 < len(tokens) and tokens[i + 1][:1].isupper():
            run.append(tok)
        else:
            if run:
                found.append(" ".join(run))
            run = []
    if run:
        found.append(" ".join(run))
    return found


#: Capitalised sentence starts that are not names.
_COMMON_STARTS = frozenset(
    "a an the is are was were do does did can could will would should has have had in on at to for "
    "and but or if according".split()
)
