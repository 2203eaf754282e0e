"""Load check for the chat app's ``/ask`` API: N concurrent gradio_client users x M questions each.

Starts the app (``python -m ui.app`` on a free localhost port, the real Chatbot over seeds/) unless
``--url`` points at one already running; only localhost URLs are accepted. Each user is its own
``gradio_client.Client`` asking a fixed, varied list of questions one after another; every request
has a time limit and the whole run has a deadline. Prints requests answered / lost, latency
p50/p95/max and the overall throughput; exits 1 if any request was lost.

    python scripts/load_check.py                      # 16 users x 5 questions
    python scripts/load_check.py --url http://127.0.0.1:7860 --users 8 --questions 3
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

REPO = Path(__file__).resolve().parent.parent
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
QUESTIONS: tuple[str, ...] = (
    "Why does Turkey want Ukrainian engines?",
    "Who objected to the factory deal?",
    "How many agreements did Erdogan sign?",
    "Who is Asli Aydintasbas?",
    "What did the Chinese try to buy?",
    "Which country is a world leader in military-engine production?",
    "What deal collapsed with Pakistan?",
    "Who is Petro Burkovskiy?",
    "What does Turkey sell to Ukraine?",
    "What is the capital of Australia?",
)


@dataclass
class Tally:
    """Thread-safe results of the run."""

    latencies: list[float] = field(default_factory=list)
    answered: int = 0
    abstained: int = 0
    errors: list[str] = field(default_factory=list)  # answered with an error message (AppError)
    lost: list[str] = field(default_factory=list)  # timed out, connection failed, skipped
    lock: threading.Lock = field(default_factory=threading.Lock)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def free_port() -> int:
    """A free localhost port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(startup_timeout: float) -> tuple[subprocess.Popen, str]:
    """``python -m ui.app`` on a free localhost port; returns (process, url) once it serves."""
    port = free_port()
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1", GRADIO_ANALYTICS_ENABLED="False",
               TOKENIZERS_PARALLELISM="false")
    env.pop("QA_AUTH", None)
    proc = subprocess.Popen([sys.executable, "-m", "ui.app", "--host", "127.0.0.1", "--port", str(port)],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, bufsize=1)
    ready = threading.Event()
    lines: list[str] = []

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("Serving at"):
                ready.set()

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + startup_timeout
    while not ready.wait(0.2):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_app(proc)
            raise SystemExit("the app did not start:\n" + "\n".join(lines[-30:]))
    print(f"app started in {startup_timeout - (deadline - time.monotonic()):.1f}s at "
          f"http://127.0.0.1:{port}", flush=True)
    return proc, f"http://127.0.0.1:{port}"


