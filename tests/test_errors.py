"""Tests for qa.ingest.errors: user's file names printable in messages and safe to store."""

from __future__ import annotations

from pathlib import Path

import pytest

from qa.ingest.errors import SourceError, printable, safe_file_name
from qa.ingest.sources import collect_sources


def test_escapes_are_dropped_and_long_names_shortened() -> None:
    assert printable("a\x1b[31mb\x07\u202ec") == "a?[31mb??c"
    shown = printable("x" * 500 + ".pdf")
    assert len(shown) == 100 and shown.endswith(".pdf") and "…" in shown
    with pytest.raises(ValueError, match="limit"):
        printable("a", 3)


def test_a_name_of_dots_keeps_its_suffix_and_a_300_byte_name_can_be_stored(tmp_path: Path) -> None:
    assert safe_file_name("..txt", "document.txt") == "document.txt"
    assert safe_file_name("../../etc/passwd", "document.txt") == "passwd"
    long = safe_file_name("é" * 150 + ".pdf", "document.txt")  # 300 bytes in UTF-8
    assert long.endswith(".pdf") and len(long.encode()) < 255
    (tmp_path / long).write_text("fits", encoding="utf-8")  # no OSError: File name too long


def test_messages_name_the_file_not_the_servers_temporary_path(tmp_path: Path) -> None:
    docs = tmp_path / "qa-session-x" / "docs"
    docs.mkdir(parents=True)
    (docs / "empty.txt").write_text("", encoding="utf-8")
    with pytest.raises(SourceError) as e:
        collect_sources([docs / "empty.txt"], root=docs)
    assert str(e.value).startswith("empty.txt: empty") and str(tmp_path) not in str(e.value)
