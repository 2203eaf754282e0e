"""The child process of ``qa.ingest.sandbox``: read one document from stdin within the budget it is given.

``python -m qa.ingest.child KIND NAME`` limits its own address space and CPU time (from the environment
the parent sets), reads the document's bytes from stdin and writes ``{"text": ...}`` or ``{"error": ...}``
as JSON to stdout.
"""

from __future__ import annotations

import json
import os
import sys

from qa.ingest.errors import SourceError
from qa.ingest.sandbox import MEMORY, SECONDS, size_text


def _limit() -> None:
    """Apply the budget the parent passed (address space and CPU seconds) to this process."""
    import resource

    memory = int(os.environ.get("QA_SANDBOX_MEMORY", MEMORY))
    cpu = int(float(os.environ.get("QA_SANDBOX_SECONDS", SECONDS))) + 1
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))


def _read(kind: str, data: bytes, name: str) -> str:
    """Read the document in this process (the child's work)."""
    from qa.ingest import formats

    if kind == "pdf":
        return formats.pdf_text(data, name)
    if kind == "docx":
        return formats.docx_text(data, name)
    text = data.decode("utf-8", errors="replace")
    if kind == "article":
        return formats.article_text(text, name)
    from qa.ingest.sources import page_text

    return page_text(text, name)


def main(argv: list[str]) -> int:
    """The child: read stdin as a document, write its text or error as JSON to stdout."""
    kind, name = argv
    _limit()
    data = sys.stdin.buffer.read()
    try:
        answer = {"text": _read(kind, data, name)}
    except SourceError as e:
        answer = {"error": str(e)}
    except MemoryError:
        size = size_text(int(os.environ.get("QA_SANDBOX_MEMORY", MEMORY)))
        answer = {"error": f"{name} needs more than {size} to read; split it or save the part you need "
                           f"as text"}
    except Exception as e:  # a library's error on a damaged file: the message must stay clear
        answer = {"error": f"{name}: cannot be read ({type(e).__name__}); open and save it again"}
    sys.stdout.write(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
