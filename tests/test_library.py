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
    alice, bob = library.open(), library.open()
    assert alice != bob and len(alice) >= 20 and library.open(alice) == alice
    notes = tmp_path / "mill.txt"
    notes.write_text(MILL, encoding="utf-8")
    assert library.add_files(alice, [notes]) == ["mill.txt"]
    answer = library.bot_for(alice).ask("Who built the mill?")
    assert "Anna Berg" in answer.text and answer.source == "mill.txt"
    assert library.bot_for(bob) is library.base and library.documents(bob) == []
    assert "Anna Berg" not in (library.bot_for(bob).ask("Who built the mill?").text or "")
    pdf = make_pdf(tmp_path / "upload-123.pdf", article_paragraphs())
    assert library.add_files(alice, [pdf], names=["report.pdf"]) == ["report.pdf"]
    answer = library.bot_for(alice).ask("Who tried to buy the factory?")
    assert answer.source == "report.pdf" and answer.citation.startswith("report.pdf p. ")
    assert library.add_text(alice, "Pasted: the bridge opened in 2001 after a long debate.") \
        == "pasted text 3.txt"
    assert library.documents(alice) == ["mill.txt", "report.pdf", "pasted text 3.txt"]
    library.remove(alice, "mill.txt")
    assert "Anna Berg" not in (library.bot_for(alice).ask("Who built the mill?").text or "")
    folder = library._sessions[alice].folder
    library.end(alice)
    assert not folder.exists()
    with pytest.raises(SourceError, match="deleted when their window closed"):
        library.bot_for(alice)


def test_bad_documents_are_refused_and_the_session_keeps_what_it_had(library: Library, tmp_path: Path):
    s = library.open()
    good = tmp_path / "mill.txt"
    good.write_text(MILL, encoding="utf-8")
    library.add_files(s, [good])
    (tmp_path / "bad.pdf").write_bytes(b"%PDF-1.4 broken")
    (tmp_path / "slides.pptx").write_bytes(b"PK")
    for path, why in ((tmp_path / "bad.pdf", "not a readable PDF"), (tmp_path / "slides.pptx", "unsupported"),
                      (tmp_path / "gone.txt", "did not arrive")):
        with pytest.raises(SourceError, match=why):
            library.add_files(s, [path])
    with pytest.raises(SourceError, match="empty"):
        library.add_text(s, "   ")
    with pytest.raises(SourceError, match="not a web address"):
        library.add_url(s, "file:///etc/passwd")
    big = make_docx(tmp_path / "big.docx", article_paragraphs() * 30)
    with pytest.raises(SourceError, match="at most 200"):
        library.add_files(s, [big])
    assert library.documents(s) == ["mill.txt"]
    assert sorted(p.name for p in (library._sessions[s].folder / "docs").iterdir()) == ["mill.txt"]
    assert "Anna Berg" in library.bot_for(s).ask("Who built the mill?").text


def test_names_are_made_safe_and_unique_and_limits_hold(library: Library, tmp_path: Path):
    s = library.open()
    a = tmp_path / "a.txt"
    a.write_text(MILL, encoding="utf-8")
    assert library.add_files(s, [a, a], names=["../../etc/notes.txt", "notes.txt"]) == \
        ["notes.txt", "notes (2).txt"]
    library.max_documents = 2
    with pytest.raises(SourceError, match="at most 2 documents"):
        library.add_text(s, MILL)


def test_idle_sessions_are_ended(library: Library, tmp_path: Path):
    s = library.open()
    a = tmp_path / "a.txt"
    a.write_text(MILL, encoding="utf-8")
    library.add_files(s, [a])
    folder = library._sessions[s].folder
    library.wait(s)  # a session being indexed is not ended under its feet
    library.idle_seconds = -1.0
    library.sweep()
    assert s not in library._sessions and not folder.exists()
    with pytest.raises(SourceError, match="minutes unused; add them again"):
        library.bot_for(s)


def test_answers_start_on_passages_and_the_full_index_replaces_them(library: Library, tmp_path: Path):
    notes = tmp_path / "mill.txt"
    notes.write_text(f"{MILL} The miller sells flour on Saturdays. Children visit it.", encoding="utf-8")
    quick_library = Library(base=library.base, root=tmp_path / "quick", refine=False)
    s = quick_library.open()
    quick_library.add_files(s, [notes])
    assert quick_library.bot_for(s).index.manifest.get("sentences", True) is True  # no refining: full

    alice = library.open()
    library.add_files(alice, [notes])
    first = library.bot_for(alice)
    assert "Anna Berg" in first.ask("Who built the mill?").text  # answering before the full index
    library.wait(alice)
    full = library.bot_for(alice)
    assert first.index.manifest.get("sentences") is False and full is not first
    assert "sentences" not in full.index.manifest and len(full.index.sentence_vectors) > len(full.index)
    assert full.ask("Who built the mill?").text == first.ask("Who built the mill?").text
    library.add_text(alice, "Pasted: the bridge opened in 2001.")
    library.wait(alice)
    assert len(library.bot_for(alice).index.passages) > len(full.index.passages)


