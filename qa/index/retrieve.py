"""Retrieve passages for a query: dense (FAISS), lexical (BM25) or both fused by reciprocal rank.

Dense candidates are re-ranked by passage and best-sentence cosine; overlapping hits are merged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from qa.schema import Hit, Passage

if TYPE_CHECKING:
    import numpy as np

    from qa.index.embed import Embedder
    from qa.index.local import Index

DEFAULT_TOP_K = 3
MODES = ("hybrid", "dense", "lexical")
#: Reciprocal-rank-fusion constant. The paper's default is 60; 5 trusts each list's top ranks more. Chosen
#: on the questions of the 30 training-split SQuAD articles (qa.lab.train_data.split_squad) over all 1,726
#: paragraphs and checked on the 10 held-out articles' questions; ``qa bench --recall`` measures recall.
RRF_K = 5
#: Candidates taken from each retriever before fusion: CANDIDATE_FACTOR * top_k + CANDIDATE_EXTRA.
CANDIDATE_FACTOR = 4
CANDIDATE_EXTRA = 10
BM25_STOPWORDS = "en"
BM25_LANGUAGE = "english"
#: BM25 term-frequency saturation and length normalisation: Anserini's passage-retrieval defaults
#: (bm25s's own are 1.5 / 0.75), checked on the held-out questions of the split above.
BM25_K1 = 0.9
BM25_B = 0.4
#: Merge a candidate into a better-ranked hit of the same source when their text overlaps (consecutive
#: passages share a sentence), so the top k hits are k distinct stretches of text, not near-copies.
#: ``qa bench --recall`` prints hybrid recall@1/3/5 on squad-v1.1-dev-40 with and without merging.
MERGE_OVERLAPS = True
#: Dense scoring: (1 - w) * the passage's cosine + w * the cosine of its best-matching sentence, computed
#: for the dense and lexical candidates together (the index keeps a vector per sentence); 0 scores by
#: whole passages only. 0.5 is chosen by hybrid recall@5 with merged hits on the training-split questions
#: of squad-v1.1-dev-40 (qa.lab.train_data.split_squad); ``qa bench --recall`` measures recall.
SENTENCE_WEIGHT = 0.5


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[int]],
    *,
    k: float = RRF_K,
    weights: Sequence[float] | None = None,
) -> list[tuple[int, float]]:
    """Fuse rankings (best first) into ``(item, sum of weight / (k + rank))`` pairs, best first."""
    if isinstance(rankings, (str, bytes)) or not isinstance(rankings, Sequence):
        raise TypeError("rankings must be a list of rankings (lists of item ids, best first)")
    if isinstance(k, bool) or not isinstance(k, (int, float)) or not math.isfinite(k) or k < 0:
        raise ValueError(f"k must be a finite number >= 0, got {k!r}")
    if weights is None:
        weights = [1.0] * len(rankings)
    if len(weights) != len(rankings):
        raise ValueError(f"weights has {len(weights)} entries for {len(rankings)} rankings; give one each")
    for w in weights:
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
            raise ValueError(f"weights must be finite numbers >= 0, got {w!r}")
    scores: dict[int, float] = {}
    first_seen: dict[int, tuple[int, int]] = {}
    for list_no, (ranking, weight) in enumerate(zip(rankings, weights, strict=True)):
        seen: set[int] = set()
        for item in ranking:
            if item in seen:
                continue  # a repeated item keeps its first (best) rank; later items move up
            seen.add(item)
            rank = len(seen)
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
            first_seen[item] = min(first_seen.get(item, (rank, list_no)), (rank, list_no))
    return sorted(scores.items(), key=lambda kv: (-kv[1], first_seen[kv[0]]))


def _stemmer() -> Any:
    """PyStemmer's English stemmer when installed, else None."""
    try:
        import Stemmer  # type: ignore[import-not-found]
    except ImportError:
        return None
    return Stemmer.Stemmer(BM25_LANGUAGE)


def check_top_k(top_k: Any) -> int:
    """Return ``top_k`` if it is a positive int, else raise."""
    if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
        raise ValueError(f"top_k must be a positive int, got {top_k!r}")
    return top_k


