"""The web chat UI and HTTP API over a :class:`qa.chat.chatbot.Chatbot` (Gradio 6).

This module is deliberately thin: it holds no retrieval or model logic. Everything it shows comes
from ``bot.ask`` (an :class:`qa.schema.Answer`) rendered by :mod:`ui.format`; the page itself is
:mod:`ui.page`, and this module serves it.

Run it::

    python -m ui.app                       # http://127.0.0.1:7860
    python -m ui.app --port 8080 --auth alice:secret
    python -m ui.app --share               # prints one line if the share tunnel is unavailable

API: one named endpoint, ``/ask``, takes a question string and returns ``Answer.to_dict()``::

    from gradio_client import Client
    Client("http://127.0.0.1:7860/").predict("Why does Turkey want Ukrainian engines?", api_name="/ask")
    # -> {"question": ..., "answer": ..., "score": ..., "start": ..., "end": ..., "source": ...,
    #     "passages": [{"id", "source", "start", "end", "text", "score"}, ...]}

A bad question (empty, longer than ``MAX_QUESTION_CHARS``...) raises ``gr.Error`` with the
user-facing message, so ``gradio_client`` raises ``gradio_client.exceptions.AppError`` whose
``str()`` is that message; a successful call therefore always has the shape above and an error is
never mistaken for an answer. (``answer`` is ``None`` when the article does not say.)

Concurrency: every call into the bot (chat and ``/ask``) shares one concurrency group limited to
``QA_CONCURRENCY`` (default 2) at a time. The reader runs in ONNX Runtime, which releases the GIL and
already uses the machine's cores within one forward pass, so on a 2-core box two in flight overlap
one question's Python work (tokenizing, retrieval, formatting) with another's model compute without
thrashing; more would only lengthen every answer. Up to ``QA_MAX_QUEUE`` (default 64) further
requests wait in Gradio's queue, enough for dozens of simultaneous users; beyond that Gradio
answers "queue full" instead of piling up unbounded work.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import gradio as gr

from ui.guard import BodyLimit, slow_login
from ui.page import build_app

log = logging.getLogger(__name__)

#: The largest file a user may upload (Gradio's upload route answers 413 above it).
MAX_UPLOAD_BYTES = 20 * 1024 * 1024


SHARE_WITHOUT_AUTH = ("Warning: --share without --auth: anyone who has the public link can use this app, "
                      "your CPU and your documents' text. Add --auth @FILE (a file holding USER:PASSWORD) "
                      "or set QA_AUTH.")
PASSWORD_IN_ARGUMENTS = ("Note: a password on the command line is visible to every user of this machine "
                         "(ps); --auth @FILE or the QA_AUTH variable keep it private.")
SHARE_FAILED = (
    "Share link unavailable: could not download/start Gradio's tunnel (no internet?); "
    "serving locally at {url}"
)

CSS = """
.qa-answer mark, .qa-passage-text mark { background: #ffd84d; color: #111; padding: 0 .15em;
  border-radius: .2em; }
.qa-passages { margin: .25em 0 0 1.2em; padding: 0; }
.qa-passage { margin-bottom: .5em; }
.qa-passage-text { margin: .2em 0 0 0; padding: .3em .6em; border-left: 3px solid #bbb;
  font-size: .92em; }
