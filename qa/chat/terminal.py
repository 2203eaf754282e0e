"""``qa chat``: a conversation in the terminal, with history, line editing and a few slash commands."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from typing import Any

from qa.schema import UNCERTAIN_PREFIX

PROMPT = "you> "
HELP = ("Ask about the documents; follow-up questions use the conversation. "
        "/sources: the passages of the last answer · /clear: forget the conversation · /help · "
        "Ctrl-D: leave")
ABSTAIN = "The article does not say."


def printable(text: str) -> str:
    """Text safe for a terminal: control characters (escape sequences included) become spaces."""
    return "".join(c if c in "\n\t" or unicodedata.category(c)[0] != "C" else " " for c in text)


def format_reply(answer: Any) -> str:
    """The answer as terminal text: the answer, its sentence, the confidence and where it stands."""
    if answer.abstained:
        return f"{ABSTAIN} (best confidence {answer.score:.0%})"
    lines = [f"{UNCERTAIN_PREFIX} {printable(answer.text)}" if answer.uncertain else printable(answer.text)]
    if answer.context is not None and answer.context.strip() != answer.text.strip():
        lines.append(f"  “{printable(' '.join(answer.context.split()))}”")
    lines.append(f"  confidence {answer.score:.0%} · {printable(str(answer.citation))} "
                 f"[{answer.start}:{answer.end}]")
    return "\n".join(lines)


def format_sources(answer: Any) -> str:
    """The passages an answer was read from, numbered, each with its source and offsets."""
    if not answer.passages:
        return "No passages were retrieved."
    return "\n\n".join(
        f"[{i}] {printable(hit.citation)} [{hit.start}:{hit.end}] score {hit.score:.2f}\n    "
        f"{printable(' '.join(hit.text.split()))}"
        for i, hit in enumerate(answer.passages, 1)
    )


def chat(bot: Any, *, read: Callable[[str], str] = input, write: Callable[[str], None] = print) -> int:
    """Run the conversation until end of input (Ctrl-D) or ``/quit``; return the exit status."""
    try:
        import readline  # noqa: F401  (line editing and recall for input(), where the platform has it)
    except ImportError:  # pragma: no cover - Windows
        pass
    write(f"qa chat · {bot.describe()}")
    write(HELP)
    history: list[Any] = []
    while True:
        try:
            line = read(PROMPT)
        except EOFError:
            write("")
            return 0
        except KeyboardInterrupt:  # Ctrl-C drops the line being typed, as in a shell
            write("")
            continue
        line = line.strip()
        if not line:
            continue
        if line.startswith("/"):
            command = line.split()[0].lower()
            if command in {"/quit", "/exit"}:
                return 0
            if command == "/clear":
                history.clear()
                write("(conversation cleared)")
            elif command == "/sources":
                write(format_sources(history[-1]) if history else "Nothing asked yet.")
            elif command == "/help":
                write(HELP)
            else:
                write(f"Unknown command {printable(command)}. {HELP}")
            continue
        try:
            answer = bot.ask(line, history=history)
        except ValueError as err:  # the bot's message for a bad question
            write(str(err))
            continue
        history.append(answer)
        write(format_reply(answer))
