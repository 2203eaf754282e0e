"""The chatbot: ties sources, index, retrieval and the reader into ``ask(question) -> Answer``."""

from __future__ import annotations

import bisect
import dataclasses
import os
import re
import sys
import threading
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from qa.chat.followup import Turn, is_follow_up, turns
from qa.chat.rewrite import Rewriter
from qa.chat.select import read_follow_up, read_in_rank_order
from qa.index.retrieve import DEFAULT_TOP_K, check_mode
from qa.ingest.chunk import sentence_around
from qa.ingest.errors import printable
from qa.ingest.sources import is_url
from qa.schema import Answer, Hit, Span


def _user_index_dir() -> Path:
    """The default index folder in the user's data folder (platformdirs)."""
    import platformdirs

    return platformdirs.user_data_path("qa", appauthor=False) / "index"


PACKAGE_DIR = Path(__file__).resolve().parent.parent
#: The bundled news article ships inside the package (a source checkout also shows it as ``seeds/``).
DEFAULT_SOURCES: tuple[Path, ...] = (PACKAGE_DIR / "seeds",)
#: ``QA_INDEX_DIR``, else the per-user data folder (``~/.local/share/qa/index`` on Linux), never the
#: install folder: an installed package may not write beside itself.
DEFAULT_INDEX_DIR = Path(os.environ.get("QA_INDEX_DIR") or _user_index_dir())
DEFAULT_MODE = "hybrid"
MAX_QUESTION_CHARS = 1000
#: ``min_similarity``: abstain when the chosen span's passage has a cosine similarity to the question
#: below it. Off by default: the reader's own threshold does most of the work. On 500 held-out SQuAD
#: questions asked with and without their article in the corpus (``python scripts/abstention_check.py``,
#: which prints every floor) the threshold alone abstains on 87.6 % of the unanswerable ones with 8.0 %
#: false abstentions; a floor of 0.3 gives 90.6 % with 8.8 %, 0.35 gives 92.4 % with 10.8 %.
DEFAULT_MIN_SIMILARITY = -1.0
#: The floor measured above for the bundled all-MiniLM-L6-v2 (another embedder has another scale).
MINILM_SIMILARITY_FLOOR = 0.35
_WORD = re.compile(r"\w+", re.UNICODE)

Log = Callable[[str], None]


def _stderr(message: str) -> None:
    """Default log: one line on stderr."""
    print(message, file=sys.stderr, flush=True)


def clean_question(question: Any) -> str:
    """Return the question with control characters removed, or raise a user-facing error."""
    if not isinstance(question, str):
        raise TypeError(f"the question must be a string, not {type(question).__name__}")
    if len(question) > 2 * MAX_QUESTION_CHARS:  # refuse before scanning a huge text character by character
        raise ValueError(
            f"The question is too long ({len(question):,} characters); "
            f"please keep it under {MAX_QUESTION_CHARS:,}."
        )
    text = "".join(" " if unicodedata.category(c)[0] == "C" else c for c in question)
    text = " ".join(text.split())
    if not text:
        raise ValueError("Please type a question.")
    if len(text) > MAX_QUESTION_CHARS:
        raise ValueError(
            f"The question is too long ({len(text):,} characters); "
            f"please keep it under {MAX_QUESTION_CHARS:,}."
        )
    if not any(c.isalnum() for c in text):
        raise ValueError("Please type a question with words in it.")
    return text


def shown_confidence(reader: Any, span: Span) -> float:
    """The confidence people see for a span: the reader's ``shown`` map (``qa.reader.read``), else its score.

    The span's own score picks it and decides abstention; a reader calibrated with ``qa calibrate-reader
    --map use`` shows a number fitted on the questions people ask (mostly answerable) instead.
    """
    shown = getattr(reader, "shown", None)
    return float(shown(span)) if callable(shown) else span.score


def retrieval_query(question: str, history: Sequence[Turn], rewritten: str) -> str:
    """The text to retrieve with: a follow-up's rewrite (``qa.chat.rewrite``) after the previous question.

    Measured by ``qa eval CONVERSATIONS --json`` (followup_f1) on ``python scripts/make_conversations.py``
    follow-ups: 59.48 with the previous question, 56.66 with the rewrite alone.
    """
    if not is_follow_up(question, history):
        return question
    return f"{history[-1].question} {rewritten}"


