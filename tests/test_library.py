"""Tests for qa.chat.library: per-session documents, their chatbot, limits, removal and expiry."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ARTICLE, FakeEmbedder, FakeReader
from test_formats import article_paragraphs, make_docx, make_pdf

from qa.chat.chatbot import Chatbot
from qa.chat.library import Library
from qa.ingest.errors import SourceError


@pytest.fixture
def library(tmp_path: Path) -> Library:
    """A library over a base chatbot (the seed article) with fake models."""
    base = Chatbot(sources=[ARTICLE], index_dir=tmp_path / "base", embedder=FakeEmbedder(),
                   reader=FakeReader(), log=lambda m: None)
    base.warm_up()
    return Library(base=base, root=tmp_path / "sessions", max_passages=200)


MILL = "The old mill on the river was built by Anna Berg in 1990. It grinds wheat for the village."


def test_a_sessions_documents_answer_its_questions_and_no_other_sessions(library: Library, tmp_path: Path):
    notes = tmp_path / "mill.txt"
    notes.write_text(MILL, encoding="utf-8")
    assert library.add_files("alice", [notes]) == ["mill.txt"]
    answer = library.bot_for("alice").ask("Who built the mill?")
    assert "Anna Berg" in answer.text and answer.source == "mill.txt"
    assert library.bot_for("bob") is library.base and library.documents("bob") == []
    assert "Anna Berg" not in (library.bot_for("bob").ask("Who built the mill?").text or "")
    pdf = make_pdf(tmp_path / "upload-123.pdf", article_paragraphs())
    assert library.add_files("alice", [pdf], names=["report.pdf"]) == ["report.pdf"]
    answer = library.bot_for("alice").ask("Who tried to buy the factory?")
    assert answer.source == "report.pdf" and answer.citation.startswith("report.pdf p. ")
    assert library.add_text("alice", "Pasted: the bridge opened in 2001 after a long debate.") \
        == "pasted text 3.txt"
    assert library.documents("alice") == ["mill.txt", "report.pdf", "pasted text 3.txt"]
    library.remove("alice", "mill.txt")
    assert "Anna Berg" not in (library.bot_for("alice").ask("Who built the mill?").text or "")
    folder = library._sessions["alice"].folder
    library.end("alice")
    assert not folder.exists() and library.bot_for("alice") is library.base


def test_bad_documents_are_refused_and_the_session_keeps_what_it_had(library: Library, tmp_path: Path):
    good = tmp_path / "mill.txt"
    good.write_text(MILL, encoding="utf-8")
    library.add_files("s", [good])
    (tmp_path / "bad.pdf").write_bytes(b"%PDF-1.4 broken")
    (tmp_path / "slides.pptx").write_bytes(b"PK")
    for path, why in ((tmp_path / "bad.pdf", "not a readable PDF"), (tmp_path / "slides.pptx", "unsupported"),
                      (tmp_path / "gone.txt", "did not arrive")):
        with pytest.raises(SourceError, match=why):
            library.add_files("s", [path])
    with pytest.raises(SourceError, match="empty"):
        library.add_text("s", "   ")
    with pytest.raises(SourceError, match="not a web address"):
        library.add_url("s", "file:///etc/passwd")
    big = make_docx(tmp_path / "big.docx", article_paragraphs() * 30)
    with pytest.raises(SourceError, match="at most 200"):
        library.add_files("s", [big])
    assert library.documents("s") == ["mill.txt"]
    assert sorted(p.name for p in (library._sessions["s"].folder / "docs").iterdir()) == ["mill.txt"]
    assert "Anna Berg" in library.bot_for("s").ask("Who built the mill?").text


def test_names_are_made_safe_and_unique_and_limits_hold(library: Library, tmp_path: Path):
    a = tmp_path / "a.txt"
    a.write_text(MILL, encoding="utf-8")
    assert library.add_files("s", [a, a], names=["../../etc/notes.txt", "notes.txt"]) == \
        ["notes.txt", "notes (2).txt"]
    library.max_documents = 2
    with pytest.raises(SourceError, match="at most 2 documents"):
        library.add_text("s", MILL)


def test_idle_sessions_are_ended(library: Library, tmp_path: Path):
    a = tmp_path / "a.txt"
    a.write_text(MILL, encoding="utf-8")
    library.add_files("s", [a])
    folder = library._sessions["s"].folder
    library.idle_seconds = -1.0
    library.sweep()
    assert "s" not in library._sessions and not folder.exists()


def test_answers_start_on_passages_and_the_full_index_replaces_them(library: Library, tmp_path: Path):
    notes = tmp_path / "mill.txt"
    notes.write_text(f"{MILL} The miller sells flour on Saturdays. Children visit it.", encoding="utf-8")
    quick_library = Library(base=library.base, root=tmp_path / "quick", refine=False)
    quick_library.add_files("s", [notes])
    assert quick_library.bot_for("s").index.manifest.get("sentences", True) is True  # no refining: full

    library.add_files("alice", [notes])
    first = library.bot_for("alice")
    assert "Anna Berg" in first.ask("Who built the mill?").text  # answering before the full index
    library.wait("alice")
    full = library.bot_for("alice")
    assert first.index.manifest.get("sentences") is False and full is not first
    assert "sentences" not in full.index.manifest and len(full.index.sentence_vectors) > len(full.index)
    assert full.ask("Who built the mill?").text == first.ask("Who built the mill?").text
    library.add_text("alice", "Pasted: the bridge opened in 2001.")
    library.wait("alice")
    assert len(library.bot_for("alice").index.passages) > len(full.index.passages)
