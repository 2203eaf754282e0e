r"""Hostile load check: 16 users ask 5 questions each, alone, then while 4 sessions add hostile documents.

Starts the app (``python -m ui.app``, the real Chatbot over seeds/) and runs the load check of
``scripts/load_check.py`` twice: alone, then while ``--hostile`` extra clients keep adding documents
through ``/add_documents``: a paste at the length limit, degenerate text ("a\n\n" repeated), many
small documents, a 20 MB .txt, and a link to 127.0.0.1. Prints and reports p50/p95 with and without
them, the p95 ratio, and lost or errored answers; exits 1 if an answer was lost or p95 grew over 1.5x.

    python scripts/hostile_check.py --hostile 4 --report docs/load-hostile.md
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from load_check import REPO, Tally, percentile, run_user, start_app, stop_app

#: The goal: questions' p95 grows by at most this much while hostile sessions add documents.
MAX_P95_RATIO = 1.5


def hostile_documents(folder: Path, url: str) -> list[tuple[str, tuple]]:
    """(label, /add_documents arguments) for each hostile addition, cycled by each hostile client."""
    from gradio_client import handle_file

    from qa.chat.library import MAX_PASTE_CHARS

    article = (REPO / "seeds" / "article.txt").read_text(encoding="utf-8")
    big = folder / "big.txt"
    if not big.exists():
        big.write_text((article * 6_500)[:20 * 1024 * 1024 - 1024], encoding="utf-8")
    small = folder / "note.txt"
    small.write_text("The old mill on the river was built by Anna Berg in 1990.", encoding="utf-8")
    return [
        ("paste at the limit", (None, (article * 300)[:MAX_PASTE_CHARS], "")),
        ("degenerate text", (None, "a\n\n" * (MAX_PASTE_CHARS // 3), "")),
        ("20 MB .txt", ([handle_file(str(big))], "", "")),
        ("link to 127.0.0.1", (None, "", f"{url}/")),
        *[("many documents", ([handle_file(str(small))] * 5, "", ""))] * 4,
    ]


def run_hostile(n: int, url: str, folder: Path, stop: threading.Event, outcomes: Counter,
                lock: threading.Lock) -> None:
    """One hostile visitor: a client of its own adding documents until ``stop``."""
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    client = Client(url + "/", verbose=False, download_files=False)
    actions = hostile_documents(folder, url)
    i, token = n, ""
    try:
        while not stop.is_set():
            label, (files, text, link) = actions[i % len(actions)]
            i += 1
            try:
                out = client.predict(files, text, link, token, api_name="/add_documents")
                token, result = out["token"], "added"
            except AppError as e:
                result = f"refused: {str(e)[:70]}"
            except Exception as e:  # noqa: BLE001 - a hostile client's failure is only counted
                result = f"failed: {type(e).__name__}"
            with lock:
                outcomes[(label, result)] += 1
    finally:
        client.close()


def load(url: str, users: int, questions: int) -> tuple[Tally, float]:
    """The load check's users against ``url``; (tally, wall seconds)."""
    tally = Tally()
    t0 = time.perf_counter()
    deadline = time.monotonic() + 540
    with ThreadPoolExecutor(max_workers=users) as pool:
        for u in range(users):
            pool.submit(run_user, u, url, questions, 180.0, deadline, tally, None)
    return tally, time.perf_counter() - t0


def main(argv: Sequence[str] | None = None) -> int:
    """Run both phases; print and report the figures; 0 when the goal is met."""
    import tempfile

    from qa.lab.report import report_arg

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=16, help="users asking (default 16)")
    parser.add_argument("--questions", type=int, default=5, help="questions per user (default 5)")
    parser.add_argument("--hostile", type=int, default=4, help="sessions adding hostile documents")
    parser.add_argument("--report", default=None, metavar="MD", type=report_arg,
                        help="also write the figures as a Markdown report (and a .json beside it)")
    args = parser.parse_args(argv)
    if min(args.users, args.questions, args.hostile) < 1:
        parser.error("--users, --questions and --hostile must be at least 1")
    proc, url = start_app(600.0)
    outcomes: Counter = Counter()
    try:
        load(url, 2, 2)  # warm up
        alone, alone_wall = load(url, args.users, args.questions)
        stop, lock = threading.Event(), threading.Lock()
        with tempfile.TemporaryDirectory() as folder:
            hostile = [threading.Thread(target=run_hostile,
                                        args=(n, url, Path(folder), stop, outcomes, lock))
                       for n in range(args.hostile)]
            for thread in hostile:
                thread.start()
            time.sleep(5)  # the hostile additions under way
            attacked, attacked_wall = load(url, args.users, args.questions)
            stop.set()
            for thread in hostile:
                thread.join(300)
    finally:
        stop_app(proc)
    total = args.users * args.questions
    rows = {}
    for name, tally, wall in (("alone", alone, alone_wall), ("hostile", attacked, attacked_wall)):
        rows[name] = {"answered": tally.answered, "errors": len(tally.errors), "lost": len(tally.lost),
                      "p50_s": round(percentile(tally.latencies, 50), 2),
                      "p95_s": round(percentile(tally.latencies, 95), 2), "wall_s": round(wall, 1)}
        print(f"{name:8} answered {tally.answered}/{total}, errors {len(tally.errors)}, "
              f"lost {len(tally.lost)}, p50 {rows[name]['p50_s']:.2f}s, p95 {rows[name]['p95_s']:.2f}s, "
              f"{wall:.1f}s wall")
    ratio = round(rows["hostile"]["p95_s"] / rows["alone"]["p95_s"], 2)
    print(f"p95 ratio {ratio} (goal: at most {MAX_P95_RATIO})")
    for (label, result), n in sorted(outcomes.items()):
        print(f"  hostile {label}: {result} x{n}")
    ok = ratio <= MAX_P95_RATIO and not attacked.lost and not attacked.errors and not alone.lost
    if args.report:
        from qa.lab import report

        result = {"users": args.users, "questions_each": args.questions, "hostile_sessions": args.hostile,
                  "alone": rows["alone"], "hostile": rows["hostile"], "p95_ratio": ratio,
                  "goal_met": ok}
        table = "\n".join(f"| {label} | {res} | {n} |" for (label, res), n in sorted(outcomes.items()))
        sections = ["## Figures\n\n" + report.figures(result),
                    "## What the hostile sessions got\n\n| addition | outcome | times |\n"
                    "| --- | --- | --- |\n" + table + "\n"]
        path = report.write(args.report, title="Questions while hostile sessions add documents",
                            kind="load-hostile", result=result, sections=sections,
                            command=["python", "scripts/hostile_check.py", *(argv or sys.argv[1:])])
        print(f"report: {path}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
