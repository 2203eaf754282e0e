"""The passage index in memory: passages, their vectors (and their sentences') and FAISS search.

Besides one vector per passage the index keeps one per sentence of each passage, so retrieval can
score a passage by its best-matching sentence as well as by its whole text (``qa.index.retrieve``).
An ``Index`` does not build or store itself: ``qa.index.build`` builds one (``build``,
``build_or_load``) and ``qa.index.store`` keeps it in a folder (``load``, ``read_cache``), both above it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from qa.ingest.chunk import split_sentences
from qa.schema import Passage

if TYPE_CHECKING:
    import numpy as np


#: Up to this many passages the index is exact (flat inner product); above it, HNSW.
EXACT_MAX = 20_000
INDEX_FLAT = "flat-ip"
INDEX_HNSW = "hnsw-ip"
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 100
HNSW_EF_SEARCH = 128

Log = Callable[[str], None]


def index_type_for(n_passages: int) -> str:
    """The FAISS index type used for this many passages."""
    return INDEX_FLAT if n_passages <= EXACT_MAX else INDEX_HNSW


def make_faiss_index(vectors: np.ndarray, index_type: str) -> Any:
    """A FAISS inner-product index over ``vectors`` (flat, or HNSW for large corpora)."""
    import faiss
    import numpy as np

    dim = int(vectors.shape[1])
    if index_type == INDEX_FLAT:
        index = faiss.IndexFlatIP(dim)
    elif index_type == INDEX_HNSW:
        index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        index.hnsw.efSearch = HNSW_EF_SEARCH
    else:
        raise ValueError(f"unknown index type {index_type!r}; use {INDEX_FLAT!r} or {INDEX_HNSW!r}")
    if len(vectors):
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def passage_sentences(passage: Passage) -> list[str]:
    """The sentences of a passage's text (the text itself when it is one sentence)."""
    spans = split_sentences(passage.text)
    if len(spans) <= 1:
        return [passage.text]
    return [passage.text[s:e] for s, e in spans]


def sentence_units(passages: Sequence[Passage]) -> tuple[list[str], np.ndarray]:
    """All passages' sentences in passage order, and where each passage's sentences start (n + 1 rows)."""
    import numpy as np

    texts: list[str] = []
    rows = [0]
    for p in passages:
        texts.extend(passage_sentences(p))
        rows.append(len(texts))
    return texts, np.asarray(rows, dtype=np.int64)


def vector_units(passages: Sequence[Passage], *, sentences: bool = True) -> tuple[list[str], np.ndarray]:
    """The texts embedded beside the passages, and where each passage's start (n + 1 rows).

    The passages' sentences, or with ``sentences=False`` the passages themselves, one unit each: that
    costs no embedding, since the passage vectors are reused.
    """
    import numpy as np

    if sentences:
        return sentence_units(passages)
    return [p.text for p in passages], np.arange(len(passages) + 1, dtype=np.int64)


class Index:
    """Passages, their unit vectors (and their sentences') and a FAISS inner-product index over them."""

    def __init__(self, *, passages: Sequence[Passage], vectors: np.ndarray, manifest: dict,
                 faiss_index: Any, sentence_vectors: np.ndarray, sentence_rows: np.ndarray) -> None:
        import numpy as np

        if len(passages) != len(vectors) or int(faiss_index.ntotal) != len(passages):
            raise ValueError(f"{len(passages)} passages, {len(vectors)} vectors and "
                             f"{int(faiss_index.ntotal)} indexed vectors must all be equal")
        rows = np.asarray(sentence_rows)
        if rows.shape != (len(passages) + 1,) or (len(rows) and (rows[0] != 0 or (np.diff(rows) < 1).any())):
            raise ValueError("sentence_rows must start at 0 and give each passage at least one sentence "
                             "(see qa.index.local.sentence_units)")
        if np.ndim(sentence_vectors) != 2 or len(sentence_vectors) != rows[-1] \
                or (len(vectors) and np.shape(sentence_vectors)[1] != np.shape(vectors)[1]):
            raise ValueError(f"sentence_vectors must have shape ({int(rows[-1])}, dim), "
                             f"got {np.shape(sentence_vectors)}")
        self.passages: list[Passage] = list(passages)
        self.vectors = vectors
        self.sentence_vectors = sentence_vectors
        self.sentence_rows = rows
        self.manifest = manifest
        self.faiss = faiss_index
        #: How many passage texts were embedded to make this index (0 when loaded or all cached).
        self.embedded = 0

    def __len__(self) -> int:
        """The number of passages."""
        return len(self.passages)

    @property
    def dim(self) -> int:
        """The vector dimension."""
        return int(self.vectors.shape[1])

    @property
    def index_type(self) -> str:
        """``flat-ip`` (exact) or ``hnsw-ip`` (approximate)."""
        return str(self.manifest.get("index_type", INDEX_FLAT))

    def sentence_similarity(self, rows: Sequence[int], query_vector: np.ndarray) -> np.ndarray:
        """For each passage row, the inner product of ``query_vector`` with its best-matching sentence."""
        import numpy as np

        rows = np.asarray(rows, dtype=np.int64)
        if not len(rows):
            return np.zeros(0, dtype=np.float32)
        starts, ends = self.sentence_rows[rows], self.sentence_rows[rows + 1]
        units = np.concatenate([np.arange(a, b) for a, b in zip(starts, ends, strict=True)])
        sims = self.sentence_vectors[units] @ np.asarray(query_vector, dtype=np.float32)
        return np.maximum.reduceat(sims, np.concatenate([[0], np.cumsum(ends - starts)[:-1]]))

    def search(self, query_vectors: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
        """For each query vector, up to ``k`` ``(passage row, inner product)`` pairs, best first."""
        import faiss
        import numpy as np

        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        q = np.asarray(query_vectors, dtype=np.float32)
        if q.ndim == 1:
            q = q[None, :]
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise ValueError(f"query_vectors must have shape (n, {self.dim}), got {np.shape(query_vectors)}")
        if not len(self.passages) or not len(q):
            return [[] for _ in range(len(q))]
        kk = min(k, len(self.passages))
        q = np.ascontiguousarray(q)
        if self.index_type == INDEX_HNSW:
            params = faiss.SearchParametersHNSW()
            params.efSearch = max(HNSW_EF_SEARCH, kk)
            scores, rows = self.faiss.search(q, kk, params=params)
        else:
            scores, rows = self.faiss.search(q, kk)
        return [[(int(r), float(s)) for r, s in zip(rr, ss, strict=True) if r >= 0]
                for rr, ss in zip(rows, scores, strict=True)]
