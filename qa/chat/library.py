"""Documents a user adds in one session (upload, paste, link), and a chatbot over them per session.

Sessions are keyed by a token the server issues (:meth:`Library.open`, ``secrets.token_urlsafe``), never
by anything the client chose such as Gradio's session hash: only whoever holds the token reaches its
documents. Each session's files and index live in a temporary folder that is deleted when the session
ends, has been idle for ``IDLE_SECONDS``, or is evicted to make room (least recently used first, under
the server-wide caps of :mod:`qa.chat.budget`); a session without documents is answered by the
configured chatbot.

A document's passages are counted before anything is embedded, and one that would take the session
over ``max_passages`` (or the server over its caps) is refused then. All indexing runs in one bounded
pool (:mod:`qa.chat.workers`) that lets questions being answered go first.

Added documents are indexed in two steps so that answering starts early: first their passages alone
(the passage vectors stand in for sentence vectors), then, in a background thread, the full index
with a vector per sentence, which replaces the first one when it is ready (``python
scripts/format_check.py`` times a 20-page PDF to its first answer).
"""

from __future__ import annotations

import re
import secrets
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qa.chat.budget import (
    MAX_SESSIONS,
    MAX_TOTAL_BYTES,
    MAX_TOTAL_PASSAGES,
    Usage,
    count_passages,
    evictions,
    folder_bytes,
)
from qa.chat.workers import IndexPool, QuestionGate, YieldingEmbedder
from qa.ingest.errors import SourceError, printable, safe_file_name
from qa.ingest.sources import SUFFIXES, is_url

#: Documents one session may hold.
MAX_DOCUMENTS = 20
#: Passages one session's documents may make (about 400 pages of text).
MAX_PASSAGES = 5_000
#: A session unused for this long is ended (its files and index deleted).
IDLE_SECONDS = 3600
#: The longest pasted text, in characters: ordinary prose this long fits in ``MAX_PASSAGES``. Measured with
#: ``qa.ingest.chunk.chunk_text`` (``python -c "from qa.chat.budget import count_passages; ..."`` over the
#: text): the bundled article makes a passage per 292 characters (2,565 passages at this limit), SQuAD
#: v1.1 dev prose one per 457 (1,640), and prose of short sentences one per 151 (4,967).
MAX_PASTE_CHARS = 750_000
#: Tokens of ended sessions remembered (oldest forgotten first), to tell their holders what happened.
REMEMBERED_ENDINGS = 10_000
#: Why a session is gone, by how it ended.
EVICTED = "your documents were removed to make room for other visitors' documents; add them again"
EXPIRED = "your documents were deleted after {minutes} minutes unused; add them again"
CLOSED = "your documents were deleted when their window closed; add them again"
UNKNOWN = "unknown documents token: add documents first (adding returns the token that asking takes)"
FULL = "the server holds as many documents as it can just now; try again in a few minutes"
#: A window that closed keeps its documents this long in case it was not really closed (then a use
#: keeps them): closing cannot be told from the outside, so it must not delete at once.
CLOSE_GRACE_SECONDS = 300

Log = Callable[[str], None]


@dataclass
class _Session:
    """One session's folder, documents (display name -> file), their passages, and its chatbot."""

    folder: Path | None = None
    documents: dict[str, Path] = field(default_factory=dict)
    passages: dict[str, int] = field(default_factory=dict)
    bytes: int = 0
    bot: Any = None
    used: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: Counts rebuilds: a background refinement only replaces the chatbot it was started for.
    generation: int = 0
    refining: Future | None = None


