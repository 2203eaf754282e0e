"""The Gradio app over a live localhost server, driven with gradio_client.

Fast tests run ``ui.page.build_app`` in-process over a fake bot (contract, errors, history, share
line, auth). The slow tests start the real thing, ``python -m ui.app --share``, with the real
``Chatbot()`` over the repo's seeds/ and check ``/ask`` end to end, the one-line share failure and
that a bad question gets a clear error while the server keeps answering.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import NO_TUNNEL_MAIN, FakeEmbedder, FakeReader, free_port, served
from gradio_client import Client
from gradio_client.exceptions import AppError

from qa.chat.followup import Turn
from qa.schema import Answer, Hit, Passage
from ui.app import SHARE_FAILED, SHARE_WITHOUT_AUTH, launch, parse_auth
from ui.format import GENERIC_ERROR
from ui.page import EXAMPLES, build_app

REPO = Path(__file__).resolve().parent.parent
ARTICLE_PATH = REPO / "seeds" / "article.txt"
QUESTION = "Why does Turkey want Ukrainian engines?"
ANSWER_KEYS = {"question", "answer", "score", "uncertain", "start", "end", "source", "context",
               "context_start", "context_end", "page", "passages"}
PASSAGE_KEYS = {"id", "source", "start", "end", "text", "score", "page"}
#: Anything in the server's output that talks about sharing / the tunnel.
SHARE_WORDS = re.compile(r"share|tunnel|frpc|gradio\.live|public url", re.I)


def client(url: str, **kwargs) -> Client:
    """A quiet gradio_client for a local URL."""
    return Client(url + "/", verbose=False, download_files=False, **kwargs)


# --- a fake bot for the fast tests ------------------------------------------------------------

class FakeBot:
    """The Chatbot interface over the seed article, answering from fixed offsets."""

    def __init__(self) -> None:
        self.text = ARTICLE_PATH.read_text(encoding="utf-8")
        self.calls: list[tuple[str, list]] = []

    def describe(self) -> str:
        """One line."""
        return "1 source (fake), 3 passages · reader: fake · retrieval: hybrid"

    def warm_up(self, progress=None) -> None:
        """Nothing to load."""

    def _hit(self, i: int, needle: str) -> Hit:
        s = self.text.index(needle)
        return Hit(Passage(f"article.txt#{i}", "article.txt", s, s + len(needle), needle), 0.5 + i / 10)

    def ask(self, question: str, history=None) -> Answer:
        """Fixed answers; the bot's ValueErrors; 'boom' raises an unexpected error."""
        self.calls.append((question, list(history or [])))
        if not question.strip():
            raise ValueError("Please type a question.")
        if len(question) > 1000:
            raise ValueError("The question is too long; please keep it under 1,000.")
        if "boom" in question:
            raise RuntimeError("secret internal detail")
        p = self._hit(1, "particularly on how to make engines. This is one thing Turkey's very ambitious")
        if "Australia" in question:
            return Answer(question, None, 0.02, None, None, None, (p,))
        s = p.start + p.text.index("how to make engines")
        return Answer(question, self.text[s:s + 19], 0.83, s, s + 19, "article.txt", (p,), p.id)


@pytest.fixture
def fake_app():
    """(bot, demo, url) for an in-process app over a fake bot."""
    bot = FakeBot()
    with served(bot) as (demo, url):
        yield bot, demo, url


def test_ask_endpoint_returns_answer_dict(fake_app):
    bot, _, url = fake_app
    c = client(url)
    assert set(c.view_api(print_info=False, return_format="dict")["named_endpoints"]) == \
        {"/ask", "/add_documents"}
    out = c.predict(QUESTION, api_name="/ask")
    assert out == bot.ask(QUESTION).to_dict()
    assert out["answer"] == "how to make engines"
    assert c.predict("What is the capital of Australia?", api_name="/ask")["answer"] is None