def check_mode(mode: Any) -> str:
    """Return ``mode`` if it is one of ``MODES``, else raise."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    return mode


def check_query(query: Any) -> str:
    """Return ``query`` if it is a str with words in it, else raise."""
    if not isinstance(query, str):
        raise TypeError(f"query must be a str, not {type(query).__name__}")
    if not query.strip():
        raise ValueError("the query is empty: type some words to search for")
    return query


def merge_passages(parts: Sequence[Passage]) -> Passage:
    """One passage spanning ``parts``: passages of one source whose spans overlap into one stretch."""
    if not parts:
        raise ValueError("parts is empty: give at least one passage")
    ordered = sorted(parts, key=lambda p: (p.start, p.end))
    if len(ordered) == 1:
        return ordered[0]
    if len({p.source for p in ordered}) != 1:
        raise ValueError("parts must all come from one source")
    text, start, end = ordered[0].text, ordered[0].start, ordered[0].end
    for p in ordered[1:]:
        if p.start > end:
            raise ValueError(f"parts leave a gap between offsets {end} and {p.start}: merge overlapping ones")
        if p.end > end:  # the overlap is the same source text in both, so the rest of p continues it
            text += p.text[end - p.start :]
            end = p.end
    return Passage("+".join(p.id for p in ordered), ordered[0].source, start, end, text)


def group_overlapping(passages: Sequence[Passage], k: int) -> list[list[int]]:
    """Positions of ``passages`` (best first) in up to ``k`` groups of overlapping text of one source.

    A passage joins the groups whose span it overlaps (several groups it bridges become one, at the
    best-ranked group's place); a passage that overlaps none starts a group while fewer than ``k``.
    """
    groups: list[list[int]] = []
    spans: list[tuple[str, int, int]] = []
    for pos, p in enumerate(passages):
        touched = [g for g, (source, start, end) in enumerate(spans)
                   if p.source == source and p.start < end and p.end > start]
        if not touched:
            if len(groups) == k:
                break
            groups.append([pos])
            spans.append((p.source, p.start, p.end))
            continue
        first = touched[0]
        start = min(p.start, *(spans[g][1] for g in touched))
        end = max(p.end, *(spans[g][2] for g in touched))
        groups[first] = sorted([pos, *(i for g in touched for i in groups[g])])
        spans[first] = (p.source, start, end)
        for g in reversed(touched[1:]):
            del groups[g], spans[g]
    return groups


def import_retrieval_libraries() -> None:
    """Import FAISS and bm25s now (about 0.3 s), e.g. while another thread loads the models."""
    import bm25s  # noqa: F401
    import faiss  # noqa: F401


class Retriever:
    """Finds the passages of an index that best match a query."""

    def __init__(self, *, index: Index, embedder: Embedder, mode: str = "hybrid",
                 top_k: int = DEFAULT_TOP_K, merge: bool = MERGE_OVERLAPS,
                 sentence_weight: float = SENTENCE_WEIGHT) -> None:
        if not hasattr(index, "passages") or not callable(getattr(index, "search", None)):
            raise TypeError("index must be a qa.index.local.Index")
        if not callable(getattr(embedder, "encode", None)):
            raise TypeError("embedder must be a qa.index.embed.Embedder")
        self.index = index
        self.embedder = embedder
        self.mode = check_mode(mode)
        self.top_k = check_top_k(top_k)
        if not isinstance(merge, bool):
            raise TypeError(f"merge must be True or False, got {merge!r}")
        self.merge = merge
        if isinstance(sentence_weight, bool) or not isinstance(sentence_weight, (int, float)) \
                or not 0 <= sentence_weight <= 1:
            raise ValueError(f"sentence_weight must be a number from 0 to 1, got {sentence_weight!r}")
        self.sentence_weight = float(sentence_weight)
        self._bm25: Any = None
        self._stem: Any = None
        self._vocab: dict[str, int] = {}

    def warm_up(self) -> None:
        """Load the embedder and build the BM25 index over the passages (once; not for dense mode)."""
        if hasattr(self.embedder, "warm_up"):
            self.embedder.warm_up()
        if self._bm25 is not None or self.mode == "dense":
            return  # dense retrieval needs no BM25; it is built when another mode is first used
        import bm25s

        self._stem = _stemmer()
        corpus = bm25s.tokenize([p.text for p in self.index.passages], stopwords=BM25_STOPWORDS,
                                stemmer=self._stem, return_ids=True, show_progress=False)
        bm25 = bm25s.BM25(k1=BM25_K1, b=BM25_B)
        if corpus.vocab:  # a corpus of stopwords only has no vocabulary to index
            bm25.index(corpus, show_progress=False)
            self._vocab = dict(bm25.vocab_dict)
        self._bm25 = bm25

    def _lexical(self, query: str, n: int) -> list[int]:
        """Passage rows with a positive BM25 score for ``query``, best first (at most ``n``)."""
        import bm25s
        import numpy as np

        self.warm_up()
        tokens = bm25s.tokenize([query], stopwords=BM25_STOPWORDS, stemmer=self._stem,
                                return_ids=False, show_progress=False)[0]
        ids = [self._vocab[t] for t in tokens if t and t in self._vocab]
        if not ids:
            return []
        scores = np.asarray(self._bm25.get_scores_from_ids(ids), dtype=np.float64)
        n = min(n, len(scores))
        top = np.argpartition(-scores, n - 1)[:n] if n < len(scores) else np.arange(len(scores))
        top = top[np.lexsort((top, -scores[top]))]
        return [int(r) for r in top if scores[r] > 0]

    def _dense(self, qvec: np.ndarray, n: int) -> list[int]:
        """Passage rows nearest to the query vector, best first (at most ``n``)."""
        return [row for row, _ in self.index.search(qvec[None, :], n)[0]]

    def _rescore(self, qvec: np.ndarray, rows: list[int]) -> list[int]:
        """``rows`` ordered by the dense score that mixes passage and best-sentence cosines."""
        import numpy as np

        w = self.sentence_weight
        scores = (1 - w) * (self.index.vectors[rows] @ qvec) + w * self.index.sentence_similarity(rows, qvec)
        return [rows[i] for i in np.argsort(-scores, kind="stable")]

    def retrieve(self, query: str, *, top_k: int | None = None) -> list[Hit]:
        """The ``top_k`` hits for ``query`` in the mode's ranking, each scored by its passage's cosine.

        Overlapping candidates of one source are merged into one hit (``merge``), scored by its best
        part's cosine; the dense ranking mixes passage and best-sentence cosines (``sentence_weight``).
        """
        import numpy as np

        check_query(query)
        k = self.top_k if top_k is None else check_top_k(top_k)
        check_mode(self.mode)
        self.warm_up()
        n = CANDIDATE_FACTOR * k + CANDIDATE_EXTRA
        qvec = np.asarray(self.embedder.encode([query]), dtype=np.float32)[0]
        dense = self._dense(qvec, n) if self.mode != "lexical" else []
        lexical = self._lexical(query, n) if self.mode != "dense" else []
        if dense and self.sentence_weight:
            dense = self._rescore(qvec, list(dict.fromkeys(dense + lexical)))[:n]
        if self.mode == "dense":
            order = dense
        elif self.mode == "lexical":
            order = lexical
        else:
            order = [row for row, _ in reciprocal_rank_fusion([dense, lexical])]
        rows = list(dict.fromkeys(order))
        cosines = dict(zip(rows, (self.index.vectors[rows] @ qvec).tolist() if rows else [], strict=True))
        passages = self.index.passages
        return assemble_hits(order, dense, lexical, {r: passages[r] for r in rows}, cosines, k,
                             merge=self.merge)


def assemble_hits(order: Sequence[Any], dense: Sequence[Any], lexical: Sequence[Any],
                  passages: dict[Any, Passage], cosines: dict[Any, float], k: int, *,
                  merge: bool = MERGE_OVERLAPS) -> list[Hit]:
    """The top ``k`` hits of a fused ``order`` of passage keys, overlapping ones merged (``merge``).

    ``dense`` and ``lexical`` are each retriever's ranking (for the hits' ranks); every key of
    ``order`` is in ``passages`` and ``cosines`` (its passage's cosine with the query, the hit's score).
    """
    import numpy as np

    dense_rank = {key: r for r, key in enumerate(dense, start=1)}
    lexical_rank = {key: r for r, key in enumerate(lexical, start=1)}
    if merge:
        groups = [[order[i] for i in g] for g in group_overlapping([passages[key] for key in order], k)]
    else:
        groups = [[key] for key in order[:k]]
    hits = []
    for g in groups:
        ranks_d = [dense_rank[key] for key in g if key in dense_rank]
        ranks_l = [lexical_rank[key] for key in g if key in lexical_rank]
        hits.append(Hit(passage=merge_passages([passages[key] for key in g]),
                        score=float(np.clip(max(cosines[key] for key in g), -1.0, 1.0)),
                        dense_rank=min(ranks_d, default=None), lexical_rank=min(ranks_l, default=None)))
    return hits
