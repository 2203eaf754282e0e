"""Benchmark indexing and retrieval: build speed, latency per mode and size, memory, recall."""

from __future__ import annotations

import argparse
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

from qa.index.build import DEFAULT_CHUNK_SETTINGS, build_or_load, chunk_sources
from qa.index.local import (
    EXACT_MAX,
    INDEX_FLAT,
    INDEX_HNSW,
    Index,
    index_type_for,
    make_faiss_index,
    sentence_units,
)
from qa.index.retrieve import MODES, Retriever
from qa.index.vector_cache import VectorCache
from qa.ingest.chunk import chunk_text
from qa.lab.report import report_arg
from qa.schema import Passage

if TYPE_CHECKING:
    import numpy as np

    from qa.index.embed import Embedder

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data"
DEFAULT_RECALL_FILE = DEFAULT_DATA_DIR / "squad" / "squad-v1.1-dev-40.json"
DEFAULT_SEED = REPO_ROOT / "seeds" / "article.txt"
DEFAULT_CACHE_DIR = REPO_ROOT / "build" / "bench-cache"
DEFAULT_SIZES = (1_000, 10_000, 100_000)
DEFAULT_QUERIES = 100
DEFAULT_THROUGHPUT_PASSAGES = 200
#: Questions answered on the seed article (warm) and fresh processes timed to their first answer (cold).
DEFAULT_ANSWERS = 50
DEFAULT_COLD_RUNS = 3
RECALL_KS = (1, 3, 5)
HNSW_RECALL_K = 10
SHUFFLE_SEED = 0
#: Marks the single-sentence passages that top up the scaling corpus beyond its sentence windows.
SINGLE_SUFFIX = "/sentence"
#: Sentences per window of the size pools: 3 (the default before 4), fixed so cached vectors stay valid;
#: retrieval latency depends on the number of passages, not their width.
POOL_SENTENCES = 3


def _parse_sizes(value: str) -> list[int]:
    """Parse ``1000,10000`` (``k`` suffixes allowed: ``1k,10k``) into sizes."""
    sizes = []
    for part in value.split(","):
        part = part.strip().lower()
        if not part:
            continue
        mult = 1000 if part.endswith("k") else 1
        try:
            n = int(part.rstrip("k")) * mult
        except ValueError as e:
            raise argparse.ArgumentTypeError(
                f"sizes must be numbers like 1000,10000 or 1k,10k: {part!r}") from e
        if n < 1:
            raise argparse.ArgumentTypeError(f"sizes must be positive, got {n}")
        sizes.append(n)
    return sizes


