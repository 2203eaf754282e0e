"""An index folder on disk: its files and manifest, atomic saves, the writer lock, crash recovery, loading."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qa.index.local import HNSW_EF_CONSTRUCTION, HNSW_M, INDEX_HNSW, Index, index_type_for, vector_units
from qa.index.vector_cache import text_key
from qa.ingest.sources import is_url
from qa.schema import Passage

if TYPE_CHECKING:
    import numpy as np

    from qa.index.embed import Embedder

#: 2: sentence vectors added.
FORMAT_VERSION = 2
#: Beside the index folder NAME, ``.NAME`` + this holds the vectors of a build not yet written.
PARTIAL_SUFFIX = ".partial"
MANIFEST_FILE = "manifest.json"
PASSAGES_FILE = "passages.jsonl"
VECTORS_FILE = "vectors.npy"
FAISS_FILE = "faiss.index"
#: One vector per sentence of each passage, passage by passage.
SENTENCE_VECTORS_FILE = "sentence_vectors.npy"
#: Where each passage's sentences start in ``sentence_vectors.npy`` (int64, one more than passages).
SENTENCE_ROWS_FILE = "sentence_rows.npy"
#: The embedding cache: the SHA-256 of each passage (and sentence) text, row for row with the vectors.
VECTOR_KEYS_FILE = "vector_keys.json"
INDEX_FILES = frozenset({MANIFEST_FILE, PASSAGES_FILE, VECTORS_FILE, FAISS_FILE, VECTOR_KEYS_FILE,
                         SENTENCE_VECTORS_FILE, SENTENCE_ROWS_FILE})
#: Other files (a README) that an index folder may hold; they are carried over on rebuild.
MAX_FOREIGN_FILES = 3

Log = Callable[[str], None]


class IndexMismatchError(RuntimeError):
    """An index folder that is stale (other sources, model or settings) or damaged."""


def _stderr(message: str) -> None:
    """Default log: one line on stderr."""
    print(message, file=sys.stderr, flush=True)


def manifest(sources: dict[str, str], embedder: Embedder, settings: dict[str, int], n: int, *,
             sentences: bool = True) -> dict:
    """The manifest describing an index of these sources, model and settings.

    ``sentences=False`` (an index whose passages stand in for their sentences) is recorded as
    ``"sentences": false``; a full index has no such key.
    """
    manifest: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "embedding": {"model": embedder.name, "dim": int(embedder.dim)},
        "chunk": dict(settings),
        "index_type": index_type_for(n),
        "sources": {name: text_key(sources[name]) for name in sorted(sources)},
        "passages": n,
    }
    if manifest["index_type"] == INDEX_HNSW:
        manifest["hnsw"] = {"M": HNSW_M, "ef_construction": HNSW_EF_CONSTRUCTION}
    if not sentences:
        manifest["sentences"] = False
    manifest["inputs"] = [name if is_url(name) else Path(os.path.abspath(name)).as_posix()
                          for name in sorted(sources)]  # files by absolute path, web pages by URL
    return manifest


def staleness(found: dict, expected: dict) -> str | None:
    """Why an index with manifest ``found`` does not fit ``expected``, or None when it does."""
    if found.get("format_version") != expected["format_version"]:
        return f"was written in format {found.get('format_version')!r}, not {FORMAT_VERSION}"
    if found.get("embedding") != expected["embedding"]:
        return f"was embedded with {found.get('embedding')}, not {expected['embedding']}"
    if found.get("chunk") != expected["chunk"]:
        return f"was chunked with {found.get('chunk')}, not {expected['chunk']}"
    old, new = found.get("sources"), expected["sources"]
    if not isinstance(old, dict):
        return "has no source list"
    if old != new:
        parts = []
        for label, names in (("added", sorted(set(new) - set(old))), ("removed", sorted(set(old) - set(new))),
                             ("changed", sorted(n for n in set(old) & set(new) if old[n] != new[n]))):
            if names:
                shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
                parts.append(f"{label} {shown}")
        return "is stale (sources " + "; ".join(parts) + ")"
    for key in sorted(set(expected) | set(found)):
        if key != "inputs" and found.get(key) != expected.get(key):
            return f"is stale ({key} is {found.get(key)!r}, expected {expected.get(key)!r})"
    return None


def _read_passages(path: Path) -> list[Passage]:
    """Passages from a JSON-lines file."""
    passages = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if not isinstance(row, dict) or set(row) != {"id", "source", "start", "end", "text"}:
                raise ValueError(f"{path.name}: unexpected record")
            passages.append(Passage(**row))
    return passages


def _fsync(path: Path) -> None:
    """Flush a written file to disk."""
    with path.open("rb+") as f:
        os.fsync(f.fileno())


def write_files(index: Index, folder: Path) -> None:
    """Write an index's files into ``folder`` (an empty temporary folder)."""
    import faiss
    import numpy as np

    with (folder / PASSAGES_FILE).open("w", encoding="utf-8") as f:
        for p in index.passages:
            f.write(json.dumps({"id": p.id, "source": p.source, "start": p.start, "end": p.end,
                                "text": p.text}) + "\n")
    np.save(folder / VECTORS_FILE, np.ascontiguousarray(index.vectors, dtype=np.float32), allow_pickle=False)
    np.save(folder / SENTENCE_VECTORS_FILE,
            np.ascontiguousarray(index.sentence_vectors, dtype=np.float32), allow_pickle=False)
    np.save(folder / SENTENCE_ROWS_FILE, np.asarray(index.sentence_rows, dtype=np.int64), allow_pickle=False)
    sentences, _ = vector_units(index.passages, sentences=index.manifest.get("sentences", True))
    keys = {"model": index.manifest["embedding"]["model"], "dim": index.manifest["embedding"]["dim"],
            "keys": [text_key(p.text) for p in index.passages],
            "sentence_keys": [text_key(t) for t in sentences]}
    (folder / VECTOR_KEYS_FILE).write_text(json.dumps(keys), encoding="utf-8")
    faiss.write_index(index.faiss, str(folder / FAISS_FILE))
    (folder / MANIFEST_FILE).write_text(json.dumps(index.manifest, indent=2), encoding="utf-8")
    for name in INDEX_FILES:
        _fsync(folder / name)


