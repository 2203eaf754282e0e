"""The wheel as users get it: built, installed with its declared dependencies in a new environment, asked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
QUESTION = "Why does Turkey want Ukrainian engines?"
#: Environment variables that would point qa or pip at something other than a new user's defaults.
NOT_A_NEW_USERS = ("QA_INDEX_DIR", "QA_CACHE_DIR", "QA_DATABASE_URL", "QA_THREADS", "XDG_DATA_HOME",
                   "XDG_CACHE_HOME", "PYTHONPATH", "VIRTUAL_ENV")


def _run(command: list[str], *, timeout: float, **kwargs) -> subprocess.CompletedProcess:
    """Run a command, failing the test with its output when it fails."""
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, **kwargs)
    assert done.returncode == 0, f"{command[:4]} exited {done.returncode}:\n{done.stdout[-3000:]}\n" \
                                 f"{done.stderr[-3000:]}"
    return done


@pytest.mark.slow
def test_the_wheel_installed_with_its_dependencies_answers_from_its_bundled_article(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in NOT_A_NEW_USERS}
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path / "dist"), str(REPO)],
         timeout=600, env=env)
    wheel = next((tmp_path / "dist").glob("qa-*.whl"))
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], timeout=120, env=env)
    python = venv / "bin" / "python"
    # torch pinned to the CPU build, as the README says; everything else as the wheel declares it
    _run([str(python), "-m", "pip", "install", "-q", "torch==2.13.0", str(wheel)], timeout=1500, env=env)
    site = Path(_run([str(python), "-c", "import qa, pathlib; print(pathlib.Path(qa.__file__).parent)"],
                     timeout=60, cwd=tmp_path, env=env).stdout.strip())
    assert venv in site.parents, "qa is imported from the new environment, not the checkout"
    installed = sorted(p.relative_to(site) for p in site.rglob("*") if "__pycache__" not in p.parts)

    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    user = {**env, "HOME": str(home), "HF_HUB_OFFLINE": "1"}
    asked = _run([str(venv / "bin" / "qa"), "ask", QUESTION, "--json"], timeout=600, cwd=work, env=user)
    answer = json.loads(asked.stdout)
    article_path = Path(answer["source"])
    assert article_path == site / "seeds" / "article.txt", "answered from the article bundled in the wheel"
    article = article_path.read_text(encoding="utf-8")
    assert answer["answer"] and "engines" in answer["answer"]
    assert article[answer["start"]:answer["end"]] == answer["answer"]
    assert article[answer["context_start"]:answer["context_end"]] == answer["context"]
    assert answer["passages"] and all(article[p["start"]:p["end"]] == p["text"] for p in answer["passages"])
    # the index and the exported models went into the user's folders, nothing beside the install or here
    assert (home / ".local" / "share" / "qa" / "index" / "manifest.json").is_file()
    assert any((home / ".cache" / "qa" / "onnx").glob("*.onnx"))
    assert sorted(p.relative_to(site) for p in site.rglob("*") if "__pycache__" not in p.parts) == installed
    assert not any(work.iterdir())