def build_parser() -> argparse.ArgumentParser:
    """The ``qa bench`` argument parser."""
    p = argparse.ArgumentParser(prog="qa bench", description=__doc__)
    p.add_argument("--sizes", type=_parse_sizes, default=list(DEFAULT_SIZES),
                   help="corpus sizes in passages for the latency runs (default 1000,10000,100000; "
                        "'' to skip)")
    p.add_argument("--queries", type=int, default=DEFAULT_QUERIES,
                   help=f"questions timed per mode and size (default {DEFAULT_QUERIES})")
    p.add_argument("--answers", type=int, default=DEFAULT_ANSWERS,
                   help="questions answered end to end on the seed article, warm (0 to skip; the questions "
                        f"are generic ones from --data-dir; default {DEFAULT_ANSWERS})")
    p.add_argument("--cold-runs", type=int, default=DEFAULT_COLD_RUNS,
                   help="fresh `qa ask` processes timed from start to first answer (0 to skip; "
                        f"default {DEFAULT_COLD_RUNS})")
    p.add_argument("--recall", action="store_true",
                   help="also measure open-domain recall@1/3/5 per mode on --recall-file")
    p.add_argument("--recall-file", default=str(DEFAULT_RECALL_FILE),
                   help="SQuAD-format JSON for --recall and --open-domain")
    p.add_argument("--open-domain", type=int, default=0, metavar="N",
                   help="also answer N questions of --recall-file over all its paragraphs, reading passages "
                        "in rank order (what the chatbot does) and every passage: latency and agreement")
    p.add_argument("--top-k", type=int, default=5, help="passages per question for --open-domain (default 5)")
    p.add_argument("--database", default=None, metavar="URL",
                   help="with --recall: also measure hybrid retrieval through this PostgreSQL database")
    p.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR),
                   help="folder of SQuAD-format JSON files whose contexts make the scaling corpus")
    p.add_argument("--seed-article", default=str(DEFAULT_SEED), help="article timed for indexing")
    p.add_argument("--cache-dir", default=str(DEFAULT_CACHE_DIR),
                   help="where embedded bench vectors are cached by text SHA-256")
    p.add_argument("--model", default=None, help="embedding model (default all-MiniLM-L6-v2)")
    p.add_argument("--threads", type=int, default=None,
                   help="ONNX Runtime threads per session (default: one per core; sets QA_THREADS)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--report", default=None, metavar="MD", type=report_arg,
                   help="also write the figures as a Markdown report with plots (and a .json beside it), "
                        "e.g. docs/benchmarks.md")
    return p


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
    from qa.lab.train import DATA_DIR, split_squad
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
    from qa.chat.chatbot import read_in_rank_order, select_span
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


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the benchmark; return the results."""
    from qa.index.embed import DEFAULT_EMBEDDING_MODEL, Embedder

    say = (lambda m: None) if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    progress = not args.quiet
    from qa import ort

    if args.threads is not None:
        os.environ[ort.THREADS_ENV] = str(args.threads)  # read by every session, and by cold `qa ask`
    t0 = time.perf_counter()
    embedder = Embedder(model=args.model or DEFAULT_EMBEDDING_MODEL)
    embedder.warm_up()
    result: dict[str, Any] = {"model": embedder.name, "dim": embedder.dim, "exact_max": EXACT_MAX,
                              "model_load_seconds": round(time.perf_counter() - t0, 2)}
    result["threads"] = ort.threads() or os.cpu_count()
    cache = VectorCache(Path(args.cache_dir), embedder, desc="Embedding (bench cache)")
    cache.load()
    say(f"bench cache: {len(cache.vectors):,} vectors in {cache.folder}")
    seed = Path(args.seed_article)
    if seed.is_file():
        say("timing the seed article…")
        result["seed_article"] = bench_seed(embedder, seed)
    if (args.answers or args.cold_runs) and seed.is_file():
        say("answering on the seed article (warm) and timing cold starts…")
        questions = load_questions(Path(args.data_dir), args.answers) if args.answers else []
        result["seed_answers"] = bench_answers(embedder, seed, questions, args.cold_runs)
    sizes = sorted(set(args.sizes))
    if sizes:
        data_dir = Path(args.data_dir)
        contexts = load_contexts(data_dir)
        if not contexts:
            raise SystemExit(f"no SQuAD-format contexts under {data_dir}; pass --data-dir")
        result["corpus"] = {"data_dir": str(data_dir), "contexts": len(contexts)}
        pool = passage_pool(contexts, max(sizes))
        say(f"fresh build throughput on {min(DEFAULT_THROUGHPUT_PASSAGES, len(pool))} passages…")
        result["build_throughput"] = bench_throughput(embedder, cache, pool[:DEFAULT_THROUGHPUT_PASSAGES])
        questions = load_questions(data_dir, args.queries)
        qvecs = cache.get(questions)
        result["queries_per_mode"] = len(questions)
        result["sizes"] = {}
        for size in sizes:
            sub = pool[:size]
            say(f"size {len(sub):,}: embedding (cached) and timing…")
            result["sizes"][str(size)] = bench_size(embedder, cache, sub, questions, qvecs, progress=progress)
            say(json.dumps(result["sizes"][str(size)]))
    if args.recall:
        say("open-domain recall…")
        result["recall"] = bench_recall(embedder, cache, Path(args.recall_file), progress=progress,
                                        database=args.database)
    if args.open_domain:
        say(f"answering {args.open_domain} questions over every paragraph of {args.recall_file}…")
        result["open_domain_answers"] = bench_open_domain(embedder, cache, Path(args.recall_file),
                                                          args.open_domain, args.top_k, progress=progress)
    result["embedded_this_run"] = cache.embedded
    if cache.embedded:
        result["uncached_embedding_passages_per_s"] = round(cache.embedded / cache.embed_seconds, 1)
    result["peak_memory_mib"] = round(_peak_memory_mib(), 1)
    return result


def _print_human(r: dict[str, Any]) -> None:
    """The results as readable lines."""
    print(f"model {r['model']} (dim {r['dim']}), loaded in {r['model_load_seconds']} s, "
          f"threads {r['threads']}")
    if "seed_article" in r:
        s = r["seed_article"]
        print(f"seed article: {s['passages']} passages indexed in {s['index_seconds']} s "
              f"(reload {s['reload_seconds']} s)")
    if "seed_answers" in r:
        a = r["seed_answers"]
        if "end_to_end" in a:
            e, t = a["end_to_end"], a["retrieval_part"]
            print(f"answers on the seed article (warm, {a['questions']} questions, reader {a['reader']}): "
                  f"p50 {e['p50_ms']} ms, p95 {e['p95_ms']} ms (retrieval part p50 {t['p50_ms']} ms)")
        if "cold_start_to_first_answer_s" in a:
            c = a["cold_start_to_first_answer_s"]
            print(f"cold start to first answer (fresh `qa ask` process): median {c['median']} s "
                  f"(process exit {c.get('process_exit_median')} s), "
                  f"runs {c['runs']}")
    if "build_throughput" in r:
        b = r["build_throughput"]
        print(f"fresh build throughput: {b['passages_per_s']} passages/s "
              f"({b['passages']} passages, mean {b['mean_chars']} chars, {b['seconds']} s)")
    for size, s in r.get("sizes", {}).items():
        line = (f"{int(size):>7,} passages  index {s['index_type']:<8} "
                f"faiss build {s['faiss_build_seconds']} s, bm25 build {s['bm25_build_seconds']} s")
        if f"hnsw_recall@{HNSW_RECALL_K}" in s:
            line += f", HNSW recall@{HNSW_RECALL_K} vs exact {s[f'hnsw_recall@{HNSW_RECALL_K}']}"
        elif f"hnsw_recall@{HNSW_RECALL_K}_if_used" in s:
            line += (f" (HNSW here would give recall@{HNSW_RECALL_K} vs exact "
                     f"{s[f'hnsw_recall@{HNSW_RECALL_K}_if_used']}, "
                     f"build {s['hnsw_build_seconds_if_used']} s)")
        print(line)
        for mode, m in s["modes"].items():
            e, q = m["end_to_end"], m["search"]
            print(f"          {mode:<8} end to end p50 {e['p50_ms']:>7} ms  p95 {e['p95_ms']:>7} ms"
                  f"  | search only (question pre-embedded) p50 {q['p50_ms']:>6} ms  p95 {q['p95_ms']:>6} ms")
    if "recall" in r:
        rc = r["recall"]
        print(f"open-domain recall on {Path(rc['file']).name}: {rc['paragraphs']} paragraphs, "
              f"{rc['passages']} passages, {rc['questions']} questions")
        for mode, m in rc["modes"].items():
            print(f"          {mode:<8} " + "  ".join(f"{k} {v:.3f}" if k.startswith("recall") else
                                                f"mean characters in the top {k.split('@')[1]} {v}"
                                                for k, v in m.items()))
    if "open_domain_answers" in r:
        o = r["open_domain_answers"]
        ro, ev = o["rank_order"], o["every_passage"]
        print(f"answers over {Path(o['file']).name} ({o['passages']} passages), top {o['top_k']}, "
              f"{o['questions']} questions: reading in rank order p50 {ro['p50_ms']} ms "
              f"p95 {ro['p95_ms']} ms "
              f"({ro['passages_read_per_question']} passages read); every passage p50 {ev['p50_ms']} ms "
              f"p95 {ev['p95_ms']} ms; same answer {o['same_answers']}/{o['questions']}")
    if r.get("embedded_this_run"):
        print(f"embedded {r['embedded_this_run']:,} uncached texts at "
              f"{r['uncached_embedding_passages_per_s']} texts/s")
    print(f"peak memory {r['peak_memory_mib']} MiB")


def main(argv: list[str] | None = None) -> int:
    """Run ``qa bench``; return the exit status."""
    args = build_parser().parse_args(argv)
    if args.queries < 1:
        build_parser().error("--queries must be at least 1")
    if args.answers < 0 or args.cold_runs < 0:
        build_parser().error("--answers and --cold-runs must be 0 or more")
    if args.threads is not None and args.threads < 1:
        build_parser().error("--threads must be at least 1")
    result = run(args)
    if args.json:
        print(json.dumps(result))
    else:
        _print_human(result)
    if args.report:
        from qa.lab import report

        path = args.report
        path.parent.mkdir(parents=True, exist_ok=True)  # the plots are drawn before the report is written
        report.write(path, title="Benchmarks", kind="bench", result=result,
                     sections=report.bench_sections(result, path),
                     command=["qa", "bench", *(argv if argv is not None else sys.argv[1:])])
        print(f"report: {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