class Library:
    """Per-session documents and chatbots that share one embedder, one reader and one indexing pool."""

    def __init__(self, *, base: Any, root: str | Path | None = None, max_documents: int = MAX_DOCUMENTS,
                 max_passages: int = MAX_PASSAGES, idle_seconds: float = IDLE_SECONDS,
                 refine: bool = True, max_sessions: int = MAX_SESSIONS,
                 max_total_bytes: int = MAX_TOTAL_BYTES, max_total_passages: int = MAX_TOTAL_PASSAGES,
                 pool: IndexPool | None = None, gate: QuestionGate | None = None,
                 allow_private_urls: bool | None = None) -> None:
        if not hasattr(base, "ask") or not hasattr(base, "warm_up"):
            raise TypeError("base must be a qa.chat.chatbot.Chatbot "
                            "(the corpus a session without documents uses)")
        for label, value in (("max_documents", max_documents), ("max_passages", max_passages),
                             ("max_sessions", max_sessions), ("max_total_bytes", max_total_bytes),
                             ("max_total_passages", max_total_passages)):
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
        #: Server-wide caps over all sessions (``qa.chat.budget``).
        self.max_sessions = max_sessions
        self.max_total_bytes = max_total_bytes
        self.max_total_passages = max_total_passages
        #: Where all indexing runs; questions marked with ``gate.asking()`` go first.
        self.pool = pool if pool is not None else IndexPool()
        self.gate = gate if gate is not None else QuestionGate()
        self._sessions: dict[str, _Session] = {}
        self._ended: OrderedDict[str, str] = OrderedDict()  # token -> why it ended
        self._lock = threading.RLock()

    def open(self, session: str | None = None) -> str:
        """``session`` if it is a live token, else a new token (a session without documents yet)."""
        self.sweep()
        with self._lock:
            if session and session in self._sessions:
                self._sessions[session].used = time.monotonic()
                return session
            self._make_room(keep="", sessions=1)
            token = secrets.token_urlsafe(16)
            self._sessions[token] = _Session()
            return token

    def bot_for(self, session: str | None) -> Any:
        """The chatbot that answers this session: over its documents, else the configured one.

        SourceError says why when ``session`` is a token whose documents are gone (or never was one).
        """
        self.sweep()
        if not session:
            return self.base
        found = self._sessions.get(session)
        if found is None:
            raise SourceError(self._ended.get(session, UNKNOWN))
        found.used = time.monotonic()
        return found.bot if found.bot is not None else self.base

    def asking(self) -> Any:
        """A context manager around answering a question: indexing waits for it (``qa.chat.workers``)."""
        return self.gate.asking()

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
                              f"{MAX_PASTE_CHARS:,}): paste a shorter part")
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
        self._live(session)
        if progress:
            progress(f"Fetching {printable(url)}…")
        text = url_text(url, allow_private=self.allow_private_urls)
        slug = safe_file_name(re.sub(r"^https?://", "", url).replace("/", "_"), "page")[:80]
        name = slug if slug.lower().endswith(".txt") else f"{slug}.txt"
        return self._add(session, [(name, lambda dest: dest.write_text(text, encoding="utf-8"))], progress)[0]

    def remove(self, session: str, name: str, *, progress: Log | None = None) -> None:
        """Remove one of the session's documents (the configured corpus answers when none is left)."""
        found = self._sessions.get(session)
        if found is None or name not in found.documents:
            raise SourceError(f"{printable(name)}: not one of this session's documents")

        def remove_now() -> None:
            with found.lock:
                found.documents.pop(name).unlink(missing_ok=True)
                found.passages.pop(name, None)
                self._rebuild(found, progress)
        self.pool.run(remove_now)

    def wait(self, session: str, timeout: float | None = None) -> None:
        """Wait until the session's full index is in place (its background refinement has finished)."""
        found = self._sessions.get(session)
        refining = found.refining if found is not None else None
        if refining is not None:
            refining.exception(timeout)

    def close(self, session: str) -> None:
        """Its window closed: end the session ``CLOSE_GRACE_SECONDS`` from now unless it is used again."""
        found = self._sessions.get(session)
        if found is not None:
            found.used = min(found.used, time.monotonic() - self.idle_seconds + CLOSE_GRACE_SECONDS)

    def end(self, session: str, *, why: str = CLOSED) -> None:
        """Forget a session and delete its files and index (``why`` is told to a later use of its token)."""
        with self._lock:
            found = self._sessions.pop(session, None)
            self._ended[session] = why
            while len(self._ended) > REMEMBERED_ENDINGS:
                self._ended.popitem(last=False)
        if found is not None:
            with found.lock:  # a background refinement finishes first (it writes into the folder)
                found.generation += 1
                found.bot = None
                if found.folder is not None:
                    shutil.rmtree(found.folder, ignore_errors=True)

    def sweep(self) -> None:
        """End the sessions idle for longer than ``idle_seconds``."""
        now = time.monotonic()
        expired = EXPIRED.format(minutes=round(self.idle_seconds / 60))
        for session, found in list(self._sessions.items()):
            if now - found.used > self.idle_seconds and not found.lock.locked():
                self.end(session, why=expired)

    def usage(self) -> Iterator[Usage]:
        """Each session's cost, as the server-wide caps count it."""
        for key, found in list(self._sessions.items()):
            yield Usage(key, found.used, found.bytes, sum(found.passages.values()), found.lock.locked())

    def _make_room(self, *, keep: str, sessions: int = 0, nbytes: int = 0, passages: int = 0) -> None:
        """Evict least recently used sessions until the caps allow this much more; else SourceError(FULL)."""
        with self._lock:
            victims = evictions(self.usage(), keep=keep, sessions=sessions, nbytes=nbytes, passages=passages,
                                max_sessions=self.max_sessions, max_bytes=self.max_total_bytes,
                                max_passages=self.max_total_passages)
            if victims is None:
                raise SourceError(FULL)
            for victim in victims:
                self.end(victim, why=EVICTED)

    def _live(self, session: str) -> _Session:
        """The session's record; SourceError when the token is not a live one."""
        if not isinstance(session, str) or not session:
            raise ValueError("a session token (Library.open) is needed to add documents")
        self.sweep()
        found = self._sessions.get(session)
        if found is None:
            raise SourceError(self._ended.get(session, UNKNOWN))
        found.used = time.monotonic()
        return found

    def _add(self, session: str, items: list[tuple[str, Callable[[Path], Any]]],
             progress: Log | None) -> list[str]:
        """Add the items on the indexing pool (refused at once when it is full)."""
        found = self._live(session)
        if len(found.documents) + len(items) > self.max_documents:
            raise SourceError(f"a session holds at most {self.max_documents} documents; remove one first")
        return self.pool.run(self._add_now, session, found, items, progress)

    def _add_now(self, session: str, found: _Session, items: list[tuple[str, Callable[[Path], Any]]],
                 progress: Log | None) -> list[str]:
        """Write each item's file, count its passages, make room, rebuild the chatbot; undo on failure."""
        from qa.ingest.sources import read_source

        with found.lock:
            if session not in self._sessions:  # ended while waiting for its turn
                raise SourceError(self._ended.get(session, UNKNOWN))
            if len(found.documents) + len(items) > self.max_documents:
                raise SourceError(f"a session holds at most {self.max_documents} documents; remove one first")
            if found.folder is None:
                self.root.mkdir(parents=True, exist_ok=True)
                found.folder = Path(tempfile.mkdtemp(prefix="qa-session-", dir=self.root))
                (found.folder / "docs").mkdir()
            added: list[str] = []
            try:
                nbytes, left = 0, self.max_passages - sum(found.passages.values())
                for name, write in items:
                    name = self._unique(found, safe_file_name(name, "document.txt"))
                    dest = found.folder / "docs" / name
                    write(dest)
                    found.documents[name] = dest
                    added.append(name)
                    nbytes += dest.stat().st_size
                    if progress:
                        progress(f"Counting the passages of {name}…")
                    found.passages[name] = count_passages(read_source(dest), limit=left)
                    left -= found.passages[name]
                    if left < 0:
                        raise SourceError(f"{name}: too long: a session holds at most {self.max_passages:,} "
                                          "passages and these documents make more (nothing was embedded); "
                                          "remove a document or add a shorter one")
                self._make_room(keep=session, nbytes=nbytes)  # its new passages are counted in already
                self._rebuild(found, progress)  # reading the new files raises SourceError naming a bad one
            except BaseException:
                for name in added:
                    found.documents.pop(name).unlink(missing_ok=True)
                    found.passages.pop(name, None)
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

        Call it holding ``found.lock``. The chatbot first indexes passages only; the full index is then
        built on the indexing pool and swapped in (``refine``).
        """
        found.generation += 1
        if not found.documents:
            found.bot = None
            found.bytes = folder_bytes(found.folder) if found.folder is not None else 0
            return
        bot = self._chatbot(found, progress, sentence_vectors=not self.refine)
        bot.warm_up(progress=progress)
        passages = len(bot.index.passages)
        if passages > self.max_passages:  # counted before embedding; this only guards the count itself
            raise SourceError(f"these documents make {passages:,} passages; a session holds at most "
                              f"{self.max_passages:,}: remove a document or add a shorter one")
        found.bot = bot
        found.bytes = folder_bytes(found.folder)
        if self.refine:
            found.refining = self.pool.background(self._refine, found, found.generation)

    def _chatbot(self, found: _Session, progress: Log | None, *, sentence_vectors: bool) -> Any:
        """A chatbot (not loaded) over the session's documents with the base's models and settings."""
        from qa.chat.chatbot import Chatbot

        base = self.base
        base.warm_up()
        return Chatbot(sources=list(found.documents.values()), index_dir=found.folder / "index",
                       reader=base.reader, embedder=YieldingEmbedder(base.retriever.embedder, self.gate),
                       top_k=base.top_k, mode=base.mode, min_similarity=base.min_similarity,
                       log=progress or (lambda m: None), source_root=found.folder / "docs",
                       sentence_vectors=sentence_vectors)

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
                found.bytes = folder_bytes(found.folder)
