"""Tests for qa.cli: the JSON of `qa ask --json`, `qa index`, errors without tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import qa.cli
from qa.chat.chatbot import Chatbot

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def fake_cli(monkeypatch, fake_embedder, fake_reader):
    """Make the CLI build chatbots with the fake models."""

    def factory(**kw):
        kw.pop("reader", None)
        return Chatbot(embedder=fake_embedder, reader=fake_reader, log=lambda m: None, **kw)

    monkeypatch.setattr(qa.cli, "Chatbot", factory)
    return factory


def test_ask_json_prints_one_object(fake_cli, tmp_path, article_dir, article_text, capsys):
    code = qa.cli.main(["ask", "Who tried to buy the factory?", "--json", "--sources", str(article_dir),
                        "--index-dir", str(tmp_path / "idx")])
    out = capsys.readouterr().out
    assert code == 0
    obj = json.loads(out)
    assert out.count("\n") == 1
    assert set(obj) == {"question", "answer", "score", "uncertain", "start", "end", "source", "context",
                        "context_start", "context_end", "page", "passages"}
    assert obj["uncertain"] == (obj["answer"] is not None and obj["score"] < 0.5)
    assert article_text[obj["start"] : obj["end"]] == obj["answer"]
    assert article_text[obj["context_start"] : obj["context_end"]] == obj["context"]
    for p in obj["passages"]:
        assert set(p) == {"id", "source", "start", "end", "text", "score", "page"}
        assert article_text[p["start"] : p["end"]] == p["text"]


def test_ask_plain_and_index_reuse(fake_cli, tmp_path, article_dir, capsys):
    idx = str(tmp_path / "idx")
    assert qa.cli.main(["index", str(article_dir), "--index-dir", idx]) == 0
    captured = capsys.readouterr()
    assert "article.txt" in captured.out
    assert "100%" in captured.err, "qa index shows a progress bar on stderr"
    assert qa.cli.main(["ask", "Who tried to buy the factory?", "--index-dir", idx]) == 0
    out = capsys.readouterr().out
    assert "Chinese" in out and "confidence" in out


def test_ask_and_chat_show_the_progress_of_a_build(fake_cli, tmp_path, article_dir, capsys, monkeypatch):
    code = qa.cli.main(["ask", "Who tried to buy the factory?", "--json", "--sources", str(article_dir),
                        "--index-dir", str(tmp_path / "idx")])
    captured = capsys.readouterr()
    assert code == 0 and "Embedding" in captured.err and "100%" in captured.err
    assert json.loads(captured.out)["answer"], "the bar stays on stderr, out of the JSON"
    monkeypatch.setattr("qa.chat.terminal.chat", lambda bot: 0)  # the index is built before the conversation
    assert qa.cli.main(["chat", "--sources", str(article_dir), "--index-dir", str(tmp_path / "idx2")]) == 0
    assert "Embedding" in capsys.readouterr().err


@pytest.mark.parametrize("question", ["", "   ", "x" * 5000])
def test_bad_question_is_a_clear_error(fake_cli, tmp_path, article_dir, capsys, question):
    code = qa.cli.main(["ask", question, "--sources", str(article_dir), "--index-dir", str(tmp_path / "i")])
    err = capsys.readouterr().err
    assert code == 2 and "error:" in err and "Traceback" not in err


def test_missing_source_is_a_clear_error(fake_cli, tmp_path, capsys):
    code = qa.cli.main(["ask", "Why?", "--sources", str(tmp_path / "gone.txt"), "--index-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "gone.txt" in err


@pytest.mark.slow
def test_console_script_answers_with_valid_offsets(tmp_path):
    """The installed `qa` command with the real models, in a fresh process."""
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    cmd = [sys.executable, "-m", "qa.cli", "ask", "Why does Turkey want Ukrainian engines?", "--json",
           "--index-dir", str(tmp_path / "index")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    obj = json.loads(proc.stdout)
    text = (REPO / "seeds" / "article.txt").read_text(encoding="utf-8")
    assert obj["source"] in (None, "qa/seeds/article.txt")
    if obj["answer"] is not None:
        assert text[obj["start"] : obj["end"]] == obj["answer"]
    assert any("engine" in p["text"] for p in obj["passages"])


def test_min_similarity_option_reaches_the_chatbot(monkeypatch, tmp_path) -> None:
    import qa.cli

    seen = {}

    class Spy:
        def __init__(self, **kw):
            seen.update(kw)

        def warm_up(self, **kw):
            raise ValueError("stop here")

    monkeypatch.setattr(qa.cli, "Chatbot", Spy)
    args = ["ask", "Who?", "--index-dir", str(tmp_path / "i"), "--min-similarity", "0.35"]
    assert qa.cli.main(args) == 2  # the spy's error comes back as a clear CLI error
    assert seen["min_similarity"] == 0.35
    assert qa.cli.build_parser().parse_args(["ask", "Who?"]).min_similarity == -1.0  # off by default


def test_empty_path_is_refused_by_index_and_ask(fake_cli, tmp_path, capsys):
    assert qa.cli.main(["index", "", "--index-dir", str(tmp_path / "idx")]) == 2
    assert "empty path" in capsys.readouterr().err
    assert qa.cli.main(["ask", "Who?", "--sources", "", "--index-dir", str(tmp_path / "idx")]) == 2
    assert "empty path" in capsys.readouterr().err
    assert not (tmp_path / "idx").exists()


def test_ask_prints_no_terminal_escapes_from_documents(fake_cli, tmp_path, capsys):
    doc = tmp_path / "doc.txt"
    doc.write_text("\x1b]0;PWNED\x07The \x1b[31mfactory\x1b[0m was sold to Motor Sich in 1990. "
                   "It makes engines.", encoding="utf-8")
    code = qa.cli.main(["ask", "Who bought the factory?", "--sources", str(doc),
                        "--index-dir", str(tmp_path / "idx")])
    out = capsys.readouterr().out
    assert code == 0 and "factory" in out
    assert "\x1b" not in out and "\x07" not in out


def test_an_index_whose_sources_are_gone_is_never_rebuilt_from_seeds(fake_cli, tmp_path, capsys):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "doc.md").write_text("The mill was built by Anna Berg in 1990.\n", encoding="utf-8")
    (notes / "page.html").write_text("<p>The bridge opened in 2001.</p>", encoding="utf-8")
    idx = tmp_path / "idx"
    files = [str(notes / "doc.md"), str(notes / "page.html")]
    assert qa.cli.main(["index", *files, "--index-dir", str(idx)]) == 0
    capsys.readouterr()
    before = {p.name: p.read_bytes() for p in idx.iterdir()}
    (notes / "page.html").unlink()
    for command in (["ask", "Who built the mill?"], ["index"]):
        assert qa.cli.main([*command, "--index-dir", str(idx)]) == 2
        err = capsys.readouterr().err
        assert "page.html" in err and "gone" in err and "--sources" in err
    (idx / "manifest.json").unlink()
    del before["manifest.json"]
    assert qa.cli.main(["ask", "Who built the mill?", "--index-dir", str(idx)]) == 2
    assert "manifest.json" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in idx.iterdir()} == before  # the user's index is untouched
    # with the remaining source named, it is rebuilt from that
    assert qa.cli.main(["ask", "Who built the mill?", "--sources", str(notes / "doc.md"),
                        "--index-dir", str(idx)]) == 0
    assert "Anna Berg" in capsys.readouterr().out


def test_ask_json_over_a_pdf_gives_offsets_into_its_text_and_the_page(fake_cli, tmp_path, capsys):
    from test_formats import article_paragraphs, make_pdf

    from qa.ingest.sources import read_source

    pdf = make_pdf(tmp_path / "article.pdf", article_paragraphs())
    code = qa.cli.main(["ask", "Who tried to buy the factory?", "--json", "--sources", str(pdf),
                        "--index-dir", str(tmp_path / "idx")])
    obj = json.loads(capsys.readouterr().out)
    text = read_source(pdf)
    assert code == 0 and obj["answer"] and text[obj["start"]:obj["end"]] == obj["answer"]
    assert obj["page"] == text.count("\f", 0, obj["start"]) + 1
    assert all(text[p["start"]:p["end"]] == p["text"] and p["page"] >= 1 for p in obj["passages"])
    assert qa.cli.main(["ask", "Who?", "--sources", str(tmp_path / "scan.docx"),
                        "--index-dir", str(tmp_path / "idx")]) == 2
