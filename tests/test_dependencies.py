"""Tests for qa.extras and pyproject.toml: every module that qa and ui import is declared, extras say so."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

import pytest
import tomllib

from qa import cli, extras

REPO = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
#: Distributions that qa needs through a library rather than by importing them itself.
NEEDED_THROUGH_A_LIBRARY = {"onnx": "torch.onnx.export (qa/ort.py) writes the ONNX file with it"}


def _name(requirement: str) -> str:
    """A requirement's distribution name, normalised as PEP 503 does."""
    return re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9_.-]+", requirement).group()).lower()


def _imports(*folders: str) -> dict[str, list[tuple[str, bool]]]:
    """Top-level third-party module -> (file, at module level?) for every import in the folders' files."""
    found: dict[str, list[tuple[str, bool]]] = {}
    for path in sorted(p for folder in folders or ("qa", "ui") for p in REPO.joinpath(folder).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top = {id(n) for n in tree.body}
        guarded = {id(n) for n in ast.walk(tree) if isinstance(n, ast.If)  # `if TYPE_CHECKING:` blocks
                   for n in ast.walk(n) if isinstance(n, ast.Import | ast.ImportFrom)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                root = name.split(".")[0]
                if root in sys.stdlib_module_names or root in ("qa", "ui", "__future__"):
                    continue
                at_top = id(node) in top and id(node) not in guarded
                found.setdefault(root, []).append((str(path.relative_to(REPO)), at_top))
    return found


def test_every_imported_module_comes_from_a_declared_distribution() -> None:
    runtime = {_name(r) for r in PROJECT["dependencies"]}
    optional = {extra: {_name(r) for r in reqs} for extra, reqs in PROJECT["optional-dependencies"].items()}
    providers = importlib.metadata.packages_distributions()
    problems = []
    for module, places in sorted(_imports().items()):
        dists = {_name(d) for d in providers.get(module, [])}
        if not dists:
            problems.append(f"{module} (imported by {places[0][0]}) is not installed, so nothing maps it")
        elif module in extras.EXTRA_MODULES:
            extra = extras.EXTRA_MODULES[module][0]
            if not dists & optional.get(extra, set()):
                problems.append(f"{module} ({', '.join(sorted(dists))}) is missing from the '{extra}' extra")
            if not dists & optional["dev"]:
                problems.append(f"{module} ({', '.join(sorted(dists))}) is missing from the 'dev' extra")
        elif not dists & runtime:
            problems.append(f"{module} ({', '.join(sorted(dists))}), imported by {places[0][0]}, is missing "
                            f"from [project.dependencies]")
    for dist, why in NEEDED_THROUGH_A_LIBRARY.items():
        if dist not in runtime:
            problems.append(f"{dist} is missing from [project.dependencies]: {why}")
    assert not problems, "\n".join(problems)


def test_the_checks_in_scripts_need_nothing_beyond_the_dev_extras() -> None:
    declared = {_name(r) for r in [*PROJECT["dependencies"], *PROJECT["optional-dependencies"]["dev"]]}
    providers = importlib.metadata.packages_distributions()
    scripts = {path.stem for path in (REPO / "scripts").glob("*.py")}  # one script may use another
    missing = [f"{module} ({places[0][0]})" for module, places in sorted(_imports("scripts").items())
               if module not in scripts and not {_name(d) for d in providers.get(module, [])} & declared]
    assert missing == []


def test_an_extras_module_is_only_imported_inside_the_functions_that_need_it() -> None:
    at_top = [f"{file} imports {module} at module level" for module, places in _imports().items()
              if module in extras.EXTRA_MODULES for file, top in places if top]
    assert not at_top, "\n".join(at_top)


def test_every_requirement_has_a_tested_lower_bound() -> None:
    extra = [r for reqs in PROJECT["optional-dependencies"].values() for r in reqs]
    requirements = [*PROJECT["dependencies"], *extra]
    assert [r for r in requirements if not re.search(r"(>=|==)\s*\d", r)] == []


def test_the_guard_sees_imports_inside_functions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "qa").mkdir()
    (tmp_path / "ui").mkdir()
    (tmp_path / "qa" / "late.py").write_text("import json\n\ndef f():\n    import not_declared_anywhere\n")
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    assert _imports() == {"not_declared_anywhere": [("qa/late.py", False)]}


def test_a_command_that_needs_a_missing_extra_says_which_in_one_line(monkeypatch: pytest.MonkeyPatch,
                                                                      capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setitem(sys.modules, "haystack", None)  # as if it were not installed
    assert cli.main(["compare-readers"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "qa compare-readers: error:" in err and "pip install 'qa[compare]'" in err
    monkeypatch.setitem(sys.modules, "psycopg", None)
    for argv in (["ask", "Who?", "--database", "postgresql://nobody@127.0.0.1/none"],
                 ["bench", "--recall", "--database", "postgresql://nobody@127.0.0.1/none"]):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "pip install 'qa[postgres]'" in err, err


def test_the_python_api_names_the_postgres_extra_too(monkeypatch: pytest.MonkeyPatch) -> None:
    from qa.index.pgstore import DatabaseError, PgIndex

    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(DatabaseError, match=r"pip install 'qa\[postgres\]'"):
        PgIndex(url="postgresql://nobody@127.0.0.1/none").connect()


def test_a_module_qa_cannot_import_is_a_clear_error_not_a_traceback(monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(cli, "run", lambda args: __import__("a_module_nobody_installed"))
    assert cli.main(["ask", "Who?"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("qa ask: error: a_module_nobody_installed cannot be imported")
    assert err.count("\n") == 1


def test_require_refuses_a_module_that_is_not_optional() -> None:
    with pytest.raises(ValueError, match="EXTRA_MODULES"):
        extras.require("numpy")