def _warm(models: Sequence[Any], failed: list[BaseException]) -> None:
    """Warm each model up (those with ``warm_up``), keeping what one raises in ``failed``."""
    try:
        for model in models:
            if hasattr(model, "warm_up"):
                model.warm_up()
    except BaseException as e:  # re-raised by the thread that waits for it
        failed.append(e)


def _context(span: Span, hits: Sequence[Hit]) -> dict[str, int | None]:
    """The source offsets of the sentence the span stands in (``Answer.context_start`` / ``_end``)."""
    for hit in hits:
        if hit.id == span.passage_id and hit.start <= span.start <= span.end <= hit.end:
            s, e = sentence_around(hit.text, span.start - hit.start, span.end - hit.start)
            return {"context_start": hit.start + s, "context_end": hit.start + e}
    return {"context_start": None, "context_end": None}


def source_stamps(names: Iterable[str], root: str | Path | None = None) -> dict[str, tuple[int, int] | None]:
    """Each source file's (size, modification time in ns), None where it cannot be found.

    ``names`` are relative to ``root`` (default: the working directory) unless absolute.
    """
    stamps: dict[str, tuple[int, int] | None] = {}
    for name in names:
        try:
            st = os.stat(os.path.join(root, name) if root is not None else name)
        except OSError:
            stamps[name] = None
        else:
            stamps[name] = (st.st_size, st.st_mtime_ns)
    return stamps


def page_breaks(texts: dict[str, str]) -> dict[str, list[int]]:
    """Where each PDF's pages break (the offsets of ``qa.ingest.formats.PAGE_BREAK``'s form feeds)."""
    return {name: [i for i, c in enumerate(text) if c == "\f"]
            for name, text in texts.items() if "\f" in text}


def _page(breaks: dict[str, list[int]], source: str | None, offset: int | None) -> int | None:
    """The 1-based page of ``offset`` in ``source``, None when it has no pages."""
    if source not in breaks or offset is None:
        return None
    return bisect.bisect_right(breaks[source], offset) + 1


