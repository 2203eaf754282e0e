"""A new user's first start, timed: a fresh clone, a new environment, `bash scripts/app.sh`, one answer.

Run ``python scripts/install_check.py [--report docs/install.md]`` from the repository root (it needs the
network to PyPI, like a user's first install). It clones the committed HEAD into a temporary folder, makes
a new virtual environment and an empty ``HOME`` (no pip cache, no exported models, no index), runs the
README's first command with ``PYTHON`` set to that environment, waits for the app to serve, asks the
example question through ``gradio_client``, then measures what was installed and what pip downloads.
"""

from __future__ import annotations

import argparse
import os
import queue
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from qa.lab.report import report_arg  # noqa: E402

QUESTION = "Why does Turkey want Ukrainian engines?"
#: Variables that would point qa, pip or Python at anything but a new user's defaults.
NOT_A_NEW_USERS = re.compile(r"^(QA_|XDG_|PIP_CACHE_DIR$|VIRTUAL_ENV$|PYTHONPATH$)")


def _folder_bytes(folder: Path) -> int:
    """The bytes of the files under ``folder``."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def _lines(proc: subprocess.Popen) -> queue.Queue:
    """The process's output lines, read by a thread into a queue (None at the end)."""
    lines: queue.Queue = queue.Queue()

    def pump() -> None:
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def first_start(tmp: Path, port: int, timeout: float) -> dict:
    """Clone, start ``scripts/app.sh`` on a new environment, ask once; the timings and sizes."""
    from gradio_client import Client

    clone, venv, home = tmp / "qa", tmp / "venv", tmp / "home"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{REPO}", str(clone)], check=True)
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not NOT_A_NEW_USERS.match(k)}
    env.update(HOME=str(home), PYTHON=str(venv / "bin" / "python"))
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    proc = subprocess.Popen(["bash", "scripts/app.sh", "--port", str(port)], cwd=clone, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    result: dict = {}
    try:
        lines, deadline = _lines(proc), time.monotonic() + timeout
        while "serving_s" not in result:
            line = lines.get(timeout=max(1.0, deadline - time.monotonic()))
            if line is None or time.monotonic() > deadline:
                raise RuntimeError("scripts/app.sh exited or took too long before serving")
            if found := re.search(r"installed in (\d+) s", line):
                result["install_s"] = int(found.group(1))
            if line.startswith("Serving at"):
                result["serving_s"] = round(time.perf_counter() - t0, 1)
        answer = Client(f"http://127.0.0.1:{port}/", verbose=False).predict(QUESTION, api_name="/ask")
        result["first_answer_s"] = round(time.perf_counter() - t0, 1)
        result["answer"] = answer["answer"]
    finally:
        proc.terminate()
        proc.wait(30)
    listed = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "list", "--format", "freeze"],
                            capture_output=True, text=True, check=True).stdout.split()
    result["packages"] = len(listed)
    result["installed_mb"] = round(_folder_bytes(venv) / 2**20)
    # what pip fetches for these requirements when nothing is cached (torch pinned, as install.sh does)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "download", "-q", "-d", str(tmp / "dl"),
                    "torch==2.13.0", str(clone)], env=env, check=True, capture_output=True)
    result["download_mb"] = round(_folder_bytes(tmp / "dl") / 2**20)
    return result


def main(argv: list[str] | None = None) -> int:
    """Print the figures (and write the report)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=7871, help="the app's port (default 7871)")
    p.add_argument("--timeout", type=float, default=1800, help="seconds allowed before the app serves")
    p.add_argument("--report", default=None, metavar="MD", type=report_arg,
                   help="also write the figures as a Markdown report (and a .json beside it)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="qa-install-check-") as tmp:
        result = first_start(Path(tmp), args.port, args.timeout)
    print(f"installed in {result.get('install_s')} s, serving after {result['serving_s']} s, first answer "
          f"after {result['first_answer_s']} s ({result['answer']!r}); {result['packages']} packages, "
          f"{result['installed_mb']} MB installed, {result['download_mb']} MB downloaded")
    if args.report:
        from qa.lab import report

        given = list(argv if argv is not None else sys.argv[1:])
        path = report.write(args.report, title="A new user's first start", kind="install", result=result,
                            sections=["## Figures\n\nA fresh clone of the committed tree, a new virtual "
                                      "environment and an empty `HOME`, then `bash scripts/app.sh` and "
                                      "the example question through `gradio_client`; seconds from the "
                                      "start.\n\n" + report.figures(result)],
                            command=["python", "scripts/install_check.py", *given])
        print(f"report: {path}")
    return 0 if result["answer"] else 1


if __name__ == "__main__":
    sys.exit(main())
