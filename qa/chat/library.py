"""Documents a user adds in one session (upload, paste, link), and a chatbot over them per session.

The app keys sessions by Gradio's session hash: a browser tab, or one ``gradio_client.Client``. Each
session's files and index live in a temporary folder that is deleted when the session ends or has
been idle for ``IDLE_SECONDS``; a session without documents is answered by the configured chatbot.

Added documents are indexed in two steps so that answering starts early: first their passages alone
(the passage vectors stand in for sentence vectors), then, in a background thread, the full index
with a vector per sentence, which replaces the first one when it is ready (``python
scripts/format_check.py`` times a 20-page PDF to its first answer).
"""

from __future__ import annotations

import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qa.ingest.errors import SourceError, printable, safe_file_name
from qa.ingest.sources import SUFFIXES, is_url

#: Documents one session may hold.
MAX_DOCUMENTS = 20
#: Passages one session's documents may make (about 400 pages of text).
MAX_PASSAGES = 5_000
#: A session unused for this long is ended (its files and index deleted).
IDLE_SECONDS = 3600
#: The longest pasted text, in characters.
MAX_PASTE_CHARS = 2_000_000

Log = Callable[[str], None]


@dataclass
class _Session:
    """One session's folder, documents (display name -> file) and chatbot."""

    folder: Path
    documents: dict[str, Path] = field(default_factory=dict)
    bot: Any = None
    used: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: Counts rebuilds: a background refinement only replaces the chatbot it was started for.
    generation: int = 0
    refining: threading.Thread | None = None


def _safe_name(name: str, fallback: str) -> str:
    """A file name without path parts or odd characters, its suffix kept, short enough to store."""
    return safe_file_name(name, fallback)


