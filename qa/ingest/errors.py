"""The error of a source that cannot be read: what ``qa.ingest.sources`` and ``qa.ingest.formats`` raise."""

from __future__ import annotations


class SourceError(ValueError):
    """A source file that cannot be read: the message names the file and says why."""