def test_ask_endpoint_takes_an_optional_history(fake_app):
    bot, _, url = fake_app
    c = client(url)
    first = "Who objected to the factory deal?"
    c.predict("Why did they object?", [{"question": first, "answer": "the United States"}], api_name="/ask")
    assert bot.calls[-1] == ("Why did they object?", [Turn(first, "the United States")])
    c.predict("Why did they object?", [[first, None]], api_name="/ask")  # pairs; null: it abstained
    assert bot.calls[-1] == ("Why did they object?", [Turn(first, None)])
    c.predict(QUESTION, api_name="/ask")  # without a history: as before
    assert bot.calls[-1] == (QUESTION, [])
    with pytest.raises(AppError, match="Bad history"):
        c.predict(QUESTION, [{"question": 5}], api_name="/ask")
    assert c.predict(QUESTION, api_name="/ask")["answer"] == "how to make engines"


def test_ask_errors_are_app_errors_and_server_keeps_serving(fake_app):
    _, _, url = fake_app
    c = client(url)
    with pytest.raises(AppError, match="Please type a question"):
        c.predict("", api_name="/ask")
    with pytest.raises(AppError, match="too long"):
        c.predict("x" * 5000, api_name="/ask")
    with pytest.raises(AppError) as err:
        c.predict("boom", api_name="/ask")
    assert str(err.value) == GENERIC_ERROR and "secret" not in str(err.value)
    assert c.predict(QUESTION, api_name="/ask")["answer"] == "how to make engines"


def _handler(demo, name: str):
    """The event handler function named ``name`` inside the app."""
    fns = [f.fn for f in demo.fns.values() if getattr(f.fn, "__name__", "") == name]
    assert fns, f"no handler {name!r}"
    return fns[0]


def test_chat_passes_earlier_questions_as_history_and_shows_errors(fake_app):
    bot, demo, _ = fake_app
    show, answer = _handler(demo, "show_question"), _handler(demo, "answer")
    chat, asked = [], []
    box, chat, pending = show("Who objected to the factory deal?", chat)
    assert box == "" and chat[-1]["role"] == "user"
    chat, asked, _ = answer(pending, chat, asked, "")
    assert "<mark>how to make engines</mark>" in chat[-1]["content"]
    _, chat, pending = show("", chat)  # an empty question: no user bubble, a clear error bubble
    chat, asked, _ = answer(pending, chat, asked, "")
    assert "Please type a question." in chat[-1]["content"] and "qa-error" in chat[-1]["content"]
    _, chat, pending = show("boom <script>", chat)
    chat, asked, _ = answer(pending, chat, asked, "")
    assert GENERIC_ERROR in chat[-1]["content"] and "Traceback" not in chat[-1]["content"]
    assert "&lt;script&gt;" in chat[-2]["content"]
    _, chat, pending = show("Why did they object?", chat)
    chat, asked, _ = answer(pending, chat, asked, "")
    # the earlier question goes with the answer the chat gave it
    first = ("Who objected to the factory deal?", "how to make engines")
    assert bot.calls[-1] == ("Why did they object?", [first])
    assert asked == [["Who objected to the factory deal?", "how to make engines"],
                     ["Why did they object?", "how to make engines"]]
    assert [m["role"] for m in chat] == ["user", "assistant", "assistant", "user", "assistant",
                                         "user", "assistant"]
    assert _handler(demo, "clear")() == ([], [], "", "")


def test_examples_include_follow_up_pair_and_unanswerable():
    assert EXAMPLES[0] == QUESTION
    assert EXAMPLES.index("Who objected to the factory deal?") + 1 == EXAMPLES.index("Why did they object?")
    assert "What is the capital of Australia?" in EXAMPLES