.qa-passage-meta code { font-size: .9em; }
.qa-reply { font-size: 1.05em; margin-bottom: .2em; }
.qa-uncertain { font-style: italic; border-left: 3px dashed #c98a00; padding-left: .5em; }
.qa-possibly { color: #8a5a00; font-weight: 600; font-style: normal; }
.qa-context { margin: .2em 0 .4em; }
.qa-confidence, .qa-sources-label { margin: .1em 0; opacity: .8; }
.qa-error { color: #b00020; }
.qa-status { opacity: .75; margin: 0; }
"""


def parse_auth(spec: str | None) -> tuple[str, str] | None:
    """``"USER:PASSWORD"`` or ``"@FILE"`` (a file holding it) -> ``(user, password)``; None -> None.

    Fails closed: an empty or blank value (an unset shell variable) is an error, not "no login".
    """
    if spec is None:
        return None
    if not spec.strip():
        raise ValueError("the login is empty (an unset variable?): give USER:PASSWORD or @FILE, "
                         "or leave --auth and QA_AUTH out to serve without a login")
    if spec.startswith("@"):
        try:
            spec = Path(spec[1:]).read_text(encoding="utf-8").strip().splitlines()[0] if spec[1:] else ""
        except (OSError, UnicodeDecodeError, IndexError) as e:
            raise ValueError(f"cannot read the login from {spec[1:]!r}: {e}") from e
    user, sep, password = spec.partition(":")
    if not sep or not user or not password:
        raise ValueError("auth must look like USER:PASSWORD (both non-empty)")
    return user, password


def launch(demo: gr.Blocks, *, host: str = "127.0.0.1", port: int = 7860, share: bool = False,
           auth: tuple[str, str] | None = None, out: Callable[[str], None] | None = None) -> str:
    """Start ``demo`` without blocking; return its local URL (no trailing slash).

    A wrong login waits (``ui.guard.slow_login``); a request body over ``ui.guard.MAX_REQUEST_BYTES`` is
    refused with HTTP 413. With ``share=True`` Gradio's own (multi-line) tunnel failure messages are
    swallowed and exactly one line is printed instead (``SHARE_FAILED``); the app keeps serving locally.
    """
    from starlette.middleware import Middleware

    say = out or (lambda line: print(line, flush=True))
    kwargs: dict[str, Any] = dict(
        server_name=host, server_port=port, auth=slow_login(*auth) if auth else None,
        app_kwargs={"middleware": [Middleware(BodyLimit)]},  # oversized bodies refused before any work
        prevent_thread_lock=True, quiet=True,
        ssr_mode=False, show_error=False, css=CSS, footer_links=["api"],
        enable_monitoring=False,  # no dashboard, no secret monitoring URL in the log
        max_file_size=MAX_UPLOAD_BYTES,
    )
    if not share:
        demo.launch(share=False, **kwargs)
        url = demo.local_url.rstrip("/")
        say(f"Serving at {url}")
        return url
    captured = io.StringIO()
    try:
        with contextlib.redirect_stdout(captured), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            demo.launch(share=True, **kwargs)
    except BaseException:
        sys.stderr.write(captured.getvalue())
        raise
    url = demo.local_url.rstrip("/")
    if demo.share_url:
        say(f"Serving at {url} and publicly at {demo.share_url}")
    else:
        log.debug("gradio share output: %s", captured.getvalue())
        say(SHARE_FAILED.format(url=url))
    return url


def serve(*, host: str = "127.0.0.1", port: int = 7860, share: bool = False, auth: str | None = None,
          sources: Sequence[str] | None = None, index_dir: str | None = None,
          reader: Any = None, top_k: int | None = None, mode: str | None = None,
          min_similarity: float | None = None, database: str | None = None,
          allow_private_urls: bool = False) -> None:
    """Build and warm the chatbot, then serve the UI and ``/ask`` until interrupted (Ctrl+C).

    ``auth`` is ``"USER:PASSWORD"`` (default: env ``QA_AUTH``). The bot is warmed up (embedder,
    index, reader) before the server starts, so the first question is not held up.
    """
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    credentials = parse_auth(auth if auth is not None else os.environ.get("QA_AUTH"))
    from qa.chat.chatbot import Chatbot

    def progress(msg: str) -> None:
        print(f"  … {msg}", flush=True)

    print("Starting qa chat: loading models and index…", flush=True)
    options: dict[str, Any] = {}
    if top_k is not None:
        options["top_k"] = top_k
    if mode is not None:
        options["mode"] = mode
    if min_similarity is not None:
        options["min_similarity"] = min_similarity
    bot = Chatbot(sources=sources, index_dir=index_dir, reader=reader, database=database,
                  allow_private_urls=allow_private_urls, **options)
    bot.warm_up(progress=progress, progress_bar=True)
    print(f"Ready: {bot.describe()}", flush=True)
    demo = build_app(bot)
    if share and not credentials:
        print(SHARE_WITHOUT_AUTH, file=sys.stderr, flush=True)
    launch(demo, host=host, port=port, share=share, auth=credentials)
    if credentials:
        print(f"Login required (user {credentials[0]!r}).", flush=True)
    print("Press Ctrl+C to stop.", flush=True)
    try:
        demo.block_thread()
    finally:
        demo.close()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ui.app``: parse arguments and :func:`serve`."""
    parser = argparse.ArgumentParser(prog="python -m ui.app",
                                     description="Serve the qa chat UI and the /ask API.")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    parser.add_argument("--share", action="store_true", help="try a public Gradio share link")
    parser.add_argument("--auth", default=None,
                        help="USER:PASSWORD or @FILE holding it (default: env QA_AUTH)")
    parser.add_argument("--source", action="append", dest="sources", default=None,
                        help="a file or folder to answer from (repeatable; default: the bundled article)")
    parser.add_argument("--index-dir", default=None,
                        help="index folder (default: QA_INDEX_DIR, else a per-user data folder)")
    parser.add_argument("--reader", default=None, help="reader model folder (default: qa/reader_model)")
    parser.add_argument("--top-k", type=int, default=None, help="passages retrieved per question")
    parser.add_argument("--mode", default=None, help="retrieval mode (default: hybrid)")
    parser.add_argument("--allow-private-urls", action="store_true",
                        help="let visitors add web addresses on this machine or its private network "
                             "(off by default: never with --share)")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        parse_auth(args.auth if args.auth is not None else os.environ.get("QA_AUTH"))
    except ValueError as e:
        parser.error(str(e))
    if args.auth and not args.auth.startswith("@"):
        print(PASSWORD_IN_ARGUMENTS, file=sys.stderr, flush=True)
    try:
        serve(host=args.host, port=args.port, share=args.share, auth=args.auth,
              sources=args.sources, index_dir=args.index_dir, reader=args.reader,
              top_k=args.top_k, mode=args.mode, allow_private_urls=args.allow_private_urls)
    except KeyboardInterrupt:
        print("Stopped.", flush=True)
    except (ValueError, TypeError, OSError, RuntimeError) as e:  # bad sources, port in use, ...
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
