"""What the app's added documents may cost: passages counted before any embedding, and server-wide caps.

A session's documents are counted in passages (cheap: chunking, no model) before anything is embedded,
so a paste or a file that would make more passages than a session may hold is refused in well under a
second. Across all sessions the server holds at most ``MAX_SESSIONS`` sessions, ``MAX_TOTAL_BYTES`` of
their files on disk and ``MAX_TOTAL_PASSAGES`` passages in memory; to make room, whole sessions are
evicted, least recently used first (:func:`evictions`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

#: Sessions with documents the server keeps at once (each a folder and an index in memory).
MAX_SESSIONS = 100
#: Bytes of all sessions' folders on disk (documents and indexes together).
MAX_TOTAL_BYTES = 2 * 1024**3
#: Passages of all sessions in memory: a passage with its sentence vectors takes about 10 KB, so about
#: 1 GB at the cap.
MAX_TOTAL_PASSAGES = 100_000
#: Characters chunked at a time while counting (cut at a paragraph break), so counting stops soon after
#: a text is known to be over its limit: degenerate text ("a\\n\\n" repeated) is refused in about 0.4 s.
COUNT_PIECE_CHARS = 64_000
#: A paragraph break, as ``qa.ingest.chunk`` finds them (passages never cross one).
_PARAGRAPH_BREAK = re.compile(r"(?:\r\n|\r|\n)[^\S\r\n]*(?:\r\n|\r|\n)")


def count_passages(text: str, *, limit: int | None = None) -> int:
    """The passages ``text`` makes (as ``qa.index.build`` chunks it); counting stops once over ``limit``."""
    from qa.index.build import DEFAULT_CHUNK_SETTINGS
    from qa.ingest.chunk import chunk_text

    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    count, pos = 0, 0
    while pos < len(text):
        cut = _PARAGRAPH_BREAK.search(text, pos + COUNT_PIECE_CHARS) if len(text) - pos > COUNT_PIECE_CHARS \
            else None
        end, following = (cut.start(), cut.end()) if cut else (len(text), len(text))
        piece = text[pos:end]
        if piece.strip():
            count += len(chunk_text(piece, "count", **DEFAULT_CHUNK_SETTINGS))
        if limit is not None and count > limit:
            return count
        pos = following
    return count


def folder_bytes(folder: Path) -> int:
    """The bytes of the files under ``folder`` (0 when it is gone)."""
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


@dataclass(frozen=True)
class Usage:
    """One session's cost: its key, when it was last used, bytes on disk, passages, whether it is busy."""

    key: str
    used: float
    bytes: int
    passages: int
    busy: bool = False


def evictions(usages: Iterable[Usage], *, keep: str, sessions: int = 0, nbytes: int = 0, passages: int = 0,
              max_sessions: int = MAX_SESSIONS, max_bytes: int = MAX_TOTAL_BYTES,
              max_passages: int = MAX_TOTAL_PASSAGES) -> list[str] | None:
    """The sessions to evict (least recently used first) to fit so much more; None if nothing would do.

    ``sessions`` more sessions, ``nbytes`` more bytes and ``passages`` more passages must fit. Sessions
    without documents go first; ``keep`` (the session asking) and busy sessions are never evicted.
    """
    usages = list(usages)
    count = len(usages) + sessions
    total_bytes = sum(u.bytes for u in usages) + nbytes
    total_passages = sum(u.passages for u in usages) + passages
    chosen: list[str] = []
    candidates = (u for u in usages if u.key != keep and not u.busy)
    for u in sorted(candidates, key=lambda u: (u.bytes > 0 or u.passages > 0, u.used)):
        if count <= max_sessions and total_bytes <= max_bytes and total_passages <= max_passages:
            break
        chosen.append(u.key)
        count, total_bytes, total_passages = count - 1, total_bytes - u.bytes, total_passages - u.passages
    if count <= max_sessions and total_bytes <= max_bytes and total_passages <= max_passages:
        return chosen
    return None
