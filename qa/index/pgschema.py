"""What the PostgreSQL store's reading (``qa.index.pgstore``) and writing (``.pgstore_write``) share."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from qa.index.embed import Embedder

#: 2: postings carry a BM25 weight and are read best first, at most ``POSTINGS_PER_TERM`` per stem.
SCHEMA_VERSION = 2
#: Full-text search configuration: PostgreSQL's English stemmer and stop words.
TEXT_SEARCH = "english"

Log = Callable[[str], None]


class Store(Protocol):
    """What an update needs of a store (a ``qa.index.pgstore.PgIndex``): its schema, connection, checks."""

    schema: str

    def connect(self) -> Any:
        """A new connection to the store's database."""

    def check(self, embedder: Embedder, chunk_settings: dict[str, int] | None = None) -> None:
        """Raise when the schema holds another model's vectors or other chunk settings."""
