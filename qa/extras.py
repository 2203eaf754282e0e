"""Optional parts of ``qa``: which extra of the package brings a module, and a one-line message when missing.

``pip install qa`` installs what answering needs; a command that needs more (``--database``,
``qa compare-readers``) imports it inside the function that uses it, and a missing one becomes
:class:`MissingExtra`, which says what to install instead of ending in a traceback.
``tests/test_dependencies.py`` checks this table against ``pyproject.toml``.
"""

from __future__ import annotations

#: Top-level modules that only an extra installs, with that extra and what needs it.
EXTRA_MODULES: dict[str, tuple[str, str]] = {
    "psycopg": ("postgres", "the PostgreSQL index (--database)"),
    "pgvector": ("postgres", "the PostgreSQL index (--database)"),
    "haystack": ("compare", "qa compare-readers"),
    "haystack_integrations": ("compare", "qa compare-readers"),
    "sacrebleu": ("eval", "qa eval on a follow-up rewrites file"),
}


class MissingExtra(RuntimeError):
    """A module of an optional extra is not installed; the message says which extra to install."""


def missing_extra(error: ImportError) -> MissingExtra | None:
    """The :class:`MissingExtra` that ``error`` stands for, or None when it is not about an extra's module."""
    name = (getattr(error, "name", None) or "").split(".")[0]
    if name not in EXTRA_MODULES:
        return None
    extra, needed_by = EXTRA_MODULES[name]
    return MissingExtra(f"{needed_by} needs the '{extra}' extra ({name} is not installed): "
                        f"pip install 'qa[{extra}]' (in a checkout: pip install -e '.[{extra}]')")


def require(*modules: str) -> None:
    """Raise :class:`MissingExtra` for the first of ``modules`` (keys of ``EXTRA_MODULES``) not installed."""
    import importlib.util

    for name in modules:
        if name not in EXTRA_MODULES:
            raise ValueError(f"{name!r} is not an optional module; add it to EXTRA_MODULES with its extra")
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise missing_extra(ModuleNotFoundError(f"No module named {name!r}", name=name))
