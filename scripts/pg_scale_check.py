"""PostgreSQL retrieval latency at corpus sizes beyond what this machine can embed in reasonable time.

Run ``python scripts/pg_scale_check.py`` from the repository root. It starts a throwaway PostgreSQL
(the ``pgserver`` wheel), writes N passages cut from the SQuAD contexts of ``../shared/data`` (their
text, so full-text search and BM25 see real language) with random unit vectors for them and their
sentences (embedding 100k passages takes hours on 2 cores; random vectors make HNSW's work no easier),
then times ``PgRetriever.retrieve`` on real questions, the question embedded by the real model, and an
update that changes one document. It prints the write time, retrieval p50/p95 and the update's time
per size.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from qa.index.build import chunk_sources, normalise_chunk_settings  # noqa: E402
from qa.index.local import passage_sentences  # noqa: E402
from qa.index.vector_cache import text_key  # noqa: E402
from qa.lab.bench_corpus import DEFAULT_DATA_DIR, load_contexts, load_questions, passage_pool  # noqa: E402
from qa.lab.report import report_arg  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Print one line per size (or one JSON object)."""
    import numpy as np
    import pgserver

    from qa.index.embed import Embedder
    from qa.index.pgstore import PgIndex, PgRetriever
    from qa.index.pgstore_write import sync

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1000,10000,100000",
                   help="passages per run (default 1000,10000,100000)")
    p.add_argument("--queries", type=int, default=100, help="questions timed per size (default 100)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--report", default=None, metavar="MD", type=report_arg,
                   help="also write the figures as a Markdown report (and a .json beside it)")
    args = p.parse_args(argv)
    sizes = sorted(int(x) for x in args.sizes.split(",") if x.strip())
    embedder = Embedder()
    embedder.warm_up()
    questions = load_questions(DEFAULT_DATA_DIR, args.queries)
    pool = passage_pool(load_contexts(DEFAULT_DATA_DIR), max(sizes))
    rng = np.random.default_rng(0)
    result: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        server = pgserver.get_server(tmp, cleanup_mode="stop")
        try:
            for size in sizes:
                sources = {f"p{i}": p.text for i, p in enumerate(pool[:size])}
                store = PgIndex(url=server.get_uri(), schema=f"scale_{size}")
                store.drop()
                cut = chunk_sources(sources, normalise_chunk_settings(None))  # what sync will store
                texts = {t for c in cut for t in [c.text, *passage_sentences(c)]}
                vecs = rng.standard_normal((len(texts), embedder.dim)).astype(np.float32)
                vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
                cache = dict(zip((text_key(t) for t in texts), vecs, strict=True))
                t0 = time.perf_counter()
                sync(store, sources, embedder, cache=cache)
                write = time.perf_counter() - t0
                retriever = PgRetriever(store=store, embedder=embedder, top_k=3)
                retriever.retrieve(questions[0])
                times = []
                for q in questions:
                    t0 = time.perf_counter()
                    retriever.retrieve(q)
                    times.append((time.perf_counter() - t0) * 1000)
                times.sort()
                # an update of one document: its new passage embedded, the rest left as it is
                changed = {**sources, "p0": sources["p0"] + " A lamp was fitted on the bridge in 2020."}
                t0 = time.perf_counter()
                sync(store, changed, embedder, cache=cache)
                update = time.perf_counter() - t0
                result[str(size)] = {"write_seconds": round(write, 1),
                                     "retrieve_p50_ms": round(statistics.median(times), 1),
                                     "retrieve_p95_ms": round(times[int(0.95 * (len(times) - 1))], 1),
                                     "update_one_seconds": round(update, 2)}
                store.drop()
                store.close()
                if not args.json:
                    r = result[str(size)]
                    print(f"{size:>7} passages: written in {r['write_seconds']} s; retrieval (question "
                          f"embedded) p50 {r['retrieve_p50_ms']} ms, p95 {r['retrieve_p95_ms']} ms; one "
                          f"document changed in {r['update_one_seconds']} s", flush=True)
        finally:
            server.cleanup()
    if args.json:
        print(json.dumps(result))
    if args.report:
        from qa.lab import report

        rows = [[f"{int(n):,}", r["write_seconds"], r["retrieve_p50_ms"], r["retrieve_p95_ms"],
                 r["update_one_seconds"]] for n, r in result.items()]
        body = ("## Retrieval through PostgreSQL + pgvector\n\nHybrid retrieval, the question embedded by "
                "the real model; passages cut from SQuAD contexts with random unit vectors. The last "
                "column is an update that changes one document (`qa index`'s one transaction).\n\n"
                + report.table(["passages", "write s", "retrieval p50 ms", "retrieval p95 ms",
                                "one document changed, s"], rows))
        path = report.write(args.report, title="PostgreSQL at scale", kind="postgres", result=result,
                            sections=[body], command=["python", "scripts/pg_scale_check.py",
                                                      *(argv if argv is not None else sys.argv[1:])])
        print(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
