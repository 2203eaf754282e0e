"""Benchmark corpora: SQuAD contexts and questions, passage pools of each size, cached indexes."""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qa.index.build import DEFAULT_CHUNK_SETTINGS, chunk_sources
from qa.index.local import (
    Index,
    index_type_for,
    make_faiss_index,
    sentence_units,
)
from qa.index.retrieve import Retriever
from qa.index.vector_cache import VectorCache
from qa.ingest.chunk import chunk_text
from qa.schema import Passage

if TYPE_CHECKING:
    import numpy as np

    from qa.index.embed import Embedder


REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data"
DEFAULT_RECALL_FILE = DEFAULT_DATA_DIR / "squad" / "squad-v1.1-dev-40.json"
DEFAULT_SEED = REPO_ROOT / "seeds" / "article.txt"
DEFAULT_CACHE_DIR = REPO_ROOT / "build" / "bench-cache"
SHUFFLE_SEED = 0
#: Marks the single-sentence passages that top up the scaling corpus beyond its sentence windows.
SINGLE_SUFFIX = "/sentence"
#: Sentences per window of the size pools: 3 (the default before 4), fixed so cached vectors stay valid;
#: retrieval latency depends on the number of passages, not their width.
POOL_SENTENCES = 3


class _CachedQueries:
    """An embedder that answers ``encode`` from precomputed vectors (falls back to the model)."""

    def __init__(self, embedder: Embedder, vectors: dict[str, np.ndarray]) -> None:
        self.embedder = embedder
        self.vectors = vectors
        self.name = embedder.name
        self.dim = embedder.dim

    def warm_up(self) -> None:
        """Load the underlying model."""
        self.embedder.warm_up()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Precomputed vectors where known."""
        import numpy as np

        if all(t in self.vectors for t in texts):
            return np.stack([self.vectors[t] for t in texts]) if texts else self.embedder.encode([])
        return self.embedder.encode(texts)


def _squad_files(data_dir: Path) -> list[Path]:
    """Every JSON file under ``data_dir``, sorted."""
    return sorted(p for p in data_dir.rglob("*.json") if p.is_file())


def load_contexts(data_dir: Path) -> list[tuple[str, str]]:
    """Distinct ``(source name, context)`` pairs of all SQuAD-format files under ``data_dir``."""
    seen: set[str] = set()
    out = []
    for f in _squad_files(data_dir):
        try:
            data = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict) or not isinstance(data.get("data"), list):
            continue
        for a, article in enumerate(data["data"]):
            for p, para in enumerate(article.get("paragraphs", [])):
                ctx = para.get("context")
                if isinstance(ctx, str) and ctx.strip() and ctx not in seen:
                    seen.add(ctx)
                    out.append((f"{f.relative_to(data_dir).as_posix()}:{a}:{p}", ctx))
    return out


def load_questions(data_dir: Path, limit: int) -> list[str]:
    """Up to ``limit`` distinct questions from the files under ``data_dir`` (shuffled, fixed seed)."""
    qs: set[str] = set()
    for f in _squad_files(data_dir):
        try:
            data = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        for article in data.get("data", []) if isinstance(data, dict) else []:
            for para in article.get("paragraphs", []):
                for qa in para.get("qas", []):
                    if isinstance(qa.get("question"), str) and qa["question"].strip():
                        qs.add(qa["question"].strip())
    ordered = sorted(qs)
    random.Random(SHUFFLE_SEED).shuffle(ordered)
    return ordered[:limit]


def passage_pool(contexts: list[tuple[str, str]], size: int) -> list[Passage]:
    """``size`` real passages: 3-sentence windows, topped up with single sentences if needed."""
    rng = random.Random(SHUFFLE_SEED)
    windows = [p for name, ctx in contexts for p in chunk_text(ctx, name, sentences=POOL_SENTENCES)]
    rng.shuffle(windows)
    pool = windows[:size]
    if len(pool) < size:
        have = {p.text for p in pool}
        singles = [p for name, ctx in contexts
                   for p in chunk_text(ctx, name + SINGLE_SUFFIX, sentences=1, overlap=0)
                   if p.text not in have]
        rng.shuffle(singles)
        pool += singles[:size - len(pool)]
    return pool


def _composition(pool: Sequence[Passage]) -> dict[str, int]:
    """How many passages of a pool are sentence windows and how many single sentences."""
    singles = sum(1 for p in pool if p.source.endswith(SINGLE_SUFFIX))
    return {"windows": len(pool) - singles, "single_sentences": singles}


def cached_index(passages: list[Passage], cache: VectorCache, *,
                 progress: bool = False) -> tuple[Index, float]:
    """An in-memory index of ``passages`` with vectors from ``cache``, and its FAISS build seconds."""
    vectors = cache.get([p.text for p in passages], progress=progress)
    sentences, rows = sentence_units(passages)
    sentence_vectors = cache.get(sentences, progress=progress)
    index_type = index_type_for(len(passages))
    t0 = time.perf_counter()
    fa = make_faiss_index(vectors, index_type)
    seconds = time.perf_counter() - t0
    return Index(passages=passages, vectors=vectors, manifest={"index_type": index_type}, faiss_index=fa,
                 sentence_vectors=sentence_vectors, sentence_rows=rows), seconds


def open_domain_index(data: dict[str, Any], cache: VectorCache, *, progress: bool = False) -> Index:
    """One index over every paragraph of a SQuAD-format dict, paragraph ``p`` of article ``a`` named "a:p"."""
    sources = {f"{a}:{p}": para["context"] for a, article in enumerate(data["data"])
               for p, para in enumerate(article["paragraphs"])}
    return cached_index(chunk_sources(sources, DEFAULT_CHUNK_SETTINGS), cache, progress=progress)[0]


def open_domain_retriever(data: dict[str, Any]) -> Retriever:
    """The chatbot's default retriever over ``open_domain_index(data)``, vectors from the bench cache."""
    from qa.index.embed import Embedder

    embedder = Embedder()
    cache = VectorCache(DEFAULT_CACHE_DIR, embedder, desc="Embedding (bench cache)")
    cache.load()
    return Retriever(index=open_domain_index(data, cache, progress=True), embedder=embedder)


Question = tuple[str, list[str], int]  # text, gold answers, article number in the file
CheckSetup = tuple[argparse.Namespace, dict[str, Any], dict[str, list[Question]]]


def split_check_setup(argv: list[str] | None, *, description: str, sample: int,
                      sample_help: str) -> CheckSetup:
    """The check scripts' options, the SQuAD file, and its questions by split (``split_squad``)."""
    from qa.lab.train_data import DATA_DIR, split_squad
    from qa.reader.read import DEFAULT_READER

    p = argparse.ArgumentParser(description=description)
    p.add_argument("--sample", type=int, default=sample, help=f"{sample_help} (default {sample})")
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument("--reader", default=str(DEFAULT_READER),
                   help="a QA model folder (default: the shipped reader)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    data = json.loads(Path(DEFAULT_RECALL_FILE).read_text(encoding="utf-8"))
    _, val_titles = split_squad(DATA_DIR)
    split: dict[str, list[Question]] = {"training": [], "validation": []}
    for a, art in enumerate(data["data"]):
        split["validation" if art["title"] in val_titles else "training"] += [
            (q["question"].strip(), [x["text"] for x in q["answers"]], a)
            for para in art["paragraphs"] for q in para["qas"]]
    return args, data, split
