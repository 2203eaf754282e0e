"""``qa bench``: benchmark indexing and retrieval (build speed, latency per mode and size, memory, recall)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from qa.extras import require
from qa.index.local import EXACT_MAX
from qa.index.vector_cache import VectorCache
from qa.lab.bench_corpus import (
    DEFAULT_CACHE_DIR,
    DEFAULT_DATA_DIR,
    DEFAULT_RECALL_FILE,
    DEFAULT_SEED,
    load_contexts,
    load_questions,
    passage_pool,
)
from qa.lab.bench_timing import (
    HNSW_RECALL_K,
    _peak_memory_mib,
    bench_answers,
    bench_open_domain,
    bench_recall,
    bench_seed,
    bench_size,
    bench_throughput,
)
from qa.lab.report import report_arg

DEFAULT_SIZES = (1_000, 10_000, 100_000)
DEFAULT_QUERIES = 100
DEFAULT_THROUGHPUT_PASSAGES = 200
#: Questions answered on the seed article (warm) and fresh processes timed to their first answer (cold).
DEFAULT_ANSWERS = 50
DEFAULT_COLD_RUNS = 3


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
    if args.database:
        require("psycopg", "pgvector")  # before minutes of embedding: say which extra is missing
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