def test_share_link_from_a_stand_in_tunnel_is_printed(monkeypatch, capfd):
    """``--share`` through a local stand-in for Gradio's tunnel: never a real public link in a test."""
    import gradio.networking

    calls = []

    def stand_in(*, local_host, local_port, **_kwargs):
        calls.append((local_host, local_port))
        return f"http://{local_host}:{local_port}"

    monkeypatch.setattr(gradio.networking, "setup_tunnel", stand_in)
    demo = build_app(FakeBot())
    try:
        url = launch(demo, port=free_port(), share=True)
        output = capfd.readouterr().out
        port = int(url.rsplit(":", 1)[1])
        assert calls == [("127.0.0.1", port)]
        assert f"Serving at {url} and publicly at {demo.share_url}" in output and demo.share_url.endswith(
            f"127.0.0.1:{port}")
        assert client(url).predict(QUESTION, api_name="/ask")["answer"] == "how to make engines"
    finally:
        demo.close()


def test_share_failure_prints_one_line_and_serves_locally(monkeypatch, capfd):
    import gradio.networking

    def no_internet(**_kwargs):
        raise RuntimeError("Could not get share link from Gradio API Server.")

    monkeypatch.setattr(gradio.networking, "setup_tunnel", no_internet)
    bot = FakeBot()
    demo = build_app(bot)
    try:
        url = launch(demo, port=free_port(), share=True)
        captured = capfd.readouterr()
        output = captured.out + captured.err
        assert SHARE_WORDS.findall(output), output
        share_lines = [line for line in output.splitlines() if SHARE_WORDS.search(line)]
        assert share_lines == [SHARE_FAILED.format(url=url)], output
        assert "Share link unavailable: could not download/start Gradio's tunnel (no internet?); " \
               f"serving locally at {url}" in output
        assert client(url).predict(QUESTION, api_name="/ask")["answer"] == "how to make engines"
    finally:
        demo.close()


def test_no_test_reaches_the_real_tunnel():
    from conftest import RealTunnelReached

    demo = build_app(FakeBot())
    try:  # the autouse stand-in fails loudly: Gradio's launch cannot swallow it
        with pytest.raises(RealTunnelReached):
            launch(demo, port=free_port(), share=True, out=lambda _line: None)
    finally:
        demo.close()


def test_parse_auth_fails_closed_and_reads_a_file(tmp_path):
    assert parse_auth(None) is None
    assert parse_auth("alice:s3:cret") == ("alice", "s3:cret")
    for bad in ("alice", "alice:", ":pw"):
        with pytest.raises(ValueError, match="USER:PASSWORD"):
            parse_auth(bad)
    for empty in ("", "  "):  # an unset $PASS must not mean "no login"
        with pytest.raises(ValueError, match="empty"):
            parse_auth(empty)
    secret = tmp_path / "login"
    secret.write_text("alice:pw\n", encoding="utf-8")
    assert parse_auth(f"@{secret}") == ("alice", "pw")  # keeps the password out of `ps`
    with pytest.raises(ValueError, match="cannot read the login"):
        parse_auth(f"@{tmp_path / 'missing'}")


def test_serve_refuses_an_empty_login_before_loading_anything(capsys):
    import qa.cli

    assert qa.cli.main(["serve", "--auth", "", "--share"]) == 2
    assert "login is empty" in capsys.readouterr().err


def test_auth_required():
    demo = build_app(FakeBot())
    try:
        url = launch(demo, port=free_port(), auth=("alice", "pw"), out=lambda _line: None)
        with pytest.raises(Exception):  # noqa: B017 - gradio_client's error type for a login wall varies
            client(url).predict(QUESTION, api_name="/ask")
        assert client(url, auth=("alice", "pw")).predict(QUESTION, api_name="/ask")["answer"]
    finally:
        demo.close()


# --- the real app: python -m ui.app --share, the real Chatbot over seeds/ ---------------------