def test_passages_are_counted_before_anything_is_embedded(library: Library, tmp_path: Path):
    """Degenerate pastes and a 20 MB .txt are refused by their count, in seconds."""
    import time

    from qa.chat.budget import count_passages
    from qa.chat.library import MAX_PASSAGES, MAX_PASTE_CHARS

    embedder = library.base.retriever.embedder
    s = library.open()
    before, started = embedder.encoded, time.monotonic()
    with pytest.raises(SourceError, match="at most 200 passages .*nothing was embedded"):
        library.add_text(s, "a\n\n" * (MAX_PASTE_CHARS // 3))
    big = tmp_path / "big.txt"
    big.write_text(ARTICLE.read_text(encoding="utf-8") * 6_500, encoding="utf-8")  # about 20 MB of prose
    with pytest.raises(SourceError, match="big.txt: too long"):
        library.add_files(s, [big])
    assert embedder.encoded == before and time.monotonic() - started < 10
    assert library.documents(s) == []
    # ordinary prose at the paste limit fits in a session (the constant's comment says how it was measured)
    prose = (ARTICLE.read_text(encoding="utf-8") * 400)[:MAX_PASTE_CHARS]
    assert count_passages(prose) <= MAX_PASSAGES
    with pytest.raises(SourceError, match="too long .*at most 750,000"):
        library.add_text(s, "x" * (MAX_PASTE_CHARS + 1))


def test_count_passages_matches_the_chunker_and_stops_over_its_limit(article_text: str):
    from qa.chat.budget import COUNT_PIECE_CHARS, count_passages
    from qa.ingest.chunk import chunk_text

    long = (article_text + "\n\n") * 100
    assert len(long) > 2 * COUNT_PIECE_CHARS
    assert count_passages(long) == len(chunk_text(long, "x")) and count_passages("") == 0
    assert 10 < count_passages("a\n\n" * 1_000_000, limit=10) <= COUNT_PIECE_CHARS


def test_sessions_are_server_issued_and_unknown_tokens_reach_nothing(library: Library, tmp_path: Path):
    """A client-chosen id (such as Gradio's session hash) is not a session."""
    notes = tmp_path / "mill.txt"
    notes.write_text(MILL, encoding="utf-8")
    with pytest.raises(SourceError, match="unknown documents token"):
        library.add_files("my-session-hash", [notes])
    with pytest.raises(SourceError, match="unknown documents token"):
        library.bot_for("my-session-hash")
    assert library.open("my-session-hash") != "my-session-hash"
    assert "my-session-hash" not in library._sessions


def test_whole_sessions_are_evicted_least_recently_used_first(library: Library, tmp_path: Path):
    """Caps across all sessions, and a clear word to the evicted visitor."""
    notes = tmp_path / "mill.txt"
    notes.write_text(MILL, encoding="utf-8")
    library.max_sessions = 2
    first, second = library.open(), library.open()
    for token in (first, second):
        library.add_files(token, [notes])
        library.wait(token)
    folder = library._sessions[first].folder
    library.bot_for(second)  # first is now the least recently used
    third = library.open()
    assert set(library._sessions) == {second, third} and not folder.exists()
    with pytest.raises(SourceError, match="removed to make room"):
        library.bot_for(first)
    with pytest.raises(SourceError, match="removed to make room"):
        library.add_text(first, MILL)
    library.max_total_passages = library._sessions[second].passages["mill.txt"]
    library.add_text(third, MILL)  # second goes: the passages of both do not fit
    assert list(library._sessions) == [third]
    library.max_total_passages = 1
    with pytest.raises(SourceError, match="try again in a few minutes"):
        library.add_text(third, f"{MILL}\n\n{MILL}")  # 2 passages: over the cap with nobody else
    assert list(library._sessions) == [third] and library.documents(third) == ["pasted text 1.txt"]


def test_evictions_choose_empty_then_least_recently_used_sessions():
    from qa.chat.budget import Usage, evictions

    usages = [Usage("old", 1.0, 100, 10), Usage("new", 3.0, 100, 10), Usage("empty", 5.0, 0, 0),
              Usage("busy", 0.0, 100, 10, busy=True)]
    assert evictions(usages, keep="new", sessions=1, max_sessions=4) == ["empty"]
    assert evictions(usages, keep="new", nbytes=150, max_bytes=400) == ["empty", "old"]
    assert evictions(usages, keep="new", passages=100, max_passages=50) is None
    assert evictions(usages, keep="x") == []


def test_a_full_indexing_queue_refuses_at_once_and_questions_go_first(library: Library, tmp_path: Path):
    """One bounded pool for all indexing, which waits for questions being answered."""
    import threading
    import time

    from qa.chat.workers import BUSY, IndexPool, QuestionGate, YieldingEmbedder

    pool = IndexPool(workers=1, max_pending=1)
    release = threading.Event()
    running = [threading.Thread(target=pool.run, args=(release.wait, 30)) for _ in range(2)]
    for thread in running:
        thread.start()
    time.sleep(0.2)
    with pytest.raises(SourceError, match=BUSY):
        pool.run(lambda: None)
    release.set()
    for thread in running:
        thread.join(10)
    assert pool.run(lambda: 7) == 7

    gate = QuestionGate()
    embedder = FakeEmbedder()
    slow = YieldingEmbedder(embedder, gate, batch=2, max_wait=0.3)
    assert slow.name == embedder.name and slow.encode(["a", "b", "c"]).shape == (3, embedder.dim)
    with gate.asking():  # a question is being answered: indexing waits (up to max_wait) per batch
        started = time.monotonic()
        assert pool.run(slow.encode, ["a", "b", "c"]).shape == (3, embedder.dim)
        assert time.monotonic() - started >= 0.5
    assert embedder.calls == 3  # on the caller's thread at once, then batch by batch on the pool
    with pytest.raises(ValueError, match="positive int"):
        IndexPool(workers=0)
