"""The web chat UI and HTTP API over a :class:`qa.chat.chatbot.Chatbot` (Gradio 6).

This module is deliberately thin: it holds no retrieval or model logic. Everything it shows comes
from ``bot.ask`` (an :class:`qa.schema.Answer`) rendered by :mod:`ui.format`.

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
from typing import TYPE_CHECKING, Any

import gradio as gr

from qa.chat.followup import turns
from qa.ingest.sources import SUFFIXES
from ui.format import (
    GENERIC_ERROR,
    document_removed,
    documents_added,
    documents_line,
    format_answer,
    format_error,
    format_question,
    status_line,
)
from ui.guard import BodyLimit, slow_login

if TYPE_CHECKING:
    from qa.chat.chatbot import Chatbot
    from qa.chat.library import Library

try:  # the bot enforces the cap (ValueError); the textbox only mirrors it
    from qa.chat.chatbot import MAX_QUESTION_CHARS
except ImportError:  # pragma: no cover - qa.chat.chatbot not importable (e.g. a broken install)
    MAX_QUESTION_CHARS = 1000

log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = max(1, int(os.environ.get("QA_CONCURRENCY", "2")))
MAX_QUEUE = max(1, int(os.environ.get("QA_MAX_QUEUE", "64")))
CONCURRENCY_ID = "qa-bot"
#: The largest file a user may upload (Gradio's upload route answers 413 above it).
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
#: Gradio deletes uploaded files this many seconds old, checking as often (the session's own copies go
#: when it ends: ``qa.chat.library``).
UPLOAD_CACHE_SECONDS = 3600

EXAMPLES: tuple[str, ...] = (
    "Why does Turkey want Ukrainian engines?",
    "Who objected to the factory deal?",
    "Why did they object?",
    "How many agreements did Erdogan sign?",
    "What is the capital of Australia?",
)

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
.qa-context { margin: .2em 0 .4em; }
.qa-confidence, .qa-sources-label { margin: .1em 0; opacity: .8; }
.qa-error { color: #b00020; }
.qa-status { opacity: .75; margin: 0; }
"""

Message = dict[str, Any]


def _reply(role: str, content: str) -> Message:
    return {"role": role, "content": content}


def _ask_safely(bot: Chatbot, question: str, history: Sequence[Any]) -> tuple[str, str | None, bool]:
    """Ask the bot; return (chat HTML, answer text or None, ok). Never raises: errors become a message."""
    try:
        answer = bot.ask(question, history=[tuple(turn) for turn in history])
    except ValueError as e:  # the bot's user-facing message (empty, too long, ...)
        return format_error(str(e)), None, False
    except Exception:  # anything else: log the traceback on the server, show a plain message
        log.exception("answering %r failed", question[:200])
        return format_error(GENERIC_ERROR), None, False
    return format_answer(answer), answer.text, True