class Server:
    """``python -m ui.app``'s command line in a subprocess (never a real tunnel: ``NO_TUNNEL_MAIN``)."""

    def __init__(self, *args: str, startup_timeout: float = 900.0) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1", GRADIO_ANALYTICS_ENABLED="False",
                   TOKENIZERS_PARALLELISM="false")
        env.pop("QA_AUTH", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", NO_TUNNEL_MAIN, "--port", str(self.port), *args], cwd=REPO, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
        )
        self.lines: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()
        deadline = time.monotonic() + startup_timeout
        while not any(line.startswith(("Serving at", "Share link unavailable")) for line in self.lines):
            if self.proc.poll() is not None:
                time.sleep(0.5)
                self.stop()
                pytest.fail("the app exited during startup:\n" + self.output)
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"the app did not start within {startup_timeout:.0f}s:\n" + self.output)
            time.sleep(0.2)

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        """Everything the app printed so far."""
        return "\n".join(self.lines)

    def stop(self) -> None:
        """Ctrl+C, then kill if it hangs."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def real_server():
    """The real app started with --share, its tunnel replaced by one that fails as without internet."""
    server = Server("--share")
    try:
        yield server
    finally:
        server.stop()


def _source_text(source: str) -> str:
    """The text a source name refers to, read the way the chatbot reads it."""
    from qa.ingest.sources import read_source

    candidates = [REPO / source, REPO / "seeds" / source, Path(source)]
    path = next((p for p in candidates if p.is_file()), None)
    assert path is not None, f"unknown source {source!r}"
    return read_source(path)


@pytest.mark.slow
def test_real_ask_returns_answer_with_offsets(real_server):
    out = client(real_server.url).predict(QUESTION, api_name="/ask")
    assert isinstance(out, dict) and set(out) == ANSWER_KEYS
    assert out["question"] == QUESTION
    assert isinstance(out["answer"], str) and out["answer"].strip()
    assert isinstance(out["score"], float) and 0.0 <= out["score"] <= 1.0
    assert isinstance(out["start"], int) and isinstance(out["end"], int) and out["start"] < out["end"]
    assert isinstance(out["source"], str)
    text = _source_text(out["source"])
    assert text[out["start"]:out["end"]] == out["answer"]
    assert out["context_start"] <= out["start"] < out["end"] <= out["context_end"]
    assert text[out["context_start"]:out["context_end"]] == out["context"]
    assert text == ARTICLE_PATH.read_text(encoding="utf-8").replace("\r\n", "\n")
    assert 1 <= len(out["passages"]) <= 3
    for p in out["passages"]:
        assert set(p) == PASSAGE_KEYS
        assert isinstance(p["score"], float) and isinstance(p["id"], str)
        assert _source_text(p["source"])[p["start"]:p["end"]] == p["text"]
    assert any(p["source"] == out["source"] and p["start"] <= out["start"] and out["end"] <= p["end"]
               for p in out["passages"])


@pytest.mark.slow
def test_real_follow_up_is_answered_from_the_history_it_is_given(real_server):
    c = client(real_server.url)
    first = c.predict("Who objected to the factory deal?", api_name="/ask")
    assert "United States" in first["answer"]
    history = [{"question": first["question"], "answer": first["answer"]}]
    follow = c.predict("Why did they object?", history, api_name="/ask")
    assert follow["answer"] and "military capabilities of China" in follow["answer"]
    alone = c.predict("Why did they object?", api_name="/ask")
    assert alone["answer"] != follow["answer"], "without the history the follow-up is not understood"


@pytest.mark.slow
def test_real_bad_input_gives_clear_error_and_server_still_answers(real_server):
    c = client(real_server.url)
    with pytest.raises(AppError, match="(?i)type a question"):
        c.predict("", api_name="/ask")
    with pytest.raises(AppError, match="(?i)too long") as err:
        c.predict("x" * 5000, api_name="/ask")
    assert "Traceback" not in str(err.value)
    out = c.predict(QUESTION, api_name="/ask")
    assert out["answer"]
    unanswerable = c.predict("What is the capital of Australia?", api_name="/ask")
    assert unanswerable["answer"] is None and unanswerable["start"] is None
    assert "Traceback" not in real_server.output


@pytest.mark.slow
def test_real_share_failure_is_one_clear_line(real_server):
    expected = SHARE_FAILED.format(url=real_server.url)
    assert expected == ("Share link unavailable: could not download/start Gradio's tunnel (no internet?); "
                        f"serving locally at http://127.0.0.1:{real_server.port}")
    share_lines = [line for line in real_server.lines if SHARE_WORDS.search(line)]
    # one line about the link, and the warning that --share without --auth lets anyone in
    assert share_lines == [SHARE_WITHOUT_AUTH, expected], real_server.output
    assert "Could not create share link" not in real_server.output
    assert any(line.startswith("Ready: ") for line in real_server.lines), real_server.output
    # the local server answers after the failed share attempt
    assert client(real_server.url).predict(QUESTION, api_name="/ask")["answer"]


def test_uploads_are_capped_and_monitoring_is_off(fake_app):
    import httpx

    _, _, url = fake_app
    big = b"x" * (20 * 1024 * 1024 + 1)
    r = httpx.post(f"{url}/gradio_api/upload", files={"files": ("big.txt", big)}, timeout=60)
    assert r.status_code == 413  # over the 20 MB document limit: nothing is stored
    assert httpx.get(f"{url}/monitoring", timeout=30).status_code in (403, 404)  # monitoring is off
    assert client(url).predict(QUESTION, api_name="/ask")["answer"] == "how to make engines"


@pytest.fixture
def docs_app(tmp_path):
    """An app over a real Chatbot of the article with the fake models (documents can be added)."""
    from qa.chat.chatbot import Chatbot

    bot = Chatbot(sources=[ARTICLE_PATH], index_dir=tmp_path / "index", embedder=FakeEmbedder(),
                  reader=FakeReader(), log=lambda m: None)
    bot.warm_up()
    with served(bot) as (_, url):
        yield url


def test_add_documents_then_ask_with_their_token_only(docs_app, tmp_path):
    """Documents belong to a server-issued token, not to Gradio's session hash."""
    from gradio_client import handle_file
    from test_formats import article_paragraphs, make_pdf

    from ui.page import TOKEN_NEEDED

    notes = tmp_path / "mill.txt"
    notes.write_text("The old mill on the river was built by Anna Berg in 1990.", encoding="utf-8")
    pdf = make_pdf(tmp_path / "report.pdf", article_paragraphs())
    mine, other = client(docs_app), client(docs_app)
    added = mine.predict([handle_file(str(notes)), handle_file(str(pdf))], "", "", api_name="/add_documents")
    token = added.pop("token")
    assert added == {"added": ["mill.txt", "report.pdf"], "documents": ["mill.txt", "report.pdf"]}
    assert len(token) >= 20 and token != mine.session_hash
    answer = mine.predict("Who built the mill?", [], token, api_name="/ask")
    assert "Anna Berg" in answer["answer"] and answer["source"] == "mill.txt"
    factory = mine.predict("Who tried to buy the factory?", [], token, api_name="/ask")
    assert factory["source"] == "report.pdf" and factory["page"] >= 1
    # the old flow (no token) is told what to do; another client, even with this one's session hash, and
    # a made-up token get nothing of these documents
    with pytest.raises(AppError, match="pass the token /add_documents returned"):
        mine.predict("Who built the mill?", api_name="/ask")
    assert TOKEN_NEEDED.startswith("This session added documents")
    assert "Anna Berg" not in (other.predict("Who built the mill?", api_name="/ask")["answer"] or "")
    other.session_hash = mine.session_hash
    with pytest.raises(AppError, match="pass the token"):
        other.predict("Who built the mill?", api_name="/ask")
    with pytest.raises(AppError, match="unknown documents token"):
        other.predict("Who built the mill?", [], mine.session_hash, api_name="/ask")
    pasted = mine.predict(None, "The bridge over the river opened in 2001 after a long debate.", "", token,
                          api_name="/add_documents")
    assert pasted["added"] == ["pasted text 3.txt"] and pasted["token"] == token
    (tmp_path / "bad.pdf").write_bytes(b"%PDF-1.4 broken")
    with pytest.raises(AppError, match="not a readable PDF"):
        mine.predict([handle_file(str(tmp_path / "bad.pdf"))], "", "", token, api_name="/add_documents")
    with pytest.raises(AppError, match="Nothing to add"):
        mine.predict(None, "", "", token, api_name="/add_documents")
    assert mine.predict("Who built the mill?", [], token, api_name="/ask")["source"] == "mill.txt"


