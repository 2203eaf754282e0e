"""The error of a source that cannot be read, and the user's names made safe to show in its message."""

from __future__ import annotations

import unicodedata

#: The longest file name shown in a message or log line; longer ones keep their start and end.
MAX_SHOWN_NAME = 100
#: The longest file name kept on disk, in characters (file systems allow 255 bytes; UTF-8 takes up to 4).
MAX_FILE_NAME = 60


class SourceError(ValueError):
    """A source file that cannot be read: the message names the file and says why."""


def printable(name: object, limit: int = MAX_SHOWN_NAME) -> str:
    """``name`` fit for a message: control, escape and format characters dropped, at most ``limit`` long."""
    if not isinstance(limit, int) or limit < 10:
        raise ValueError(f"limit must be an int of at least 10, got {limit!r}")
    text = "".join(c if unicodedata.category(c)[0] != "C" else "?" for c in str(name))
    if len(text) > limit:
        half = (limit - 1) // 2
        text = f"{text[:half]}…{text[len(text) - (limit - 1 - half):]}"
    return text


def safe_file_name(name: str, fallback: str) -> str:
    """A file name to store a user's upload under: no folders or odd characters, suffix kept, short."""
    import re
    from pathlib import PurePosixPath

    base = PurePosixPath(str(name).replace("\\", "/")).name
    base = re.sub(r"[^\w.\- ]+", "_", base)
    dot = base.rfind(".")
    stem, suffix = (base[:dot], base[dot:]) if dot >= 0 and len(base) - dot <= 10 else (base, "")
    stem = stem.strip(" .")[:MAX_FILE_NAME - len(suffix)].strip(" .")
    if not stem:
        stem = PurePosixPath(fallback).stem
        suffix = suffix if suffix.strip(".") else PurePosixPath(fallback).suffix
    return f"{stem}{suffix}"