class Chatbot:
    """Answers questions about a set of documents with spans of their text."""

    def __init__(
        self,
        *,
        sources: Sequence[str | Path] | None = None,
        index_dir: str | Path | None = None,
        reader: Any = None,
        top_k: int = DEFAULT_TOP_K,
        mode: str = DEFAULT_MODE,
        embedder: Any = None,
        min_similarity: float = DEFAULT_MIN_SIMILARITY,
        log: Log | None = None,
        source_root: str | Path | None = None,
        database: str | None = None,
        database_schema: str | None = None,
        sentence_vectors: bool = True,
        allow_private_urls: bool = False,
    ) -> None:
        if isinstance(sources, (str, Path)):
            sources = [sources]
        if sources is not None and not sources:
            raise ValueError("sources is empty: pass at least one file or folder, "
                             "or None for the bundled article")
        if sources is not None and any(isinstance(s, str) and not s.strip() for s in sources):
            raise ValueError("an empty path was given (an unset shell variable?): name a file or folder")
        if not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= 50:
            raise ValueError(f"top_k must be an integer from 1 to 50, got {top_k!r}")
        check_mode(mode)
        if isinstance(min_similarity, bool) or not isinstance(min_similarity, (int, float)) \
                or not -1 <= min_similarity <= 1:
            raise ValueError(f"min_similarity must be a cosine from -1 to 1 (-1: no floor), "
                             f"got {min_similarity!r}")
        self.min_similarity = float(min_similarity)
        #: Sources are named relative to this folder (default: the working directory).
        self.source_root = source_root
        if database is not None and (not isinstance(database, str) or "://" not in database):
            raise ValueError(f"database must be a URL such as postgresql://user@host/db, got {database!r}")
        #: A PostgreSQL URL: the index lives there (``qa.index.pgstore``), shared with other processes. With
        #: no ``sources`` the database's corpus is used as it is (the bundled article when it is empty).
        self.database = database
        #: The schema holding this corpus in ``database`` (None: ``pgstore.DEFAULT_SCHEMA``; ``qa eval``
        #: uses a temporary one).
        self.database_schema = database_schema
        if not isinstance(sentence_vectors, bool):
            raise TypeError(f"sentence_vectors must be True or False, got {sentence_vectors!r}")
        #: False: the local index embeds passages only (about half the work; a quick first index).
        self.sentence_vectors = sentence_vectors
        if not isinstance(allow_private_urls, bool):
            raise TypeError(f"allow_private_urls must be True or False, got {allow_private_urls!r}")
        #: True: web sources may be loopback or private addresses (local use; never behind a public link).
        self.allow_private_urls = allow_private_urls
        self._sources_given = sources is not None
        self.sources: list[Path | str] = [  # web addresses stay strings (a Path would mangle them)
            s if is_url(s) else Path(s)
            for s in (sources if sources is not None else DEFAULT_SOURCES)]
        self.index_dir = Path(index_dir) if index_dir is not None else DEFAULT_INDEX_DIR
        self.top_k = top_k
        self.mode = mode
        self._reader_arg = reader
        self._embedder_arg = embedder
        self.log: Log = log or _stderr
        self.reader: Any = None
        #: Makes follow-ups self-contained for the reader (``qa.chat.rewrite``; its weights load in warm_up).
        self.rewriter = Rewriter()
        self.index: Any = None
        self.retriever: Any = None
        self._stamps: dict[str, tuple[int, int] | None] = {}
        self._refresh_lock = threading.Lock()
        self._progress_bar = False
        self._page_breaks: dict[str, list[int]] = {}

    def warm_up(
        self, progress: Log | None = None, *, rebuild: bool = False, progress_bar: bool = False
    ) -> None:
        """Load the embedder, build or load the index (a bar on stderr if asked), and load the reader."""
        if self.retriever is not None and not rebuild:
            return
        from qa.index.build import build_or_load
        from qa.index.embed import Embedder
        from qa.index.retrieve import Retriever, import_retrieval_libraries
        from qa.reader.read import Reader

        self._progress_bar = progress_bar  # a later refresh (refresh_if_changed) shows its bar too
        say = progress or (lambda _m: None)
        reader = self._reader_arg
        if reader is None or isinstance(reader, (str, Path)):
            reader = Reader(log=self.log) if reader is None else Reader(model=reader, log=self.log)
        embedder = self._embedder_arg or Embedder(log=self.log)
        # the models load in another thread while this one imports the retrieval libraries: ONNX Runtime
        # builds its sessions mostly without the GIL (`qa bench --cold-runs 5` times the whole start)
        failed: list[BaseException] = []
        loading = threading.Thread(target=_warm, args=([embedder, reader], failed), name="qa-warm-up",
                                   daemon=True)
        loading.start()
        import_retrieval_libraries()
        if self.database is not None:
            retriever = self._database_retriever(embedder, say, rebuild=rebuild, progress_bar=progress_bar)
        else:
            texts = self._read_sources(say)
            say(f"Indexing {len(texts)} source(s) with {embedder.name}…")
            self.index = build_or_load(
                texts, self.index_dir, embedder, rebuild=rebuild, progress=progress_bar, log=self.log,
                sentences=self.sentence_vectors)
            retriever = Retriever(index=self.index, embedder=embedder, mode=self.mode, top_k=self.top_k)
        retriever.warm_up()
        say(f"Loading reader {getattr(reader, 'name', type(reader).__name__)}…")
        loading.join()
        if failed:
            raise failed[0]
        self.rewriter.warm_up()
        self.reader = reader
        self.retriever = retriever
        say("Ready.")

    def _read_sources(self, say: Log) -> dict[str, str]:
        """The sources' texts; their file stamps and PDF page breaks remembered."""
        from qa.ingest.sources import collect_sources

        say("Reading sources…")
        texts = collect_sources(self.sources, log=self.log, root=self.source_root,
                                allow_private_urls=self.allow_private_urls)
        self._stamps = source_stamps(texts, self.source_root)
        self._page_breaks = page_breaks(texts)
        return texts

    def _database_retriever(self, embedder: Any, say: Log, *, rebuild: bool, progress_bar: bool) -> Any:
        """The retriever over the database; its corpus updated first when sources were given."""
        from qa.index.pgstore import DEFAULT_SCHEMA, PgIndex, PgRetriever
        from qa.index.pgstore_write import sync

        store = PgIndex(url=self.database, schema=self.database_schema or DEFAULT_SCHEMA)
        store.check(embedder)
        if self._sources_given or rebuild or store.meta() is None:
            texts = self._read_sources(say)
            say(f"Updating the database with {len(texts)} source(s)…")
            sync(store, texts, embedder, rebuild=rebuild, progress=progress_bar, log=self.log)
        self.index = store
        return PgRetriever(store=store, embedder=embedder, mode=self.mode, top_k=self.top_k)

    def describe(self) -> str:
        """One line saying which corpus, reader and retrieval are loaded."""
        self.warm_up()
        if hasattr(self.index, "summary"):  # the database backend
            sources, passages = self.index.summary()
        else:
            sources, passages = sorted({p.source for p in self.index.passages}), len(self.index.passages)
        precision = getattr(self.reader, "precision", None)
        precision = f" ({precision})" if isinstance(precision, str) else ""
        shown = ", ".join(printable(s) for s in sources[:3]) \
            + (f", … ({len(sources) - 3} more)" if len(sources) > 3 else "")
        return (
            f"{len(sources)} source(s) ({shown}), {passages} passages · "
            f"reader: {getattr(self.reader, 'name', '?')}{precision} · "
            f"retrieval: {self.mode}, top {self.top_k}"
        )

    def refresh_if_changed(self) -> bool:
        """Re-read the sources and refresh the index when a source file changed or went; True if it did.

        A running chatbot (``qa serve``) must never cite offsets into text that is no longer the file's;
        a source that is gone raises ``qa.ingest.errors.SourceError`` naming it.
        """
        self.warm_up()
        if source_stamps(self._stamps, self.source_root) == self._stamps:
            return False
        with self._refresh_lock:
            now = source_stamps(self._stamps, self.source_root)
            if now == self._stamps:
                return False  # another thread refreshed it meanwhile
            changed = sorted(n for n in self._stamps if now.get(n) != self._stamps[n])
            self.log(f"{', '.join(changed)} changed on disk; refreshing the index.")
            self._reader_arg = self.reader  # keep the loaded reader
            self.retriever = None
            self.warm_up(progress_bar=self._progress_bar)
            return True

    def retrieve(self, question: str, history: Sequence[Any] | None = None) -> list[Hit]:
        """The top passages for a question, using the conversation for follow-ups."""
        text = clean_question(question)
        earlier = turns(history)
        return self._retrieve(retrieval_query(text, earlier, self.rewriter.rewrite(text, earlier).text))

    def _retrieve(self, query: str) -> list[Hit]:
        """The top passages for a retrieval query, with their page numbers where the source has pages."""
        self.refresh_if_changed()
        hits = self.retriever.retrieve(query, top_k=self.top_k)
        if not self._page_breaks:
            return hits
        return [dataclasses.replace(h, page=_page(self._page_breaks, h.source, h.start)) for h in hits]

    def candidate(self, question: str, history: Sequence[Any] | None = None) -> tuple[list[Hit], Span | None]:
        """The retrieved passages and the span ``ask`` would answer with, before it may abstain.

        ``history``: the earlier turns, as ``Answer``s, (question, answer text) pairs or questions.
        """
        text = clean_question(question)
        earlier = turns(history)
        rewrite = self.rewriter.rewrite(text, earlier)  # the question itself when there is no history
        hits = self._retrieve(retrieval_query(text, earlier, rewrite.text))
        if not hits:
            return hits, None
        if not earlier:
            return hits, read_in_rank_order(self.reader, text, hits)
        return hits, read_follow_up(self.reader, rewrite, earlier, hits)

    def ask(self, question: str, history: Sequence[Any] | None = None) -> Answer:
        """Answer a question with a span of the documents, or abstain (``text`` None)."""
        text = clean_question(question)
        return self.reply(text, *self.candidate(text, history))

    def reply(self, question: str, hits: Sequence[Hit], best: Span | None) -> Answer:
        """The answer ``ask`` gives from ``candidate``'s passages and span (abstaining below threshold).

        The span's own score decides; the answer carries the confidence people see (``shown_confidence``).
        """
        text = clean_question(question)
        if not hits:
            return Answer(question=text, text=None, score=0.0, start=None, end=None, source=None)
        similarity = next((h.score for h in hits if best is not None and h.id == best.passage_id), 1.0)
        score = shown_confidence(self.reader, best) if best is not None else 0.0
        if best is None or best.score < self.reader.threshold or similarity < self.min_similarity:
            return Answer(text, None, score, None, None, None, tuple(hits))
        return Answer(text, best.text, score, best.start, best.end, best.source, tuple(hits),
                      passage_id=best.passage_id, page=_page(self._page_breaks, best.source, best.start),
                      **_context(best, hits))