def test_a_huge_request_is_refused_at_once_while_questions_are_answered(fake_app):
    import httpx

    _, _, url = fake_app
    big = b'{"data": ["' + b"x" * 50_000_000 + b'"]}'
    results: dict[str, int] = {}

    def post_huge(name: str, chunked: bool) -> None:
        body = (big[i:i + (1 << 20)] for i in range(0, len(big), 1 << 20)) if chunked else big
        try:
            r = httpx.post(f"{url}/gradio_api/call/ask", content=body, timeout=60,
                           headers={"content-type": "application/json"})
            results[name] = r.status_code
        except httpx.HTTPError:  # the server may close the connection while the client still sends
            results[name] = 413

    threads = [threading.Thread(target=post_huge, args=(f"huge{i}", i == 1)) for i in range(2)]
    for t in threads:
        t.start()
    assert client(url).predict(QUESTION, api_name="/ask")["answer"] == "how to make engines"
    for t in threads:
        t.join(60)
    assert results == {"huge0": 413, "huge1": 413}
    r = httpx.post(f"{url}/gradio_api/call/ask", content=b'{"data": ["' + b"x" * 3_000_000 + b'"]}',
                   headers={"content-type": "application/json"}, timeout=30)
    assert r.status_code == 413 and "Request too large" in r.text


