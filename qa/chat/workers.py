"""One bounded worker pool for all document indexing, kept out of the way of questions being answered.

Every session's indexing (adding documents and the background refinement) runs in one
:class:`IndexPool`: a ``ThreadPoolExecutor`` of ``INDEX_WORKERS`` threads with at most
``MAX_PENDING`` additions waiting; another addition is refused at once with ``BUSY``. Indexing
embeds through :class:`YieldingEmbedder`, which, on the pool's threads only, embeds in batches of
``YIELD_BATCH`` texts and waits (up to ``MAX_YIELD_SECONDS`` per batch) while :class:`QuestionGate`
says questions are being answered: adding documents slows down while people ask, but never stops
their answers (``python scripts/load_check.py --hostile 4`` measures it).
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from qa.ingest.errors import SourceError

#: Indexing threads: one, so that on a 2-core machine a core stays free for questions.
INDEX_WORKERS = 1
#: Additions waiting for the indexing thread (beyond the one it runs) before more are refused.
MAX_PENDING = 4
#: Texts embedded between two looks at the questions being answered (about 0.1 s of MiniLM on 2 cores).
YIELD_BATCH = 16
#: The longest an indexing batch waits for questions to finish, so indexing always makes progress.
MAX_YIELD_SECONDS = 1.0
#: The message for an addition refused because the queue is full.
BUSY = "the server is busy adding other documents; try again in a minute"
#: Indexing threads are named so: the embedder knows it is called by one.
THREAD_PREFIX = "qa-index"

T = TypeVar("T")


class QuestionGate:
    """Counts the questions being answered; indexing waits while there are any."""

    def __init__(self) -> None:
        self._asking = 0
        self._idle = threading.Condition()

    @contextlib.contextmanager
    def asking(self) -> Iterator[None]:
        """Mark a question as being answered for the duration of the ``with`` block."""
        with self._idle:
            self._asking += 1
        try:
            yield
        finally:
            with self._idle:
                self._asking -= 1
                if not self._asking:
                    self._idle.notify_all()

    @property
    def busy(self) -> bool:
        """Whether a question is being answered now."""
        return self._asking > 0

    def wait_idle(self, timeout: float) -> bool:
        """Wait (at most ``timeout`` seconds) until no question is being answered; True if none is."""
        with self._idle:
            return self._idle.wait_for(lambda: self._asking == 0, timeout)


def on_index_thread() -> bool:
    """Whether the calling thread is one of the indexing pool's."""
    return threading.current_thread().name.startswith(THREAD_PREFIX)


class YieldingEmbedder:
    """An embedder that, on an indexing thread, embeds in small batches and lets questions go first."""

    def __init__(self, embedder: Any, gate: QuestionGate, *, batch: int = YIELD_BATCH,
                 max_wait: float = MAX_YIELD_SECONDS) -> None:
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ValueError(f"batch must be a positive int, got {batch!r}")
        self.embedder = embedder
        self.gate = gate
        self.batch = batch
        self.max_wait = float(max_wait)

    def __getattr__(self, name: str) -> Any:
        """Everything else (``name``, ``dim``, ``warm_up``, ...) is the wrapped embedder's."""
        return getattr(self.embedder, name)

    def encode(self, texts: Sequence[str], *args: Any, **kwargs: Any) -> Any:
        """The vectors; on an indexing thread, batch by batch, each after waiting for questions."""
        if not on_index_thread() or len(texts) == 0:
            return self.embedder.encode(texts, *args, **kwargs)
        import numpy as np

        parts = []
        for i in range(0, len(texts), self.batch):
            self.gate.wait_idle(self.max_wait)
            parts.append(self.embedder.encode(list(texts[i:i + self.batch]), *args, **kwargs))
        return np.concatenate(parts, axis=0)


class IndexPool:
    """A bounded pool for indexing: additions wait for their turn or are refused when too many wait."""

    def __init__(self, *, workers: int = INDEX_WORKERS, max_pending: int = MAX_PENDING) -> None:
        for label, value in (("workers", workers), ("max_pending", max_pending)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{label} must be a positive int, got {value!r}")
        self.workers = workers
        self.max_pending = max_pending
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=THREAD_PREFIX)
        #: One slot for each addition running or waiting.
        self._slots = threading.BoundedSemaphore(workers + max_pending)

    def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn`` on the pool and return its result; SourceError(``BUSY``) when the queue is full."""
        if on_index_thread():  # already indexing (a nested call): run it here rather than wait on itself
            return fn(*args, **kwargs)
        if not self._slots.acquire(blocking=False):
            raise SourceError(BUSY)
        try:
            future = self._executor.submit(contextvars.copy_context().run, fn, *args, **kwargs)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _f: self._slots.release())
        return future.result()

    def background(self, fn: Callable[..., Any], *args: Any) -> Future:
        """Queue ``fn`` behind the additions, without a slot (a refinement: one per session at most)."""
        return self._executor.submit(fn, *args)

    def shutdown(self) -> None:
        """Finish what is queued and stop the threads."""
        self._executor.shutdown(wait=True)
