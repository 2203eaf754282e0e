"""Read a PDF, Word or HTML document in a child process that has a memory, CPU and time budget.

A hostile file (a compression bomb, a PDF whose layout costs the square of its size) then costs at most
its budget and a clear message ("report.pdf took longer than 20 s to read") instead of the server's
memory or minutes of its CPU. The child is ``python -m qa.ingest.child KIND NAME``: the document's
bytes on stdin, one JSON object on stdout (``{"text": ...}`` or ``{"error": ...}``), no pickle.
Starting it costs about 0.15 s on top of the reading (tests/test_sandbox.py's first test reads in it; measured
on 2 shared cores: a one-page PDF 0.16 s in the child against 0.005 s in process, a .docx 0.13 s
against 0.01 s).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from qa.ingest.errors import SourceError, printable

#: Seconds of wall-clock time (and of CPU) a document may take to read.
SECONDS = 20.0
#: Bytes of address space the reading child may use (Python and its libraries take about 150 MB).
MEMORY = 1024**3
#: What the child reads: the function of ``qa.ingest.formats`` or ``qa.ingest.sources`` for each kind.
KINDS = ("pdf", "docx", "article", "page")


def extract(kind: str, data: bytes, name: str, *, seconds: float = SECONDS, memory: int = MEMORY) -> str:
    """The text of a document of ``kind`` read in a child process within ``seconds`` and ``memory``."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if not isinstance(data, bytes):
        raise TypeError(f"data must be bytes, not {type(data).__name__}")
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds <= 0:
        raise ValueError(f"seconds must be a positive number, got {seconds!r}")
    shown = printable(name)
    env = {**os.environ, "QA_SANDBOX_MEMORY": str(int(memory)), "QA_SANDBOX_SECONDS": str(seconds)}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_root(), env.get("PYTHONPATH")) if p)
    command = [sys.executable, "-m", "qa.ingest.child", kind, shown]
    try:
        done = subprocess.run(command, input=data, capture_output=True, timeout=seconds, env=env, check=False)
    except subprocess.TimeoutExpired:  # run() kills the child
        raise SourceError(f"{shown} took longer than {seconds:g} s to read; split it or save the part "
                          f"you need as text") from None
    try:
        answer = json.loads(done.stdout)
    except ValueError:
        answer = {}
    if "text" in answer:
        return str(answer["text"])
    if "error" in answer:
        raise SourceError(str(answer["error"]))
    if b"MemoryError" in done.stderr:
        raise SourceError(f"{shown} needs more than {size_text(memory)} to read; split it or save the part "
                          f"you need as text")
    if done.returncode < 0:  # killed: SIGXCPU at the CPU limit (or the system's out-of-memory killer)
        raise SourceError(f"{shown} took longer than {seconds:g} s to read; split it or save the part "
                          f"you need as text")
    raise SourceError(f"{shown}: cannot be read (the reader stopped with status {done.returncode})")


def size_text(memory: int) -> str:
    """A memory budget in words: "1 GB", "300 MB"."""
    return f"{memory / 1024**3:g} GB" if memory >= 1024**3 else f"{memory // 2**20} MB"


def _root() -> str:
    """The folder that holds the ``qa`` package (so the child imports this copy of it)."""
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
