"""Follow-up questions: the conversation so far as turns, and a question made self-contained from them.

A reader sees one question at a time, so "Why did they object?" after "Who objected to the factory
deal?" → "the United States" must reach it as "Why did the United States object?". ``resolve`` replaces
third-person pronouns and "that <noun>" phrases with what they most likely point back to: "he" and
"she", a name from an earlier "who" answer or question; "they", the last short answer; "it", the last
short answer unless a "who" question got it, else a name in the last question; "that foundation", the
earlier name that contains "foundation". ``self_contained`` also fills in elliptical questions ("Why?")
with the last turn. Plain word rules, no model: ``qa eval CONVERSATIONS --json`` measures them
(``followup_f1``), and ``python scripts/make_conversations.py DIR`` writes conversations from held-out
SQuAD articles to measure them on.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

#: A question with at most this many words and an earlier turn is a follow-up ("And then?"):
#: retrieval reads it together with the last question.
FOLLOW_UP_MAX_WORDS = 3
#: A follow-up with at most this many content words and no pronoun to resolve is elliptical ("Why?",
#: "An alternative to what?"): the reader gets it with the last question and answer appended.
#: Measured by ``qa eval CONVERSATIONS --json`` (followup_f1).
ELLIPSIS_MAX_WORDS = 1
#: Words that carry no content of their own, for counting an elliptical question's words.
FUNCTION_WORDS = frozenset(
    "a an the to of in on at for with by from about and or is are was were be been do does did "
    "has have had can could will would should".split()
)
#: Only the latest turns of a history are kept: pronouns point back a few turns, not dozens.
MAX_HISTORY_TURNS = 20
#: An earlier answer of at most this many words can stand in for "they" or "it".
MAX_REFERENT_WORDS = 6

PERSON = frozenset({"he", "she", "him", "his", "her", "hers"})
PLURAL = frozenset({"they", "them", "their", "theirs"})
NEUTER = frozenset({"it", "its"})
THING = PLURAL | NEUTER
POSSESSIVE = frozenset({"his", "their", "its", "hers", "theirs"})
DEMONSTRATIVE = frozenset({"that", "this", "these", "those"})
#: Words that point back to an earlier turn (retrieval then reads the last question too).
FOLLOW_UP_WORDS = PERSON | THING | DEMONSTRATIVE | frozenset(
    "there then such same one ones former latter".split()
)
WH_WORDS = frozenset("who whom whose what which when where why how".split())
#: Lower-case words allowed inside a name ("Bank of England", "Democratic Initiatives Foundation").
NAME_JOINERS = frozenset({"of", "and", "the", "de", "for", "on"})
#: Words after "her" that show it is an object, not a possessive ("did they meet her in ...").
_AFTER_OBJECT = frozenset("in on at to from with for by about as and or but than when if that".split())
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


def _short(answer: str | None) -> str | None:
    """An answer short enough to stand in for a pronoun, without a trailing full stop."""
    if not answer:
        return None
    text = answer.strip().rstrip(".")
    return text if 0 < len(text.split()) <= MAX_REFERENT_WORDS else None


def _is_who(question: str) -> bool:
    """True for questions asking for a person ("Who ...", "Whom ...")."""
    words = _WORD.findall(question.lower())
    return bool(words) and words[0] in {"who", "whom", "whose"}


def referent(kind: str, history: Sequence[Turn]) -> str | None:
    """What a pronoun of ``kind`` ("person", "they" or "it") most likely points back to, latest turn first."""
    for turn in reversed(history):
        answer = _short(turn.answer)
        if kind == "person":
            if answer and _is_who(turn.question) and names(answer):
                return answer
            asked = [n for n in names(turn.question) if len(n.split()) >= 2] or names(turn.question)
            if _is_who(turn.question) and asked:
                return asked[0]
        else:
            # "it" is seldom the person or group a "who" question was answered with ("they" is)
            if answer and not (kind == "it" and _is_who(turn.question)):
                return answer
            asked = names(turn.question)
            if asked:
                return asked[0]
    return None


def _noun_phrase(noun: str, history: Sequence[Turn]) -> str | None:
    """The earlier name that contains ``noun`` ("foundation" → "Democratic Initiatives Foundation")."""
    for turn in reversed(history):
        for text in (turn.answer or "", turn.question):
            for name in names(text):
                if noun.lower() in (w.lower() for w in name.split()):
                    return name
    return None


def self_contained(question: str, history: Sequence[Turn]) -> str:
    """The question as the reader should see it: pronouns resolved, ellipsis filled from the last turn."""
    resolved = resolve(question, history)
    if resolved != question or not history:
        return resolved
    if not elliptical(question):
        return question
    last = history[-1]
    return " ".join(part for part in (question, last.question, last.answer) if part)


def resolve(question: str, history: Sequence[Turn]) -> str:
    """The question with its pronouns and "that <noun>" phrases replaced from the conversation."""
    if not history:
        return question
    tokens = re.split(r"(\W+)", question)  # words at even positions, separators at odd ones
    out = list(tokens)
    words = [(i, t) for i, t in enumerate(tokens) if i % 2 == 0 and t]
    changed = False
    for n, (i, word) in enumerate(words):
        low = word.lower()
        following = words[n + 1][1] if n + 1 < len(words) else ""
        if low in DEMONSTRATIVE and following[:1].islower() and following.lower() not in _AFTER_OBJECT:
            phrase = _noun_phrase(following, history)
            if phrase:
                out[i] = "the"
                out[words[n + 1][0]] = phrase
                changed = True
            continue
        kind = "person" if low in PERSON else "they" if low in PLURAL else "it" if low in NEUTER else None
        if kind is None:
            continue
        target = referent(kind, history)
        if target is None:
            continue
        possessive = low in POSSESSIVE or (
            low == "her" and bool(following) and following[:1].islower()
            and following.lower() not in _AFTER_OBJECT
        )
        out[i] = f"{target}'s" if possessive else target
        changed = True
    return "".join(out) if changed else question