def build_app(bot: Chatbot, *, concurrency_limit: int = DEFAULT_CONCURRENCY,
              max_queue: int = MAX_QUEUE, library: Library | None = None) -> gr.Blocks:
    """The chat UI and the ``/ask`` and ``/add_documents`` API over ``bot``, queue configured.

    Launch it with :func:`launch`, or use :func:`serve`. A session's added documents live in ``library``
    (default: a :class:`qa.chat.library.Library` over ``bot``); a session without any is answered by ``bot``.
    """
    from qa.chat.library import Library

    description = bot.describe()
    library = library if library is not None else Library(base=bot)

    def session_of(request: gr.Request | None) -> str:
        return getattr(request, "session_hash", None) or ""

    def show_question(message: str, chat: list[Message] | None) -> tuple[str, list[Message], str]:
        """First, at once (not queued): echo the question in the chat, clear the box, remember what to ask."""
        message = message or ""
        chat = list(chat or [])
        if message.strip():
            chat.append(_reply("user", format_question(message)))
        return "", chat, message

    def answer(pending: str, chat: list[Message] | None, asked: list[list[Any]] | None,
               request: gr.Request = None) -> tuple[list[Message], list[list[Any]]]:
        """Then, queued: ask the bot with this conversation's earlier questions and answers."""
        asked = list(asked or [])
        html_reply, text, ok = _ask_safely(library.bot_for(session_of(request)), pending or "", asked)
        chat = [*(chat or []), _reply("assistant", html_reply)]
        if ok:
            asked.append([pending, text])
        return chat, asked

    def clear() -> tuple[list[Message], list[str], str, str]:
        return [], [], "", ""

    def ask(question: str, history: list[Any] | None = None, request: gr.Request = None) -> dict[str, Any]:
        """Answer a question about the article: the JSON of Answer.to_dict() (answer null = abstain).

        ``history`` (optional): the conversation so far, oldest first, as ``{"question": ...,
        "answer": ...}`` objects or ``[question, answer]`` pairs (answer null where it abstained), so a
        follow-up like "Why did they object?" is understood. Errors (empty or too-long question, a
        malformed history) raise gr.Error; gradio_client raises AppError. Documents added in the same
        session (``/add_documents``) are what it answers from.
        """
        try:
            earlier = turns(history)
        except TypeError as e:
            raise gr.Error(f"Bad history: {e}", print_exception=False) from e
        try:
            chatbot = library.bot_for(session_of(request))
            return chatbot.ask(question if isinstance(question, str) else "", history=earlier).to_dict()
        except ValueError as e:
            raise gr.Error(str(e) or "Bad question.", print_exception=False) from e
        except Exception as e:
            log.exception("/ask failed")
            raise gr.Error(GENERIC_ERROR, print_exception=False) from e

    with gr.Blocks(title="qa · ask the article", analytics_enabled=False,
                   delete_cache=(UPLOAD_CACHE_SECONDS, UPLOAD_CACHE_SECONDS)) as demo:
        gr.Markdown("## Ask the article\n"
                    "Answers are exact quotes from the text, with the passage they come from.")
        gr.HTML(status_line(description, concurrency=concurrency_limit), elem_id="qa-status")
        chatbot = gr.Chatbot(
            label="Chat",
            elem_id="qa-chat",
            height=600,
            render_markdown=False,  # our HTML from ui.format, sanitized by Gradio; no Markdown/LaTeX
            sanitize_html=True,
            latex_delimiters=[],
            feedback_options=None,
            buttons=["copy"],
            placeholder="Ask a question about the article. Follow-ups like “Why did they object?” work.",
        )
        with gr.Row():
            textbox = gr.Textbox(
                show_label=False,
                placeholder=f"Your question (up to {MAX_QUESTION_CHARS} characters)…",
                max_length=MAX_QUESTION_CHARS,
                lines=1,
                scale=6,
                autofocus=True,
                elem_id="qa-question",
            )
            send = gr.Button("Send", variant="primary", scale=1, min_width=80, elem_id="qa-send")
            clear_btn = gr.Button("Clear chat", scale=1, min_width=80, elem_id="qa-clear")
        gr.Examples(
            examples=[[q] for q in EXAMPLES],
            inputs=[textbox],
            label="Examples (ask the follow-up pair in order; the last one is not in the article)",
        )
        with gr.Accordion("Your documents (this window only)", open=False, elem_id="qa-documents"):
            gr.Markdown("Ask about your own text: upload files (" + ", ".join(SUFFIXES) + "), paste text or "
                        "give a link. Only this window sees them; with none, the article above answers.")
            upload = gr.File(label="Upload", file_count="multiple", file_types=list(SUFFIXES),
                             elem_id="qa-upload")
            with gr.Row():
                paste = gr.Textbox(label="Paste text", lines=3, scale=6, elem_id="qa-paste")
                paste_btn = gr.Button("Add text", scale=1, min_width=80, elem_id="qa-add-text")
            with gr.Row():
                link = gr.Textbox(label="Link", placeholder="https://…", scale=6, elem_id="qa-link")
                link_btn = gr.Button("Add link", scale=1, min_width=80, elem_id="qa-add-link")
            with gr.Row():
                docs = gr.Dropdown(label="This window's documents", choices=[], value=None, scale=6,
                                   interactive=True, elem_id="qa-docs")
                remove_btn = gr.Button("Remove", scale=1, min_width=80, elem_id="qa-remove")
            doc_status = gr.Markdown("", elem_id="qa-doc-status")
        asked = gr.State([])  # this conversation's earlier (valid) turns: [question, answer or None]
        pending = gr.State("")  # the question being answered

        for trigger in (textbox.submit, send.click):
            trigger(
                show_question, [textbox, chatbot], [textbox, chatbot, pending],
                queue=False, api_visibility="private",
            ).then(
                answer, [pending, chatbot, asked], [chatbot, asked],
                concurrency_id=CONCURRENCY_ID, api_visibility="private", show_progress="minimal",
            )
        clear_btn.click(clear, None, [chatbot, asked, pending, textbox], queue=False,
                        api_visibility="private")
        # the chat window's own trash icon clears the messages; forget the history with them
        chatbot.clear(clear, None, [chatbot, asked, pending, textbox], queue=False,
                      api_visibility="private")

        gr.api(ask, api_name="ask", concurrency_id=CONCURRENCY_ID)

        def change(action: Callable[[str, Callable[[str], None]], str], request: gr.Request,
                   progress: gr.Progress) -> tuple[Any, str]:
            """Run one document action; the list of documents and a status line (errors as text)."""
            session = session_of(request)
            try:
                done = action(session, lambda message: progress(None, desc=message))
            except (ValueError, OSError) as e:  # SourceError is a ValueError: the user's message
                done = format_error(str(e))
            except Exception:
                log.exception("adding a document failed")
                done = format_error(GENERIC_ERROR)
            names = library.documents(session)
            return gr.update(choices=names, value=None), done + documents_line(names)

        def on_upload(files: list[str] | None, request: gr.Request,
                      progress: gr.Progress = gr.Progress()) -> tuple[Any, str, None]:  # noqa: B008
            paths = [str(f) for f in files or []]
            return (*change(lambda session, say: documents_added(library.add_files(
                session, paths, progress=say)), request, progress), None)

        def on_paste(text: str, request: gr.Request,
                     progress: gr.Progress = gr.Progress()) -> tuple[Any, str, str]:  # noqa: B008
            return (*change(lambda session, say: documents_added([library.add_text(
                session, text, progress=say)]), request, progress), "")

        def on_link(url: str, request: gr.Request,
                    progress: gr.Progress = gr.Progress()) -> tuple[Any, str, str]:  # noqa: B008
            return (*change(lambda session, say: documents_added([library.add_url(
                session, url, progress=say)]), request, progress), "")

        def on_remove(name: str | None, request: gr.Request,
                      progress: gr.Progress = gr.Progress()) -> tuple[Any, str]:  # noqa: B008
            def remove(session: str, say: Callable[[str], None]) -> str:
                if not name:
                    raise ValueError("Choose a document to remove.")
                library.remove(session, name, progress=say)
                return document_removed(name)
            return change(remove, request, progress)

        private = {"concurrency_id": CONCURRENCY_ID, "api_visibility": "private"}
        upload.upload(on_upload, [upload], [docs, doc_status, upload], **private)
        paste_btn.click(on_paste, [paste], [docs, doc_status, paste], **private)
        link.submit(on_link, [link], [docs, doc_status, link], **private)
        link_btn.click(on_link, [link], [docs, doc_status, link], **private)
        remove_btn.click(on_remove, [docs], [docs, doc_status], **private)

        def add_documents(files: list[str] | None, text: str | None, url: str | None,
                          request: gr.Request) -> dict[str, Any]:
            """Add files, pasted text and/or a web page; this session's later ``/ask`` calls use them.

            Returns ``{"added": [names], "documents": [all of the session's names]}``; a document that
            cannot be read raises gr.Error saying why (gradio_client: AppError), and nothing is added.
            """
            session = session_of(request)
            added: list[str] = []
            try:
                if files:
                    added += library.add_files(session, [str(f) for f in files])
                if text and text.strip():
                    added.append(library.add_text(session, text))
                if url and url.strip():
                    added.append(library.add_url(session, url))
            except (ValueError, OSError) as e:
                raise gr.Error(str(e), print_exception=False) from e
            if not added:
                raise gr.Error("Nothing to add: give files, text or a url.", print_exception=False)
            return {"added": added, "documents": library.documents(session)}

        api_files = gr.File(file_count="multiple", visible=False)
        api_text, api_url = gr.Textbox(visible=False), gr.Textbox(visible=False)
        api_out = gr.JSON(visible=False)
        gr.Button(visible=False).click(add_documents, [api_files, api_text, api_url], api_out,
                                       api_name="add_documents", concurrency_id=CONCURRENCY_ID)
        def end_session(request: gr.Request) -> None:
            """The tab closed: delete its documents and index."""
            library.end(session_of(request))

        demo.unload(end_session)

    demo.queue(default_concurrency_limit=concurrency_limit, max_size=max_queue)
    return demo


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
          min_similarity: float | None = None, database: str | None = None) -> None:
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
    bot = Chatbot(sources=sources, index_dir=index_dir, reader=reader, database=database, **options)
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
              top_k=args.top_k, mode=args.mode)
    except KeyboardInterrupt:
        print("Stopped.", flush=True)
    except (ValueError, TypeError, OSError, RuntimeError) as e:  # bad sources, port in use, ...
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
