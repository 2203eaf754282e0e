"""The chat page and its ``/ask`` endpoint: Gradio Blocks over a Chatbot, rendered by :mod:`ui.format`."""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
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
#: Adding documents has its own concurrency group, so it never takes the questions' places; the indexing
#: pool (``qa.chat.workers``) queues or refuses what gets through.
DOCUMENTS_ID = "qa-documents"
#: Sessions (Gradio's session hash) remembered as having added documents over the API, to tell an old
#: client that ``/ask`` now needs the token; and windows' tokens, to let them go when a window closes.
REMEMBERED_SESSIONS = 10_000
#: What ``/ask`` says to a client that added documents but asks without their token.
TOKEN_NEEDED = ("This session added documents: pass the token /add_documents returned, "
                "client.predict(question, [], token, api_name=\"/ask\"), to be answered from them.")
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

    # Gradio's session hash is chosen by the client and shows in URLs: it is never the key to documents,
    # only a way to tell a closed window's token to go and to explain the token to old API clients.
    tokens_of: OrderedDict[str, set[str]] = OrderedDict()

    def remember(request: gr.Request | None, token: str) -> None:
        tokens_of.setdefault(session_of(request), set()).add(token)
        tokens_of.move_to_end(session_of(request))
        while len(tokens_of) > REMEMBERED_SESSIONS:
            tokens_of.popitem(last=False)

    def show_question(message: str, chat: list[Message] | None) -> tuple[str, list[Message], str]:
        """First, at once (not queued): echo the question in the chat, clear the box, remember what to ask."""
        message = message or ""
        chat = list(chat or [])
        if message.strip():
            chat.append(_reply("user", format_question(message)))
        return "", chat, message

    def answer(pending: str, chat: list[Message] | None, asked: list[list[Any]] | None,
               token: str | None) -> tuple[list[Message], list[list[Any]], str]:
        """Then, queued: ask the bot with this conversation's earlier questions and answers."""
        asked = list(asked or [])
        with library.asking():
            try:
                bot = library.bot_for(token)
            except ValueError as e:  # the window's documents are gone: say so once, then the article answers
                return [*(chat or []), _reply("assistant", format_error(str(e)))], asked, ""
            html_reply, text, ok = _ask_safely(bot, pending or "", asked)
        chat = [*(chat or []), _reply("assistant", html_reply)]
        if ok:
            asked.append([pending, text])
        return chat, asked, token or ""

    def clear() -> tuple[list[Message], list[str], str, str]:
        return [], [], "", ""

    def ask(question: str, history: list[Any] | None = None, token: str | None = None,
            request: gr.Request = None) -> dict[str, Any]:
        """Answer a question about the article: the JSON of Answer.to_dict() (answer null = abstain).

        ``history`` (optional): the conversation so far, oldest first, as ``{"question": ...,
        "answer": ...}`` objects or ``[question, answer]`` pairs (answer null where it abstained), so a
        follow-up like "Why did they object?" is understood. Errors (empty or too-long question, a
        malformed history) raise gr.Error; gradio_client raises AppError. ``token`` (optional): the one
        ``/add_documents`` returned, to be answered from those documents.
        """
        try:
            earlier = turns(history)
        except TypeError as e:
            raise gr.Error(f"Bad history: {e}", print_exception=False) from e
        if not token and session_of(request) in tokens_of:
            raise gr.Error(TOKEN_NEEDED, print_exception=False)
        try:
            with library.asking():
                chatbot = library.bot_for(token if isinstance(token, str) else None)
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
        # this window's documents token: kept in the page (not in Gradio's per-session-hash state), so
        # knowing the session hash does not reach the documents
        token = gr.Textbox(visible=False, elem_id="qa-token")
        pending = gr.State("")  # the question being answered

        for trigger in (textbox.submit, send.click):
            trigger(
                show_question, [textbox, chatbot], [textbox, chatbot, pending],
                queue=False, api_visibility="private",
            ).then(
                answer, [pending, chatbot, asked, token], [chatbot, asked, token],
                concurrency_id=CONCURRENCY_ID, api_visibility="private", show_progress="minimal",
            )
        clear_btn.click(clear, None, [chatbot, asked, pending, textbox], queue=False,
                        api_visibility="private")
        # the chat window's own trash icon clears the messages; forget the history with them
        chatbot.clear(clear, None, [chatbot, asked, pending, textbox], queue=False,
                      api_visibility="private")

        gr.api(ask, api_name="ask", concurrency_id=CONCURRENCY_ID)

        def change(action: Callable[[str, Callable[[str], None]], str], current: str | None,
                   request: gr.Request, progress: gr.Progress) -> tuple[Any, str, str]:
            """Run one document action; the list of documents, a status line (errors as text), the token."""
            session = current or ""
            try:
                session = library.open(current)  # a new token when the window has none (or its are gone)
                remember(request, session)
                done = action(session, lambda message: progress(None, desc=message))
            except (ValueError, OSError) as e:  # SourceError is a ValueError: the user's message
                done = format_error(str(e))
            except Exception:
                log.exception("adding a document failed")
                done = format_error(GENERIC_ERROR)
            names = library.documents(session)
            return gr.update(choices=names, value=None), done + documents_line(names), session

        def on_upload(files: list[str] | None, current: str | None, request: gr.Request,
                      progress: gr.Progress = gr.Progress()) -> tuple[Any, str, str, None]:  # noqa: B008
            paths = [str(f) for f in files or []]
            return (*change(lambda session, say: documents_added(library.add_files(
                session, paths, progress=say)), current, request, progress), None)

        def on_paste(text: str, current: str | None, request: gr.Request,
                     progress: gr.Progress = gr.Progress()) -> tuple[Any, str, str, str]:  # noqa: B008
            return (*change(lambda session, say: documents_added([library.add_text(
                session, text, progress=say)]), current, request, progress), "")

        def on_link(url: str, current: str | None, request: gr.Request,
                    progress: gr.Progress = gr.Progress()) -> tuple[Any, str, str, str]:  # noqa: B008
            return (*change(lambda session, say: documents_added([library.add_url(
                session, url, progress=say)]), current, request, progress), "")

        def on_remove(name: str | None, current: str | None, request: gr.Request,
                      progress: gr.Progress = gr.Progress()) -> tuple[Any, str, str]:  # noqa: B008
            def remove(session: str, say: Callable[[str], None]) -> str:
                if not name:
                    raise ValueError("Choose a document to remove.")
                library.remove(session, name, progress=say)
                return document_removed(name)
            return change(remove, current, request, progress)

        adding = library.pool.workers + library.pool.max_pending + 1  # one more than fits: it is refused
        private = {"concurrency_id": DOCUMENTS_ID, "concurrency_limit": adding, "api_visibility": "private"}
        upload.upload(on_upload, [upload, token], [docs, doc_status, token, upload], **private)
        paste_btn.click(on_paste, [paste, token], [docs, doc_status, token, paste], **private)
        link.submit(on_link, [link, token], [docs, doc_status, token, link], **private)
        link_btn.click(on_link, [link, token], [docs, doc_status, token, link], **private)
        remove_btn.click(on_remove, [docs, token], [docs, doc_status, token], **private)

        def add_documents(files: list[str] | None, text: str | None, url: str | None,
                          token: str | None = None, request: gr.Request = None) -> dict[str, Any]:
            """Add files, pasted text and/or a web page; ``/ask`` calls given the returned token use them.

            Returns ``{"added": [names], "documents": [all names under the token], "token": token}``; pass
            the token back (here, to add more; to ``/ask``, to be answered from them). A document that
            cannot be read raises gr.Error saying why (gradio_client: AppError), and nothing is added.
            """
            added: list[str] = []
            paths = [str(f) for f in files or []]
            try:
                session = library.open(token or None)
                remember(request, session)
                if paths:
                    added += library.add_files(session, paths)
                if text and text.strip():
                    added.append(library.add_text(session, text))
                if url and url.strip():
                    added.append(library.add_url(session, url))
            except (ValueError, OSError) as e:
                raise gr.Error(str(e), print_exception=False) from e
            if not added:
                raise gr.Error("Nothing to add: give files, text or a url.", print_exception=False)
            return {"added": added, "documents": library.documents(session), "token": session}

        api_files = gr.File(file_count="multiple", visible=False)
        api_text, api_url, api_token = gr.Textbox(visible=False), gr.Textbox(visible=False), \
            gr.Textbox(visible=False)
        api_out = gr.JSON(visible=False)
        gr.Button(visible=False).click(add_documents, [api_files, api_text, api_url, api_token], api_out,
                                       api_name="add_documents", concurrency_id=DOCUMENTS_ID,
                                       concurrency_limit=adding)

        def end_session(request: gr.Request) -> None:
            """The tab closed: its documents go after a grace period (``qa.chat.library.close``)."""
            for session in tokens_of.pop(session_of(request), set()):
                library.close(session)

        demo.unload(end_session)

    demo.queue(default_concurrency_limit=concurrency_limit, max_size=max_queue)
    return demo
