"""Benchmark timings: indexing, retrieval per mode and size, answers warm and cold, recall, memory."""

from __future__ import annotations

import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qa.index.build import build_or_load
from qa.index.local import (
    INDEX_FLAT,
    INDEX_HNSW,
    Index,
    index_type_for,
    make_faiss_index,
    sentence_units,
)
from qa.index.retrieve import MODES, Retriever
from qa.index.vector_cache import VectorCache
from qa.lab.bench_corpus import SHUFFLE_SEED, _CachedQueries, _composition, cached_index, open_domain_index
from qa.schema import Passage

if TYPE_CHECKING:
    import numpy as np

    from qa.index.embed import Embedder


RECALL_KS = (1, 3, 5)
HNSW_RECALL_K = 10


def _peak_memory_mib() -> float:
    """Peak resident memory of this process in MiB."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024 / 1024 if sys.platform == "darwin" else rss / 1024


def _percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    pos = (len(ordered) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def _time_retrieval(retriever: Retriever, queries: Iterable[str]) -> dict[str, float]:
    """Latency of ``retrieve`` in milliseconds: p50, p95, mean."""
    times = []
    for q in queries:
        t0 = time.perf_counter()
        retriever.retrieve(q)
        times.append((time.perf_counter() - t0) * 1000)
    return {"p50_ms": round(_percentile(times, 50), 2), "p95_ms": round(_percentile(times, 95), 2),
            "mean_ms": round(statistics.fmean(times), 2) if times else float("nan")}


def _hnsw_recall(vectors: np.ndarray, queries: np.ndarray, approx: Any, k: int) -> float:
    """Mean overlap of the HNSW top-k with the exact top-k."""
    import numpy as np

    exact = make_faiss_index(vectors, INDEX_FLAT)
    _, truth = exact.search(queries, k)
    idx = Index(passages=[Passage(str(i), "x", 0, 0, "") for i in range(len(vectors))], vectors=vectors,
                manifest={"index_type": index_type_for(len(vectors))}, faiss_index=approx,
                sentence_vectors=vectors, sentence_rows=np.arange(len(vectors) + 1))
    got = idx.search(queries, k)
    hits = [len(set(t.tolist()) & {r for r, _ in g}) / k for t, g in zip(truth, got, strict=True)]
    return statistics.fmean(hits)


def bench_seed(embedder: Embedder, seed: Path) -> dict[str, Any]:
    """Time a fresh index of the seed article (model already loaded)."""
    from qa.ingest.sources import read_source

    sources = {seed.name: read_source(seed)}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        index = build_or_load(sources, Path(tmp) / "index", embedder, log=lambda m: None)
        seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        build_or_load(sources, Path(tmp) / "index", embedder, log=lambda m: None)
        reload_s = time.perf_counter() - t0
    return {"passages": len(index), "index_seconds": round(seconds, 3), "reload_seconds": round(reload_s, 4)}


def bench_answers(embedder: Embedder, seed: Path, questions: Sequence[str],
                  cold_runs: int) -> dict[str, Any]:
    """Warm end-to-end answers on the seed article (retrieve + read), then cold ``qa ask`` processes.

    A cold run is timed from starting the process to its answer on stdout (and, apart, to its exit).
    """
    from qa.chat.chatbot import Chatbot

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        index_dir = Path(tmp) / "index"
        bot = Chatbot(sources=[seed], index_dir=index_dir, embedder=embedder, log=lambda m: None)
        t0 = time.perf_counter()
        bot.warm_up()
        out["reader"] = bot.reader.name
        out["reader_load_seconds"] = round(time.perf_counter() - t0, 2)
        if questions:
            bot.ask(questions[0])  # first call pays one-time costs
            total, retrieve = [], []
            for q in questions:
                t0 = time.perf_counter()
                bot.retrieve(q)
                t1 = time.perf_counter()
                bot.ask(q)  # what every surface calls: retrieve, read in rank order, pick, cite
                t2 = time.perf_counter()
                retrieve.append((t1 - t0) * 1000)
                total.append((t2 - t1) * 1000)
            out["questions"] = len(questions)
            out["end_to_end"] = {"p50_ms": round(_percentile(total, 50), 1),
                                 "p95_ms": round(_percentile(total, 95), 1)}
            out["retrieval_part"] = {"p50_ms": round(_percentile(retrieve, 50), 1),
                                     "p95_ms": round(_percentile(retrieve, 95), 1)}
        if cold_runs:
            cmd = [sys.executable, "-m", "qa.cli", "ask", questions[0] if questions else "Who?", "--json",
                   "--sources", str(seed), "--index-dir", str(index_dir)]
            env = {**os.environ, "HF_HUB_OFFLINE": "1"}
            answered, exited = [], []
            for _ in range(cold_runs):
                with tempfile.TemporaryFile("w+") as err:
                    t0 = time.perf_counter()
                    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
                    assert proc.stdout is not None
                    first = proc.stdout.readline()  # the answer: `--json` prints one line
                    answered.append(time.perf_counter() - t0)
                    proc.communicate()
                    exited.append(time.perf_counter() - t0)
                    if proc.returncode != 0 or not first.strip():
                        err.seek(0)
                        raise RuntimeError(f"cold `qa ask` failed: {err.read().strip()[-500:]}")
            out["cold_start_to_first_answer_s"] = {"runs": [round(t, 2) for t in answered],
                                                   "median": round(statistics.median(answered), 2),
                                                   "process_exit_median": round(statistics.median(exited), 2)}
    return out


def bench_throughput(embedder: Embedder, cache: VectorCache, passages: list[Passage]) -> dict[str, Any]:
    """Fresh (uncached) build speed: embed passages and their sentences + FAISS (vectors then cached)."""
    texts = [p.text for p in passages]
    sentences = sorted(set(sentence_units(passages)[0]) - set(texts))  # one-sentence passages: same text
    t0 = time.perf_counter()
    vectors = embedder.encode(texts)
    sentence_vectors = embedder.encode(sentences) if sentences else None
    embed_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    make_faiss_index(vectors, index_type_for(len(texts)))
    faiss_s = time.perf_counter() - t0
    cache.add(texts, vectors)
    if sentence_vectors is not None:
        cache.add(sentences, sentence_vectors)
    total = embed_s + faiss_s
    return {"passages": len(texts), "sentences_embedded": len(sentences), "seconds": round(total, 2),
            "passages_per_s": round(len(texts) / total, 1) if total else float("inf"),
            "mean_chars": round(statistics.fmean(len(t) for t in texts), 1) if texts else 0}


def bench_size(embedder: Embedder, cache: VectorCache, pool: list[Passage], questions: list[str],
               qvecs: np.ndarray, *, progress: bool) -> dict[str, Any]:
    """Latency per mode over a corpus of ``len(pool)`` passages."""
    index, faiss_s = cached_index(pool, cache, progress=progress)
    vectors, fa, index_type = index.vectors, index.faiss, index.index_type
    queries = _CachedQueries(embedder, dict(zip(questions, qvecs, strict=True)))
    out: dict[str, Any] = {"passages": len(pool), "composition": _composition(pool), "index_type": index_type,
                           "faiss_build_seconds": round(faiss_s, 2), "modes": {}}
    bm25_s = None
    for mode in MODES:
        r = Retriever(index=index, embedder=queries, mode=mode)
        t0 = time.perf_counter()
        r.warm_up()
        if mode == "hybrid":
            bm25_s = time.perf_counter() - t0
        r.retrieve(questions[0])  # first call pays one-time costs
        timing = {"search": _time_retrieval(r, questions)}
        # end to end: the question is embedded by the model on every call, as in the chatbot
        r.embedder = embedder
        timing["end_to_end"] = _time_retrieval(r, questions)
        out["modes"][mode] = timing
        del r
    out["bm25_build_seconds"] = round(bm25_s or 0.0, 2)
    if index_type != INDEX_FLAT:
        out[f"hnsw_recall@{HNSW_RECALL_K}"] = round(_hnsw_recall(vectors, qvecs, fa, HNSW_RECALL_K), 4)
    elif len(pool) > HNSW_RECALL_K:
        # what HNSW would give at this size (the index uses exact search here)
        t0 = time.perf_counter()
        hnsw = make_faiss_index(vectors, INDEX_HNSW)
        out["hnsw_build_seconds_if_used"] = round(time.perf_counter() - t0, 2)
        recall = _hnsw_recall(vectors, qvecs, hnsw, HNSW_RECALL_K)
        out[f"hnsw_recall@{HNSW_RECALL_K}_if_used"] = round(recall, 4)
    out["peak_memory_mib"] = round(_peak_memory_mib(), 1)
    return out


def bench_recall(embedder: Embedder, cache: VectorCache, path: Path, *, progress: bool,
                 database: str | None = None) -> dict[str, Any]:
    """Open-domain recall@k per mode: all paragraphs of ``path`` form one corpus.

    With ``database`` (a PostgreSQL URL) hybrid retrieval through ``qa.index.pgstore`` is measured too, in a
    schema of its own that is dropped afterwards.
    """
    data = json.loads(path.read_text(encoding="utf-8"))
    golds: list[tuple[str, str, list[int]]] = []
    for a, article in enumerate(data["data"]):
        for p, para in enumerate(article["paragraphs"]):
            for qa in para["qas"]:
                starts = [int(ans["answer_start"]) for ans in qa.get("answers", [])]
                if starts and qa["question"].strip():
                    golds.append((qa["question"].strip(), f"{a}:{p}", starts))
    index = open_domain_index(data, cache, progress=progress)
    passages = index.passages
    paragraphs = sum(len(article["paragraphs"]) for article in data["data"])
    qtexts = sorted({q for q, _, _ in golds})
    qvecs = cache.get(qtexts, progress=progress)
    queries = _CachedQueries(embedder, dict(zip(qtexts, qvecs, strict=True)))
    out: dict[str, Any] = {"file": str(path), "paragraphs": paragraphs, "passages": len(passages),
                           "questions": len(golds), "modes": {}}
    runs: list[tuple[str, bool]] = [(mode, True) for mode in MODES] + [("hybrid", False)]
    store = None
    if database:
        from qa.index.pgstore import PgIndex, PgRetriever
        from qa.index.pgstore_write import sync

        store = PgIndex(url=database, schema="qa_bench_recall")
        store.drop()
        sources = {f"{a}:{p}": para["context"] for a, article in enumerate(data["data"])
                   for p, para in enumerate(article["paragraphs"])}
        t0 = time.perf_counter()
        sync(store, sources, embedder, cache=cache.vectors, progress=progress)
        out["postgresql_write_seconds"] = round(time.perf_counter() - t0, 2)
        runs.append(("hybrid (PostgreSQL)", True))
    for mode, merge in runs:
        if mode == "hybrid (PostgreSQL)":
            r: Any = PgRetriever(store=store, embedder=queries, mode="hybrid")
        else:
            r = Retriever(index=index, embedder=queries, mode=mode, merge=merge)
        r.warm_up()
        found = dict.fromkeys(RECALL_KS, 0)
        chars = 0
        for q, name, starts in golds:
            # asked once per k: candidate depth grows with k, and merged hits are not prefixes
            for k in RECALL_KS:
                hits = r.retrieve(q, top_k=k)
                if any(h.source == name and any(h.start <= s < h.end for s in starts) for h in hits):
                    found[k] += 1
            chars += sum(len(h.text) for h in hits)
        label = mode if merge else f"{mode} (overlaps not merged)"
        out["modes"][label] = {f"recall@{k}": round(found[k] / len(golds), 4) for k in RECALL_KS}
        out["modes"][label][f"chars@{max(RECALL_KS)}"] = round(chars / len(golds))
    if store is not None:
        store.drop()
        store.close()
    return out


class _CountingReader:
    """A reader that counts the passages it is given (how much ``read_in_rank_order`` reads)."""

    def __init__(self, reader: Any) -> None:
        self.reader = reader
        self.passages = 0

    def read(self, question: str, passages: Sequence[Any], **kw: Any) -> Any:
        """Count, then read."""
        self.passages += len(passages)
        return self.reader.read(question, passages, **kw)


def bench_open_domain(embedder: Embedder, cache: VectorCache, path: Path, n: int, top_k: int, *,
                      progress: bool) -> dict[str, Any]:
    """Whole answers over every paragraph of ``path``: reading in rank order vs reading every passage."""
    from qa.chat.select import read_in_rank_order, select_span
    from qa.reader.read import Reader

    data = json.loads(path.read_text(encoding="utf-8"))
    questions = sorted({qa["question"].strip() for article in data["data"] for para in article["paragraphs"]
                        for qa in para["qas"] if qa["question"].strip()})
    random.Random(SHUFFLE_SEED).shuffle(questions)
    questions = questions[:n]
    index = open_domain_index(data, cache, progress=progress)
    retriever = Retriever(index=index, embedder=embedder, top_k=top_k)
    retriever.warm_up()
    reader = _CountingReader(Reader())
    reader.reader.warm_up()
    read_in_rank_order(reader, questions[0], retriever.retrieve(questions[0]))  # one-time costs
    reader.passages = 0
    early_ms, full_ms, same = [], [], 0
    for i, q in enumerate(questions):
        t0 = time.perf_counter()
        hits = retriever.retrieve(q)
        retrieve = time.perf_counter() - t0

        def early(q: str = q, hits: list = hits) -> Any:
            return read_in_rank_order(reader, q, hits)

        def full(q: str = q, hits: list = hits) -> Any:
            return select_span(reader.reader.read(q, hits, top_n=len(hits), per_passage=True), hits)

        answers, times = {}, {}
        for name, fn in ((("early", early), ("full", full)) if i % 2 else (("full", full), ("early", early))):
            t0 = time.perf_counter()
            answers[name] = fn()
            times[name] = (retrieve + time.perf_counter() - t0) * 1000
        early_ms.append(times["early"])
        full_ms.append(times["full"])
        a, b = answers["early"], answers["full"]
        same += (a is None and b is None) or (a is not None and b is not None
                                             and (a.source, a.start, a.end) == (b.source, b.start, b.end))
    return {"file": str(path), "passages": len(index.passages), "top_k": top_k, "questions": len(questions),
            "rank_order": {"p50_ms": round(_percentile(early_ms, 50), 1),
                           "p95_ms": round(_percentile(early_ms, 95), 1),
                           "passages_read_per_question": round(reader.passages / len(questions), 2)},
            "every_passage": {"p50_ms": round(_percentile(full_ms, 50), 1),
                              "p95_ms": round(_percentile(full_ms, 95), 1)},
            "same_answers": same}
