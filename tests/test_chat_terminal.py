"""qa chat: the terminal conversation, driven through its input function and through stdin."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FakeEmbedder, FakeReader

from qa.chat.chatbot import Chatbot
from qa.chat.terminal import HELP, chat, format_reply, printable
from qa.schema import Answer, Hit, Passage

REPO = Path(__file__).resolve().parent.parent


def _script(lines: list[str]):
    """An input() stand-in that returns the lines, then raises EOFError (Ctrl-D)."""
    it = iter(lines)

    def read(prompt: str) -> str:
        try:
            return next(it)
        except StopIteration:
            raise EOFError from None

    return read


def test_chat_keeps_history_clears_it_and_shows_sources(tmp_path: Path, article_dir: Path) -> None:
    bot = Chatbot(sources=[article_dir], index_dir=tmp_path / "index", embedder=FakeEmbedder(),
                  reader=FakeReader(), log=lambda m: None)
    asked: list[tuple[str, int]] = []
    real_ask = bot.ask

    def ask(question, history=None):
        asked.append((question, len(history or [])))
        return real_ask(question, history=history)

    bot.ask = ask  # type: ignore[method-assign]
    out: list[str] = []
    status = chat(bot, read=_script(["Who objected to the factory deal?", "Why did they object?", "/sources",
                                     "/clear", "", "   ", "/nope", "x" * 2000, "Who objected?"]),
                  write=out.append)
    assert status == 0
    assert asked == [("Who objected to the factory deal?", 0), ("Why did they object?", 1),
                     ("x" * 2000, 0), ("Who objected?", 0)]  # /clear forgot the conversation
    text = "\n".join(out)
    assert HELP in text and "(conversation cleared)" in text and "Unknown command /nope" in text
    assert "[1] " in text and "article.txt" in text  # /sources lists the last answer's passages
    assert "too long" in text  # a bad question gets the bot's message and the chat goes on


def test_chat_survives_ctrl_c_and_quits_on_command() -> None:
    class Bot:
        def describe(self) -> str:
            return "fake"

    calls = iter([KeyboardInterrupt(), "/sources", "/quit", "never read"])

    def read(prompt: str) -> str:
        item = next(calls)
        if isinstance(item, BaseException):
            raise item
        return item

    out: list[str] = []
    assert chat(Bot(), read=read, write=out.append) == 0
    assert "Nothing asked yet." in out


def test_reply_shows_the_sentence_and_strips_terminal_escapes() -> None:
    text = "The \x1b]0;pwned\x07bridge opened in 1990. It is long."
    p = Passage("d#0", "d.txt", 0, len(text), text)
    start = text.index("1990")
    a = Answer("When?", "1990", 0.7, start, start + 4, "d.txt", (Hit(p, 0.5),), "d#0",
               context_start=0, context_end=text.index(".") + 1)
    reply = format_reply(a)
    assert "\x1b" not in reply and "\x07" not in reply
    assert reply.splitlines()[0] == "1990" and "bridge opened in 1990." in reply and "70%" in reply
    assert printable("a\x1b[31mb\tc\n") == "a [31mb\tc\n"
    assert "does not say" in format_reply(Answer("Q?", None, 0.05, None, None, None))
    unsure = format_reply(dataclasses.replace(a, score=0.42))
    assert unsure.splitlines()[0] == "Possibly: 1990" and "42%" in unsure


@pytest.mark.slow
def test_qa_chat_over_stdin_answers_the_follow_up(tmp_path: Path) -> None:
    """The real command over stdin: the example follow-up pair, /sources, /clear, the follow-up again."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    lines = "\n".join(["Who objected to the factory deal?", "Why did they object?", "/sources", "/clear",
                       "Why did they object?", ""])
    command = [sys.executable, "-m", "qa.cli", "chat", "--index-dir", str(tmp_path / "index")]
    proc = subprocess.run(command, input=lines, capture_output=True, text=True, cwd=REPO, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    replies = proc.stdout.split("you> ")
    assert "the United States" in replies[1]
    assert "military capabilities of China" in replies[2] and "confidence" in replies[2]
    assert "[1] qa/seeds/article.txt" in replies[3]
    assert "military capabilities of China" not in replies[-1].split("[1]")[0], (
        "after /clear the same follow-up has no history to lean on")
