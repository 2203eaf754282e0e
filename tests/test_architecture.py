"""Tests for the floors: import-linter's contracts in pyproject.toml, and modules of a readable size."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
#: No module longer than this many lines.
MAX_MODULE_LINES = 400


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` over the packages under ``root`` with the contracts in its pyproject.toml."""
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from importlinter.cli import lint_imports_command; "
            "lint_imports_command(['--no-cache'])")
    return subprocess.run([sys.executable, "-c", code, str(root)], cwd=root, capture_output=True, text=True,
                          check=False)


def test_imports_only_go_down() -> None:
    done = lint_imports(REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 kept, 0 broken" in done.stdout


@pytest.mark.parametrize(("module", "upward"), [
    ("qa/reader/spans.py", "qa.chat.chatbot"),  # a run-time floor reaching a higher one
    ("qa/index/local.py", "qa.index.build"),    # a circle: the builder imports Index
    ("qa/chat/followup.py", "qa.lab.evaluate"),  # run-time code reaching the lab
    ("qa/lab/report.py", "ui.page"),             # only the CLI may start the web app
    ("ui/format.py", "qa.lab.squad"),            # the web app is run-time code
])
def test_an_import_inside_a_function_that_goes_up_is_caught(tmp_path: Path, module: str, upward: str) -> None:
    for name in ("qa", "ui"):
        skip = shutil.ignore_patterns("reader_model", "__pycache__")
        shutil.copytree(REPO / name, tmp_path / name, ignore=skip)
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    path = tmp_path / module
    path.write_text(path.read_text(encoding="utf-8") + f"\n\ndef _upward() -> None:\n    import {upward}\n",
                    encoding="utf-8")
    done = lint_imports(tmp_path)
    assert done.returncode != 0 and "BROKEN" in done.stdout, done.stdout + done.stderr


def test_no_module_is_over_400_lines() -> None:
    long = {str(p.relative_to(REPO)): n for p in sorted([*REPO.glob("qa/**/*.py"), *REPO.glob("ui/**/*.py")])
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES}
    assert long == {}