def stop_app(proc: subprocess.Popen) -> None:
    """Ctrl+C the app; kill it if it does not stop."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def run_user(user: int, url: str, n_questions: int, request_timeout: float, deadline: float,
             tally: Tally, auth: tuple[str, str] | None) -> None:
    """One user: a client of its own, asking ``n_questions`` questions in turn."""
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    questions = [QUESTIONS[(user + i) % len(QUESTIONS)] for i in range(n_questions)]
    try:
        client = Client(url + "/", verbose=False, download_files=False, auth=auth)
    except Exception as e:  # cannot even connect: all of this user's requests are lost
        with tally.lock:
            tally.lost.extend(f"user {user}: connect failed: {e}" for _ in questions)
        return
    try:
        for i, question in enumerate(questions):
            left = deadline - time.monotonic()
            if left <= 0:
                with tally.lock:
                    tally.lost.extend(f"user {user}: skipped (deadline)" for _ in questions[i:])
                return
            t0 = time.perf_counter()
            job = client.submit(question, api_name="/ask")
            try:
                out = job.result(timeout=min(request_timeout, left))
            except AppError as e:
                with tally.lock:
                    tally.errors.append(f"user {user}: {question!r}: {e}")
                continue
            except Exception as e:  # timeout, dropped connection, queue full...
                job.cancel()
                with tally.lock:
                    tally.lost.append(f"user {user}: {question!r}: {type(e).__name__}: {e}")
                continue
            latency = time.perf_counter() - t0
            ok = isinstance(out, dict) and out.get("question") and "answer" in out
            with tally.lock:
                if ok:
                    tally.latencies.append(latency)
                    tally.answered += 1
                    tally.abstained += out["answer"] is None
                else:
                    tally.lost.append(f"user {user}: {question!r}: malformed reply {out!r:.200}")
    finally:
        client.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the load check; print the figures; 0 when nothing was lost."""
    from qa.lab.report import report_arg

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=None, help="a running app on localhost (default: start one)")
    parser.add_argument("--users", type=int, default=16, help="concurrent users (default 16)")
    parser.add_argument("--questions", type=int, default=5, help="questions per user (default 5)")
    parser.add_argument("--request-timeout", type=float, default=180.0, help="seconds per request")
    parser.add_argument("--deadline", type=float, default=540.0, help="seconds for the whole run")
    parser.add_argument("--startup-timeout", type=float, default=600.0, help="seconds for the app to start")
    parser.add_argument("--auth", default=None, help="USER:PASSWORD if the app requires a login")
    parser.add_argument("--report", default=None, metavar="MD", type=report_arg,
                        help="also write the figures as a Markdown report (and a .json beside it)")
    args = parser.parse_args(argv)
    if args.users < 1 or args.questions < 1:
        parser.error("--users and --questions must be at least 1")
    auth = None
    if args.auth:
        user, _, password = args.auth.partition(":")
        auth = (user, password)

    proc = None
    if args.url:
        url = args.url.rstrip("/")
        host = urlparse(url).hostname
        if urlparse(url).scheme not in {"http", "https"} or host not in LOCAL_HOSTS:
            parser.error(f"--url must be a localhost http(s) URL, got {args.url!r}")
    else:
        proc, url = start_app(args.startup_timeout)

    tally = Tally()
    total = args.users * args.questions
    print(f"{args.users} users x {args.questions} questions = {total} requests to {url}/ask "
          f"(per-request limit {args.request_timeout:.0f}s, run limit {args.deadline:.0f}s)", flush=True)
    try:
        t0 = time.perf_counter()
        deadline = time.monotonic() + args.deadline
        with ThreadPoolExecutor(max_workers=args.users) as pool:
            for u in range(args.users):
                pool.submit(run_user, u, url, args.questions, args.request_timeout, deadline, tally, auth)
        wall = time.perf_counter() - t0
    finally:
        if proc is not None:
            stop_app(proc)

    lat = tally.latencies
    print(f"answered: {tally.answered}/{total} ({tally.abstained} of them 'does not say')")
    print(f"errors:   {len(tally.errors)}   lost: {len(tally.lost)}")
    for line in (tally.errors + tally.lost)[:10]:
        print(f"  {line}")
    print(f"latency:  p50 {percentile(lat, 50):.2f}s  p95 {percentile(lat, 95):.2f}s  "
          f"max {max(lat) if lat else math.nan:.2f}s")
    print(f"total:    {wall:.1f}s wall, throughput {tally.answered / wall:.2f} answers/s")
    if args.report:
        from qa.lab import report

        result = {"users": args.users, "questions_each": args.questions, "requests": total,
                  "answered": tally.answered, "abstained": tally.abstained, "errors": len(tally.errors),
                  "lost": len(tally.lost), "p50_s": round(percentile(lat, 50), 2),
                  "p95_s": round(percentile(lat, 95), 2), "max_s": round(max(lat), 2) if lat else None,
                  "wall_s": round(wall, 1), "answers_per_s": round(tally.answered / wall, 2)}
        body = "## Figures\n\n" + report.figures(result)
        given = list(argv if argv is not None else sys.argv[1:])
        path = report.write(args.report, title="Many users at once: the chat app's /ask API", kind="load",
                            result=result, sections=[body],
                            command=["python", "scripts/load_check.py", *given])
        print(f"report: {path}")
    return 0 if not tally.lost and not tally.errors else 1


if __name__ == "__main__":
    sys.exit(main())