def test_wrong_logins_wait_one_at_a_time_and_the_right_one_does_not():
    import inspect

    import httpx

    from ui.guard import FAILED_LOGIN_DELAY, slow_login

    # Gradio awaits the check only when it is a coroutine function; anything else that returns a
    # coroutine would be truthy, i.e. a login that lets everyone in
    assert inspect.iscoroutinefunction(slow_login("alice", "pw"))
    with pytest.raises(ValueError):
        slow_login("alice", "")
    demo = build_app(FakeBot())
    try:
        url = launch(demo, port=free_port(), auth=("alice", "pw"), out=lambda _line: None)
        results: list[int] = []

        def guess() -> None:
            r = httpx.post(f"{url}/login", data={"username": "alice", "password": "guess"}, timeout=30)
            results.append(r.status_code)

        threads = [threading.Thread(target=guess) for _ in range(3)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert results == [400] * 3
        assert time.monotonic() - t0 >= 3 * FAILED_LOGIN_DELAY, "guesses wait one after another"
        ok = httpx.post(f"{url}/login", data={"username": "alice", "password": "pw"}, timeout=30)
        assert ok.status_code == 200
        assert client(url, auth=("alice", "pw")).predict(QUESTION, api_name="/ask")["answer"]
    finally:
        demo.close()


def test_a_password_on_the_command_line_gets_a_note_and_a_file_does_not(monkeypatch, tmp_path, capsys):
    import qa.cli
    import ui.app

    monkeypatch.setattr(ui.app, "serve", lambda **kw: None)
    monkeypatch.setattr(qa.cli, "_sources_for", lambda args: None)
    assert qa.cli.main(["serve", "--auth", "alice:pw"]) == 0
    assert "visible to every user" in capsys.readouterr().err
    secret = tmp_path / "login"
    secret.write_text("alice:pw\n", encoding="utf-8")
    assert qa.cli.main(["serve", "--auth", f"@{secret}"]) == 0
    assert "visible" not in capsys.readouterr().err