class Library:
    """Per-session documents and chatbots that share one embedder and one reader."""

    def __init__(self, *, base: Any, root: str | Path | None = None, max_documents: int = MAX_DOCUMENTS,
                 max_passages: int = MAX_PASSAGES, idle_seconds: float = IDLE_SECONDS,
                 refine: bool = True, allow_private_urls: bool | None = None) -> None:
        if not hasattr(base, "ask") or not hasattr(base, "warm_up"):
            raise TypeError("base must be a qa.chat.chatbot.Chatbot "
                            "(the corpus a session without documents uses)")
        for label, value in (("max_documents", max_documents), ("max_passages", max_passages)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{label} must be a positive int, got {value!r}")
        self.base = base
        self.root = Path(root) if root is not None else Path(tempfile.gettempdir())
        self.max_documents = max_documents
        self.max_passages = max_passages
        self.idle_seconds = float(idle_seconds)
        #: Whether a passages-only index is followed by the full one in the background.
        self.refine = bool(refine)
        #: Whether added web addresses may be loopback or private (default: as the base chatbot allows).
        self.allow_private_urls = bool(getattr(base, "allow_private_urls", False)
                                       if allow_private_urls is None else allow_private_urls)
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.Lock()

    def bot_for(self, session: str | None) -> Any:
        """The chatbot that answers this session: over its documents, else the configured one."""
        self.sweep()
        found = self._sessions.get(session or "")
        if found is None or found.bot is None:
            return self.base
        found.used = time.monotonic()
        return found.bot

    def documents(self, session: str | None) -> list[str]:
        """The names of this session's documents, in the order added."""
        found = self._sessions.get(session or "")
        return list(found.documents) if found else []

    def add_files(self, session: str, paths: Sequence[str | Path], *, names: Sequence[str] | None = None,
                  progress: Log | None = None) -> list[str]:
        """Add files (copied into the session); return their names. SourceError says why one cannot be."""
        names = list(names) if names is not None else [Path(p).name for p in paths]
        if len(names) != len(paths):
            raise ValueError("names must give one name per path")
        for path, name in zip(paths, names, strict=True):
            if Path(name).suffix.lower() not in SUFFIXES:
                raise SourceError(f"{printable(name)}: unsupported file type; add one of "
                                  f"{', '.join(SUFFIXES)}")
            if not Path(path).is_file():
                raise SourceError(f"{printable(name)}: the upload did not arrive; try again")
        return self._add(session, [(name, lambda dest, p=path: shutil.copyfile(p, dest)) for path, name
                                   in zip(paths, names, strict=True)], progress)

    def add_text(self, session: str, text: str, *, progress: Log | None = None) -> str:
        """Add pasted text as a document; return its name."""
        if not isinstance(text, str) or not text.strip():
            raise SourceError("the pasted text is empty: paste the article's text first")
        if len(text) > MAX_PASTE_CHARS:
            raise SourceError(f"the pasted text is too long ({len(text):,} characters; at most "
                              f"{MAX_PASTE_CHARS:,}): add it as a file instead")
        n = len(self.documents(session)) + 1
        name = f"pasted text {n}.txt"
        return self._add(session, [(name, lambda dest: dest.write_text(text, encoding="utf-8"))],
                         progress)[0]

    def add_url(self, session: str, url: str, *, progress: Log | None = None) -> str:
        """Fetch a web page (or a PDF by its address) once and add its text; return its name."""
        from qa.ingest.formats import url_text

        url = (url or "").strip()
        if not is_url(url):
            raise SourceError(f"{printable(url or 'the address')}: not a web address; give one starting with "
                              f"https://")
        if progress:
            progress(f"Fetching {printable(url)}…")
        text = url_text(url, allow_private=self.allow_private_urls)
        slug = _safe_name(re.sub(r"^https?://", "", url).replace("/", "_"), "page")[:80]
        name = slug if slug.lower().endswith(".txt") else f"{slug}.txt"
        return self._add(session, [(name, lambda dest: dest.write_text(text, encoding="utf-8"))], progress)[0]

    def remove(self, session: str, name: str, *, progress: Log | None = None) -> None:
        """Remove one of the session's documents (the configured corpus answers when none is left)."""
        found = self._sessions.get(session)
        if found is None or name not in found.documents:
            raise SourceError(f"{name}: not one of this session's documents")
        with found.lock:
            found.documents.pop(name).unlink(missing_ok=True)
            self._rebuild(found, progress)

    def wait(self, session: str, timeout: float | None = None) -> None:
        """Wait until the session's full index is in place (its background refinement has finished)."""
        found = self._sessions.get(session)
        thread = found.refining if found is not None else None
        if thread is not None:
            thread.join(timeout)

    def end(self, session: str) -> None:
        """Forget a session and delete its files and index."""
        with self._lock:
            found = self._sessions.pop(session, None)
        if found is not None:
            with found.lock:  # a background refinement finishes first (it writes into the folder)
                found.generation += 1
                shutil.rmtree(found.folder, ignore_errors=True)

    def sweep(self) -> None:
        """End the sessions idle for longer than ``idle_seconds``."""
        now = time.monotonic()
        for session, found in list(self._sessions.items()):
            if now - found.used > self.idle_seconds and not found.lock.locked():
                self.end(session)

    def _session(self, session: str) -> _Session:
        """The session's record, made on first use."""
        if not isinstance(session, str) or not session:
            raise ValueError("a session id is needed to add documents")
        self.sweep()
        with self._lock:
            if session not in self._sessions:
                self.root.mkdir(parents=True, exist_ok=True)
                folder = Path(tempfile.mkdtemp(prefix="qa-session-", dir=self.root))
                (folder / "docs").mkdir()
                self._sessions[session] = _Session(folder)
            found = self._sessions[session]
            found.used = time.monotonic()
            return found

    def _add(self, session: str, items: list[tuple[str, Callable[[Path], Any]]],
             progress: Log | None) -> list[str]:
        """Write each item's file, check it reads, and rebuild the session's chatbot; undo on failure."""
        found = self._session(session)
        with found.lock:
            if len(found.documents) + len(items) > self.max_documents:
                raise SourceError(f"a session holds at most {self.max_documents} documents; remove one first")
            added: list[str] = []
            try:
                for name, write in items:
                    name = self._unique(found, _safe_name(name, "document.txt"))
                    dest = found.folder / "docs" / name
                    write(dest)
                    found.documents[name] = dest
                    added.append(name)
                self._rebuild(found, progress)  # reading the new files raises SourceError naming a bad one
            except BaseException:
                for name in added:
                    found.documents.pop(name).unlink(missing_ok=True)
                try:
                    self._rebuild(found, None)  # back to the documents it had
                except Exception:
                    found.bot = None
                raise
            return added

    @staticmethod
    def _unique(found: _Session, name: str) -> str:
        """``name``, or ``stem (2).suffix`` etc. when the session already has it."""
        stem, suffix, n = Path(name).stem, Path(name).suffix, 2
        while name in found.documents:
            name, n = f"{stem} ({n}){suffix}", n + 1
        return name

    def _rebuild(self, found: _Session, progress: Log | None) -> None:
        """A chatbot over the session's documents (None when it has none), sharing the base's models.

        Call it holding ``found.lock``. The chatbot first indexes passages only; a background thread
        then builds the full index and swaps it in (``refine``).
        """
        found.generation += 1
        if not found.documents:
            found.bot = None
            return
        bot = self._chatbot(found, progress, sentence_vectors=not self.refine)
        bot.warm_up(progress=progress)
        passages = len(bot.index.passages)
        if passages > self.max_passages:
            raise SourceError(f"these documents make {passages:,} passages; a session holds at most "
                              f"{self.max_passages:,}: remove a document or add a shorter one")
        found.bot = bot
        if self.refine:
            # not a daemon: a process that exits lets it finish rather than killing it inside ONNX Runtime
            found.refining = threading.Thread(target=self._refine, args=(found, found.generation),
                                              name="qa-session-refine")
            found.refining.start()

    def _chatbot(self, found: _Session, progress: Log | None, *, sentence_vectors: bool) -> Any:
        """A chatbot (not loaded) over the session's documents with the base's models and settings."""
        from qa.chat.chatbot import Chatbot

        base = self.base
        base.warm_up()
        return Chatbot(sources=list(found.documents.values()), index_dir=found.folder / "index",
                       reader=base.reader, embedder=base.retriever.embedder, top_k=base.top_k, mode=base.mode,
                       min_similarity=base.min_similarity, log=progress or (lambda m: None),
                       source_root=found.folder / "docs", sentence_vectors=sentence_vectors)

    def _refine(self, found: _Session, generation: int) -> None:
        """Build the full index (a vector per sentence) and swap it in, unless the documents changed."""
        with found.lock:  # an addition waits for this; questions go on being answered meanwhile
            if found.generation != generation or found.bot is None:
                return
            try:
                bot = self._chatbot(found, None, sentence_vectors=True)
                bot.warm_up()
            except Exception:  # the session ended (its folder deleted) or a file changed: keep the first
                return
            if found.generation == generation:
                found.bot = bot
