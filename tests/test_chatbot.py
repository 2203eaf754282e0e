"""Tests for qa.chat.chatbot: question checks, follow-ups, answers with valid offsets, abstention."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qa.chat.chatbot import MAX_QUESTION_CHARS, Chatbot, clean_question, retrieval_query
from qa.chat.followup import Turn
from qa.chat.select import FIRST_READ
from qa.ingest.errors import SourceError


def make_bot(tmp_path: Path, article_dir: Path, fake_embedder, fake_reader, **kw) -> Chatbot:
    """A chatbot over the seed article with fake models."""
    return Chatbot(sources=[article_dir], index_dir=tmp_path / "index", embedder=fake_embedder,
                   reader=fake_reader, log=lambda m: None, **kw)


@pytest.mark.parametrize("bad", ["", "   ", "\x00\x01\t\n", "?!..."])
def test_clean_question_rejects_empty(bad: str) -> None:
    with pytest.raises(ValueError, match="Please type a question"):
        clean_question(bad)


def test_clean_question_rejects_too_long() -> None:
    with pytest.raises(ValueError, match="too long"):
        clean_question("why " * 2500)
    assert clean_question("a" * MAX_QUESTION_CHARS) == "a" * MAX_QUESTION_CHARS
    # a huge text is refused by its length before any character is scanned (a 50 MB request must not
    # hold a worker); the message says how long it was
    huge = "\x00" + "x" * 50_000_000
    with pytest.raises(ValueError, match="50,000,001 characters"):
        clean_question(huge)


def test_clean_question_strips_control_characters_and_keeps_other_scripts() -> None:
    assert clean_question("Who\x00 signed\u200b\n the deal?") == "Who signed the deal?"
    assert clean_question("Кто подписал соглашения?") == "Кто подписал соглашения?"
    with pytest.raises(TypeError):
        clean_question(None)


def test_retrieval_query_puts_a_follow_ups_rewrite_after_the_previous_question() -> None:
    hist = [Turn("Who objected to the factory deal?", "the United States")]
    rewritten = "Why did the United States object?"
    joined = "Who objected to the factory deal? Why did the United States object?"
    assert retrieval_query("Why did they object?", hist, rewritten) == joined
    assert retrieval_query("Why?", hist, "Why?").startswith("Who objected")
    standalone = "Which president visited Kyiv on Thursday?"
    assert retrieval_query(standalone, hist, standalone + " x") == standalone  # not a follow-up
    assert retrieval_query("Why did they object?", [], "Why did they object?") == "Why did they object?"


def test_constructor_checks_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="top_k"):
        Chatbot(top_k=0)
    with pytest.raises(ValueError, match="mode"):
        Chatbot(mode="magic")
    with pytest.raises(ValueError, match="sources"):
        Chatbot(sources=[])


def test_ask_returns_a_span_of_the_source(tmp_path, article_dir, article_text, fake_embedder, fake_reader):
    bot = make_bot(tmp_path, article_dir, fake_embedder, fake_reader)
    answer = bot.ask("Who tried to buy the engine factory?")
    assert answer.text is not None and not answer.abstained
    assert article_text[answer.start : answer.end] == answer.text
    assert answer.source.endswith("article.txt")
    assert 1 <= len(answer.passages) <= 3
    for hit in answer.passages:
        assert article_text[hit.start : hit.end] == hit.text
    d = answer.to_dict()
    assert set(d) == {"question", "answer", "score", "uncertain", "start", "end", "source", "context",
                      "context_start", "context_end", "page", "passages"}
    # the sentence the answer stands in, by offsets into the source
    assert d["context_start"] <= answer.start < answer.end <= d["context_end"]
    assert article_text[d["context_start"]:d["context_end"]] == d["context"] == answer.context
    assert set(d["passages"][0]) == {"id", "source", "start", "end", "text", "score", "page"}
    assert "Chinese" in bot.ask("Who tried to buy the factory?").text


def test_ask_abstains_below_threshold(tmp_path, article_dir, fake_embedder, fake_reader):
    fake_reader.threshold = 1.01
    bot = make_bot(tmp_path, article_dir, fake_embedder, fake_reader)
    answer = bot.ask("What is the capital of Australia?")
    assert answer.abstained and answer.text is None and answer.start is None
    assert answer.passages, "an abstention still shows the closest passages"
    assert answer.to_dict()["answer"] is None
    hits, span = bot.candidate("What is the capital of Australia?")  # what it would have said
    assert tuple(hits) == answer.passages and span is not None and span.score == answer.score


def test_people_see_the_readers_shown_confidence_and_the_spans_score_decides(tmp_path, article_dir,
                                                                            fake_embedder, fake_reader):
    bot = make_bot(tmp_path, article_dir, fake_embedder, fake_reader)
    plain = bot.ask("What do drones and engines have to do with Turkey?")
    assert plain.text is not None
    fake_reader.shown = lambda span: round(1 - span.score / 2, 6)  # any map of the span, for the test
    shown = bot.ask("What do drones and engines have to do with Turkey?")
    assert shown.text == plain.text and shown.start == plain.start, "the span's own score picks the answer"
    assert shown.score == round(1 - plain.score / 2, 6) and shown.to_dict()["score"] == round(shown.score, 4)
    fake_reader.threshold = 1.01  # abstention still compares the span's score with the threshold
    withheld = bot.ask("What do drones and engines have to do with Turkey?")
    assert withheld.abstained and withheld.score == shown.score


def test_follow_up_retrieves_with_the_earlier_turn(tmp_path, article_dir, fake_embedder, fake_reader):
    bot = make_bot(tmp_path, article_dir, fake_embedder, fake_reader, top_k=1)
    first = bot.ask("Who objected to the factory deal?")
    follow = bot.retrieve("Why did they object?", history=[first])
    assert "objected" in follow[0].text
    assert "factory deal" in fake_embedder.texts[-1], "the earlier question is part of what is retrieved"
    bot.retrieve("Why did they object?")
    assert "factory deal" not in fake_embedder.texts[-1], "without the history it is not"


@pytest.mark.slow
def test_a_follow_up_is_answered_from_the_history_and_not_without_it(tmp_path):
    bot = Chatbot(index_dir=tmp_path / "index")
    first = bot.ask("Who objected to the factory deal?")
    assert first.text and "United States" in first.text
    follow = bot.ask("Why did they object?", history=[first])
    assert follow.text and "military capabilities of China" in follow.text
    assert bot.ask("Why did they object?", history=[(first.question, first.text)]).text == follow.text
    alone = bot.ask("Why did they object?")
    assert alone.text != follow.text, "the history is what makes the follow-up answerable"


def test_describe_names_corpus_and_reader(tmp_path, article_dir, fake_embedder, fake_reader):
    line = make_bot(tmp_path, article_dir, fake_embedder, fake_reader).describe()
    assert "article.txt" in line and "fake-reader" in line and "\n" not in line


@pytest.mark.parametrize("content", [b"", b"   \n", b"\xff\xfe\xfa not utf-8"])
def test_bad_source_files_name_the_file(tmp_path, fake_embedder, fake_reader, content: bytes):
    from qa.ingest.errors import SourceError

    bad = tmp_path / "bad.txt"
    bad.write_bytes(content)
    bot = Chatbot(sources=[bad], index_dir=tmp_path / "i", embedder=fake_embedder, reader=fake_reader)
    with pytest.raises(SourceError, match="bad.txt"):
        bot.ask("Anything?")


def test_missing_source_names_the_file(tmp_path, fake_embedder, fake_reader):
    from qa.ingest.errors import SourceError

    bot = Chatbot(sources=[tmp_path / "nope.txt"], index_dir=tmp_path / "i", embedder=fake_embedder,
                  reader=fake_reader)
    with pytest.raises(SourceError, match="nope.txt"):
        bot.warm_up()


def test_a_source_deleted_while_serving_is_named_not_cited(tmp_path, article_dir, fake_embedder, fake_reader):
    bot = make_bot(tmp_path, article_dir, fake_embedder, fake_reader)
    bot.warm_up()
    (article_dir / "article.txt").unlink()
    with pytest.raises(SourceError, match="no source files found"):  # never offsets into text that is gone
        bot.ask("Who tried to buy the factory?")


def test_a_source_edited_while_serving_is_reindexed_before_answering(tmp_path, article_dir, fake_embedder,
                                                                     fake_reader):
    logs: list[str] = []
    bot = Chatbot(sources=[article_dir], index_dir=tmp_path / "index", embedder=fake_embedder,
                  reader=fake_reader, log=logs.append)
    assert bot.ask("Who tried to buy the factory?").text
    source = article_dir / "article.txt"
    new_text = "Notes.\n\nThe Chinese tried to buy the old mill in Lund, the records show."
    source.write_text(new_text, encoding="utf-8")
    os.utime(source, ns=(1, 1))  # a different stamp even within the file system's time resolution
    answer = bot.ask("Who tried to buy the mill?")
    assert any("changed on disk" in m for m in logs)
    assert new_text[answer.start:answer.end] == answer.text  # offsets into the text as it is now
    assert not bot.refresh_if_changed()  # nothing changed since


@pytest.mark.slow
def test_default_chatbot_answers_the_engine_question(tmp_path, article_text):
    """The real pipeline (MiniLM + the shipped reader) finds the engine-expertise passage."""
    bot = Chatbot(index_dir=tmp_path / "index", log=lambda m: None)
    answer = bot.ask("Why does Turkey want Ukrainian engines?")
    assert any("engine" in h.text for h in answer.passages)
    if answer.text is not None:
        assert article_text[answer.start : answer.end] == answer.text


@pytest.mark.slow
def test_default_chatbot_says_the_article_does_not_say(tmp_path):
    """The real pipeline abstains on a question the seed article does not answer, or answers it unsure."""
    bot = Chatbot(index_dir=tmp_path / "index", log=lambda m: None)
    answer = bot.ask("What is the capital of Australia?")
    assert answer.abstained, (answer.text, answer.score)
    _, span = bot.candidate("What is the capital of Australia?")
    assert span is not None and span.score < bot.reader.threshold and answer.passages
    # the number shown is the shipped use-mix map's, below the one it shows at the threshold
    assert answer.score == pytest.approx(bot.reader.confidence.shown(span.margin))
    assert answer.score < bot.reader.confidence.shown(bot.reader.confidence.threshold_margin)
    # where the reader still answers, its calibrated confidence says the answer is more likely wrong
    answer = bot.ask("Who won the 2018 FIFA World Cup?")
    assert answer.abstained or answer.score < 0.5, (answer.text, answer.score)


@pytest.fixture(scope="module")
def warm_fake_bot(tmp_path_factory):
    """One warmed chatbot over the seed article with fake models, shared by the property test."""
    from conftest import ARTICLE, FakeEmbedder, FakeReader

    root = tmp_path_factory.mktemp("hostile")
    bot = Chatbot(sources=[ARTICLE], index_dir=root / "index", embedder=FakeEmbedder(),
                  reader=FakeReader(), log=lambda m: None)
    bot.warm_up()
    return bot


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(question=st.one_of(
    st.text(max_size=50),
    st.text(min_size=900, max_size=1200),
    st.text(alphabet=st.characters(categories=["Cc", "Cf", "Zs"]), max_size=40),
    st.from_regex(r"<script>[a-z ]{0,20}</script>\??", fullmatch=True),
    st.sampled_from(["Кто подписал?", "土耳其为什么要乌克兰的发动机？", "لماذا؟", "Why? 🚀"]),
))
def test_ask_never_raises_unexpectedly_and_answers_with_spans(warm_fake_bot, article_text, question):
    """Arbitrary text: a user-facing ValueError or an Answer whose offsets are a span of the source."""
    try:
        answer = warm_fake_bot.ask(question)
    except ValueError as err:
        assert str(err) and "\n" not in str(err)
        return
    if answer.text is not None:
        assert article_text[answer.start : answer.end] == answer.text
    for hit in answer.passages:
        assert article_text[hit.start : hit.end] == hit.text


def test_index_dir_that_is_a_file_is_a_clear_error(tmp_path, article_dir, fake_embedder, fake_reader):
    blocker = tmp_path / "index"
    blocker.write_text("not a folder")
    bot = make_bot(tmp_path, article_dir, fake_embedder, fake_reader)
    with pytest.raises((ValueError, OSError), match="index"):
        bot.warm_up()


def test_half_written_index_is_rebuilt_and_answers(tmp_path, article_dir, fake_embedder, fake_reader):
    bot = make_bot(tmp_path, article_dir, fake_embedder, fake_reader)
    bot.warm_up()
    (tmp_path / "index" / "vectors.npy").write_bytes(b"\x93NUMPY truncated")
    (tmp_path / "index" / "passages.jsonl").unlink()
    logs: list[str] = []
    again = Chatbot(sources=[article_dir], index_dir=tmp_path / "index", embedder=fake_embedder,
                    reader=fake_reader, log=logs.append)
    assert again.ask("Who tried to buy the factory?").text
    assert len(logs) == 2 and "rebuild" in logs[0].lower()
    assert "embedding cache" in logs[1]  # the truncated vectors cannot be reused, and it says so


def test_ask_reads_passages_in_rank_order_and_keeps_the_readers_confidence(tmp_path, article_dir,
                                                                          fake_embedder, fake_reader):
    calls = []
    read = fake_reader.read

    def spy(question, passages, **kw):
        calls.append(kw)
        return read(question, passages, **kw)

    fake_reader.read = spy
    bot = make_bot(tmp_path, article_dir, fake_embedder, fake_reader)
    answer = bot.ask("Who tried to buy the engine factory?")
    assert calls[0] == {"top_n": FIRST_READ, "per_passage": True}
    assert all(kw == {"top_n": 1, "per_passage": True} for kw in calls[1:])
    assert sum(kw["top_n"] for kw in calls) <= len(answer.passages)
    spans = read("Who tried to buy the engine factory?", list(answer.passages), top_n=3, per_passage=True)
    assert answer.score == next(s.score for s in spans if s.text == answer.text)


def test_min_similarity_abstains_on_weakly_related_passages(tmp_path, article_dir, fake_embedder,
                                                            fake_reader):
    from qa.chat.chatbot import DEFAULT_MIN_SIMILARITY

    bot = make_bot(tmp_path, article_dir, fake_embedder, fake_reader)
    assert bot.min_similarity == DEFAULT_MIN_SIMILARITY
    assert Chatbot().min_similarity == -1.0  # off unless asked for
    q = "Who tried to buy the engine factory?"
    loose = make_bot(tmp_path / "a", article_dir, fake_embedder, fake_reader)
    answered = loose.ask(q)
    assert not answered.abstained
    cosine = next(h.score for h in answered.passages if h.id == answered.passage_id)
    strict = make_bot(tmp_path / "b", article_dir, fake_embedder, fake_reader, min_similarity=cosine + 0.01)
    withheld = strict.ask(q)
    assert withheld.abstained and withheld.passages == answered.passages
    assert withheld.score == answered.score  # the reader's confidence is still reported
    for bad in (1.5, -2, True, "0.4"):
        with pytest.raises(ValueError, match="min_similarity"):
            Chatbot(min_similarity=bad)


@pytest.mark.slow
def test_an_installed_package_answers_from_its_bundled_article_and_indexes_into_the_users_folder(tmp_path):
    """A non-editable install (the wheel, unpacked) carries the article and never writes beside itself."""
    import subprocess
    import sys
    import zipfile

    repo = Path(__file__).resolve().parent.parent
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path / "wheel"), str(repo)], check=True, capture_output=True)
    site = tmp_path / "site"
    with zipfile.ZipFile(next((tmp_path / "wheel").glob("qa-*.whl"))) as wheel:
        wheel.extractall(site)
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("QA_INDEX_DIR", "XDG_DATA_HOME")}
    env.update(PYTHONPATH=str(site), HOME=str(home), HF_HUB_OFFLINE="1")
    before = sorted(p.relative_to(site) for p in site.rglob("*"))
    done = subprocess.run([sys.executable, "-m", "qa.cli", "index"], cwd=work, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "1 source(s)" in done.stdout and "article.txt" in done.stdout
    assert sorted(p.relative_to(site) for p in site.rglob("*") if "__pycache__" not in p.parts) \
        == [p for p in before if "__pycache__" not in p.parts]  # nothing written into the install
    assert (home / ".local" / "share" / "qa" / "index" / "manifest.json").is_file()
    assert not any(work.iterdir())
    shown = subprocess.run([sys.executable, "-c", "import qa.chat.chatbot as c; print(c.DEFAULT_INDEX_DIR)"],
                           cwd=work, env={**env, "QA_INDEX_DIR": str(tmp_path / "mine")},
                           capture_output=True, text=True, check=True)
    assert shown.stdout.strip() == str(tmp_path / "mine")



def test_the_reader_loads_beside_the_index_and_its_failure_reaches_the_caller(
        tmp_path: Path, article_dir: Path, fake_embedder, fake_reader) -> None:
    import threading

    seen: list[str] = []

    class Recording(type(fake_reader)):  # type: ignore[misc]
        def warm_up(self) -> None:
            seen.append(threading.current_thread().name)

    bot = Chatbot(sources=[article_dir], index_dir=tmp_path / "i", embedder=fake_embedder, reader=Recording())
    bot.warm_up()
    assert seen == ["qa-warm-up"] and bot.ask("Who objected to the factory deal?").passages

    class Broken(type(fake_reader)):  # type: ignore[misc]
        def warm_up(self) -> None:
            raise ValueError("reader model folder /nowhere not found")

    bot = Chatbot(sources=[article_dir], index_dir=tmp_path / "j", embedder=fake_embedder, reader=Broken())
    with pytest.raises(ValueError, match="/nowhere not found"):
        bot.warm_up()
    assert bot.retriever is None  # not half-ready: the next call tries again