def _foreign_entries(folder: Path) -> list[Path]:
    """Entries of an existing index folder that the index did not write."""
    return sorted(p for p in folder.iterdir() if p.name not in INDEX_FILES)


def _check_index_dir(folder: Path) -> None:
    """Refuse index folders whose replacement could destroy unrelated files."""
    cwd = Path.cwd()
    if folder == cwd or folder in cwd.parents:
        raise ValueError(f"{folder}: the index folder cannot be the working folder or one above it; "
                         "pass a dedicated folder such as index/")
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder}: exists and is not a folder; pass a folder path for the index")
    if folder.is_dir():
        foreign = _foreign_entries(folder)
        if len(foreign) > MAX_FOREIGN_FILES or any(not p.is_file() for p in foreign):
            shown = ", ".join(p.name for p in foreign[:5])
            raise ValueError(f"{folder}: holds files that are not an index ({shown}); "
                             "pass an empty or new folder for the index")


@contextlib.contextmanager
def writer_lock(index_dir: str | Path, log: Log | None = None) -> Iterator[None]:
    """Hold the index folder's writer lock (``.NAME.lock`` beside it); wait, saying so, while it is held."""
    folder = Path(os.path.abspath(index_dir))
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no advisory locks, writes stay atomic
        yield
        return
    with open(folder.parent / f".{folder.name}.lock", "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            (log or _stderr)(f"Waiting for another qa process that is writing the index at {folder}…")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def recover_interrupted_swap(index_dir: str | Path, log: Log | None = None) -> bool:
    """Finish or undo a swap that a crash interrupted; return True when a folder was put back.

    ``save_atomically`` renames the index to ``.NAME.old-*`` and then the finished ``.NAME.tmp-*`` to
    NAME. Killed between the two renames, it leaves no NAME: the newest complete ``tmp`` (all index
    files present) becomes NAME, else the ``old`` one goes back, and the other leftovers are removed.
    Leftover ``old`` folders beside an existing NAME are removed too. Call it holding ``writer_lock``.
    """
    folder = Path(os.path.abspath(index_dir))
    if not folder.parent.is_dir():
        return False
    olds = sorted(folder.parent.glob(f".{folder.name}.old-*"), key=lambda p: p.stat().st_mtime)
    if folder.exists():
        for old in olds:
            shutil.rmtree(old, ignore_errors=True)
        return False
    tmps = [t for t in folder.parent.glob(f".{folder.name}.tmp-*") if t.is_dir()]
    finished = [t for t in tmps if all((t / name).is_file() for name in INDEX_FILES)]
    candidates = sorted(finished, key=lambda p: p.stat().st_mtime) or olds
    if not candidates:
        return False
    os.rename(candidates[-1], folder)
    (log or _stderr)(f"Recovered the index at {folder} from an interrupted write ({candidates[-1].name}).")
    for leftover in (*olds, *tmps):
        if leftover.exists():
            shutil.rmtree(leftover, ignore_errors=True)
    return True


def partial_folder(index_dir: str | Path) -> Path:
    """Where a build of ``index_dir`` keeps its vectors until the index is written (``.NAME.partial``)."""
    folder = Path(os.path.abspath(index_dir))
    return folder.parent / f".{folder.name}{PARTIAL_SUFFIX}"


def save_atomically(index: Index, index_dir: str | Path) -> None:
    """Write ``index`` into a temporary sibling folder, then swap it in place of ``index_dir``."""
    folder = Path(os.path.abspath(index_dir))
    _check_index_dir(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    try:
        write_files(index, tmp)
        if folder.is_dir():
            for extra in _foreign_entries(folder):
                shutil.copy2(extra, tmp / extra.name)
            old = folder.parent / f".{folder.name}.old-{uuid.uuid4().hex[:8]}"
            os.rename(folder, old)
            try:
                os.rename(tmp, folder)
            except BaseException:
                os.rename(old, folder)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def load(index_dir: str | Path, *, expected: dict | None = None,
         passages: list[Passage] | None = None) -> Index:
    """Load an index folder; raise IndexMismatchError when it is damaged or not as expected."""
    import faiss
    import numpy as np

    folder = Path(index_dir)
    try:
        manifest = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise IndexMismatchError(f"has no {MANIFEST_FILE}") from e
    except OSError as e:
        raise IndexMismatchError(f"cannot be read ({MANIFEST_FILE}: {e.strerror or e})") from e
    except ValueError as e:
        raise IndexMismatchError(f"is damaged ({MANIFEST_FILE} is not valid JSON)") from e
    if not isinstance(manifest, dict):
        raise IndexMismatchError(f"is damaged ({MANIFEST_FILE} is not a JSON object)")
    if expected is not None:
        reason = staleness(manifest, expected)
        if reason:
            raise IndexMismatchError(reason)
    try:
        found = _read_passages(folder / PASSAGES_FILE)
        vectors = np.load(folder / VECTORS_FILE, allow_pickle=False)
        sentence_vectors = np.load(folder / SENTENCE_VECTORS_FILE, allow_pickle=False)
        sentence_rows = np.load(folder / SENTENCE_ROWS_FILE, allow_pickle=False)
        fa = faiss.read_index(str(folder / FAISS_FILE))
    except FileNotFoundError as e:
        raise IndexMismatchError(f"is damaged ({Path(e.filename or '?').name} is missing)") from e
    except (OSError, ValueError, RuntimeError, EOFError, TypeError) as e:
        raise IndexMismatchError(f"is damaged ({type(e).__name__}: {str(e)[:120]})") from e
    n = manifest.get("passages")
    dim = (manifest.get("embedding") or {}).get("dim")
    if passages is not None and found != passages:
        raise IndexMismatchError(f"is damaged ({PASSAGES_FILE} does not match the sources)")
    if vectors.dtype != np.float32 or vectors.shape != (n, dim) or len(found) != n:
        raise IndexMismatchError(f"is damaged ({VECTORS_FILE} has shape {vectors.shape}, "
                                 f"{len(found)} passages, manifest says {n} x {dim})")
    if not np.isfinite(vectors).all():
        raise IndexMismatchError(f"is damaged ({VECTORS_FILE} holds non-finite values)")
    if int(fa.ntotal) != n or int(fa.d) != dim or fa.metric_type != faiss.METRIC_INNER_PRODUCT:
        raise IndexMismatchError(f"is damaged ({FAISS_FILE} does not match the vectors)")
    if sentence_rows.dtype != np.int64 or sentence_vectors.dtype != np.float32 \
            or not np.isfinite(sentence_vectors).all():
        raise IndexMismatchError(f"is damaged ({SENTENCE_VECTORS_FILE} or {SENTENCE_ROWS_FILE} "
                                 "does not match the passages)")
    try:  # the constructor checks their shapes against the passages
        return Index(passages=found, vectors=vectors, manifest=manifest, faiss_index=fa,
                   sentence_vectors=sentence_vectors, sentence_rows=sentence_rows)
    except ValueError as e:
        raise IndexMismatchError(f"is damaged ({e})") from e


def read_cache(index_dir: str | Path, embedder: Embedder,
               log: Log | None = None) -> dict[str, np.ndarray]:
    """The cached vectors of an index folder, by passage-text SHA-256 ({} when unusable).

    No cache, or one of another model, is silent; a damaged or unreadable one is said (``log``),
    since everything is then embedded again.
    """
    import numpy as np

    folder = Path(index_dir)
    if not (folder / VECTOR_KEYS_FILE).exists():
        return {}
    try:
        meta = json.loads((folder / VECTOR_KEYS_FILE).read_text(encoding="utf-8"))
        if meta.get("model") != embedder.name or meta.get("dim") != embedder.dim:
            return {}
        parts = [(meta["keys"], np.load(folder / VECTORS_FILE, allow_pickle=False))]
        if "sentence_keys" in meta:
            parts.append((meta["sentence_keys"],
                          np.load(folder / SENTENCE_VECTORS_FILE, allow_pickle=False)))
    except (OSError, ValueError, KeyError, TypeError, AttributeError, EOFError) as e:
        why = e.strerror if isinstance(e, OSError) and e.strerror else type(e).__name__
        (log or _stderr)(f"The embedding cache in {folder} is unusable ({VECTOR_KEYS_FILE} or the "
                         f"vectors: {why}); embedding everything again, then writing a fresh one.")
        return {}
    cache: dict[str, np.ndarray] = {}
    for keys, vectors in parts:
        if not isinstance(keys, list) or vectors.dtype != np.float32 \
                or vectors.shape != (len(keys), embedder.dim) or not np.isfinite(vectors).all():
            continue
        cache.update((k, v) for k, v in zip(keys, vectors, strict=True) if isinstance(k, str))
    return cache
