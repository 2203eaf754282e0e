"""The passage index: chunked sources, their vectors and a FAISS index, saved in one folder.

Besides one vector per passage the index keeps one per sentence of each passage, so retrieval can
score a passage by its best-matching sentence as well as by its whole text (``qa.retrieve``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qa.chunk import DEFAULT_MAX_CHARS, DEFAULT_OVERLAP, DEFAULT_SENTENCES, chunk_text, split_sentences
from qa.schema import Passage
from qa.sources import is_url
from qa.vector_cache import VectorCache, text_key

if TYPE_CHECKING:
    import numpy as np

    from qa.embed import Embedder

#: 2: sentence vectors added.
FORMAT_VERSION = 2
#: Up to this many passages the index is exact (flat inner product); above it, HNSW.
EXACT_MAX = 20_000
INDEX_FLAT = "flat-ip"
INDEX_HNSW = "hnsw-ip"
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 100
HNSW_EF_SEARCH = 128
#: Texts per ``Embedder.encode`` call while building: the progress bar's step, and what a killed build
#: loses (each step is saved in ``.NAME.partial`` beside the index and the next build resumes from it).
EMBED_CHUNK = 512
#: Beside the index folder NAME, ``.NAME`` + this holds the vectors of a build not yet written.
PARTIAL_SUFFIX = ".partial"
DEFAULT_CHUNK_SETTINGS = {"sentences": DEFAULT_SENTENCES, "overlap": DEFAULT_OVERLAP,
                          "max_chars": DEFAULT_MAX_CHARS}

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


def normalise_chunk_settings(chunk_settings: dict[str, Any] | None) -> dict[str, int]:
    """The full chunk settings: defaults filled in, unknown keys refused."""
    if chunk_settings is None:
        return dict(DEFAULT_CHUNK_SETTINGS)
    if not isinstance(chunk_settings, dict):
        raise TypeError(f"chunk_settings must be a dict such as {DEFAULT_CHUNK_SETTINGS}, or None")
    unknown = set(chunk_settings) - set(DEFAULT_CHUNK_SETTINGS)
    if unknown:
        raise ValueError(f"unknown chunk settings {sorted(unknown)}; use {sorted(DEFAULT_CHUNK_SETTINGS)}")
    return {**DEFAULT_CHUNK_SETTINGS, **chunk_settings}


def index_type_for(n_passages: int) -> str:
    """The FAISS index type used for this many passages."""
    return INDEX_FLAT if n_passages <= EXACT_MAX else INDEX_HNSW


def make_faiss_index(vectors: np.ndarray, index_type: str) -> Any:
    """A FAISS inner-product index over ``vectors`` (flat, or HNSW for large corpora)."""
    import faiss
    import numpy as np

    dim = int(vectors.shape[1])
    if index_type == INDEX_FLAT:
        index = faiss.IndexFlatIP(dim)
    elif index_type == INDEX_HNSW:
        index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        index.hnsw.efSearch = HNSW_EF_SEARCH
    else:
        raise ValueError(f"unknown index type {index_type!r}; use {INDEX_FLAT!r} or {INDEX_HNSW!r}")
    if len(vectors):
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def chunk_sources(sources: dict[str, str], chunk_settings: dict[str, int]) -> list[Passage]:
    """All passages of all sources, sources in name order."""
    return [p for name in sorted(sources) for p in chunk_text(sources[name], name, **chunk_settings)]


def passage_sentences(passage: Passage) -> list[str]:
    """The sentences of a passage's text (the text itself when it is one sentence)."""
    spans = split_sentences(passage.text)
    if len(spans) <= 1:
        return [passage.text]
    return [passage.text[s:e] for s, e in spans]


def sentence_units(passages: Sequence[Passage]) -> tuple[list[str], np.ndarray]:
    """All passages' sentences in passage order, and where each passage's sentences start (n + 1 rows)."""
    import numpy as np

    texts: list[str] = []
    rows = [0]
    for p in passages:
        texts.extend(passage_sentences(p))
        rows.append(len(texts))
    return texts, np.asarray(rows, dtype=np.int64)


def _check_sources(sources: Any) -> dict[str, str]:
    """Return ``sources`` if it maps names to texts, else raise."""
    if not isinstance(sources, dict) or not sources:
        raise ValueError("sources must be a non-empty {name: text} dict (see qa.sources.collect_sources)")
    for name, text in sources.items():
        if not isinstance(name, str) or not name or not isinstance(text, str):
            raise TypeError(f"sources must map non-empty str names to str texts, got {name!r}")
    return sources


def _manifest(sources: dict[str, str], embedder: Embedder, settings: dict[str, int], n: int) -> dict:
    """The manifest describing an index of these sources, model and settings."""
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
    manifest["inputs"] = [name if is_url(name) else Path(os.path.abspath(name)).as_posix()
                          for name in sorted(sources)]  # files by absolute path, web pages by URL
    return manifest


def _staleness(found: dict, expected: dict) -> str | None:
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
    for key in expected:
        if key != "inputs" and found.get(key) != expected[key]:
            return f"is stale ({key} is {found.get(key)!r}, expected {expected[key]!r})"
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


def _write_files(index: Index, folder: Path) -> None:
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
    sentences, _ = sentence_units(index.passages)
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
        _write_files(index, tmp)
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


class Index:
    """Passages, their unit vectors (and their sentences') and a FAISS inner-product index over them."""

    def __init__(self, *, passages: Sequence[Passage], vectors: np.ndarray, manifest: dict,
                 faiss_index: Any, sentence_vectors: np.ndarray, sentence_rows: np.ndarray) -> None:
        import numpy as np

        if len(passages) != len(vectors) or int(faiss_index.ntotal) != len(passages):
            raise ValueError(f"{len(passages)} passages, {len(vectors)} vectors and "
                             f"{int(faiss_index.ntotal)} indexed vectors must all be equal")
        rows = np.asarray(sentence_rows)
        if rows.shape != (len(passages) + 1,) or (len(rows) and (rows[0] != 0 or (np.diff(rows) < 1).any())):
            raise ValueError("sentence_rows must start at 0 and give each passage at least one sentence "
                             "(see qa.index.sentence_units)")
        if np.ndim(sentence_vectors) != 2 or len(sentence_vectors) != rows[-1] \
                or (len(vectors) and np.shape(sentence_vectors)[1] != np.shape(vectors)[1]):
            raise ValueError(f"sentence_vectors must have shape ({int(rows[-1])}, dim), "
                             f"got {np.shape(sentence_vectors)}")
        self.passages: list[Passage] = list(passages)
        self.vectors = vectors
        self.sentence_vectors = sentence_vectors
        self.sentence_rows = rows
        self.manifest = manifest
        self.faiss = faiss_index
        #: How many passage texts were embedded to make this index (0 when loaded or all cached).
        self.embedded = 0

    def __len__(self) -> int:
        """The number of passages."""
        return len(self.passages)

    @property
    def dim(self) -> int:
        """The vector dimension."""
        return int(self.vectors.shape[1])

    @property
    def index_type(self) -> str:
        """``flat-ip`` (exact) or ``hnsw-ip`` (approximate)."""
        return str(self.manifest.get("index_type", INDEX_FLAT))

    def sentence_similarity(self, rows: Sequence[int], query_vector: np.ndarray) -> np.ndarray:
        """For each passage row, the inner product of ``query_vector`` with its best-matching sentence."""
        import numpy as np

        rows = np.asarray(rows, dtype=np.int64)
        if not len(rows):
            return np.zeros(0, dtype=np.float32)
        starts, ends = self.sentence_rows[rows], self.sentence_rows[rows + 1]
        units = np.concatenate([np.arange(a, b) for a, b in zip(starts, ends, strict=True)])
        sims = self.sentence_vectors[units] @ np.asarray(query_vector, dtype=np.float32)
        return np.maximum.reduceat(sims, np.concatenate([[0], np.cumsum(ends - starts)[:-1]]))

    def search(self, query_vectors: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
        """For each query vector, up to ``k`` ``(passage row, inner product)`` pairs, best first."""
        import faiss
        import numpy as np

        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        q = np.asarray(query_vectors, dtype=np.float32)
        if q.ndim == 1:
            q = q[None, :]
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise ValueError(f"query_vectors must have shape (n, {self.dim}), got {np.shape(query_vectors)}")
        if not len(self.passages) or not len(q):
            return [[] for _ in range(len(q))]
        kk = min(k, len(self.passages))
        q = np.ascontiguousarray(q)
        if self.index_type == INDEX_HNSW:
            params = faiss.SearchParametersHNSW()
            params.efSearch = max(HNSW_EF_SEARCH, kk)
            scores, rows = self.faiss.search(q, kk, params=params)
        else:
            scores, rows = self.faiss.search(q, kk)
        return [[(int(r), float(s)) for r, s in zip(rr, ss, strict=True) if r >= 0]
                for rr, ss in zip(rows, scores, strict=True)]

    @classmethod
    def build(cls, sources: dict[str, str], embedder: Embedder, *, chunk_settings: dict | None = None,
              cache: dict[str, np.ndarray] | None = None, progress: bool = False) -> Index:
        """Chunk and embed ``sources`` in memory (texts found in ``cache`` are not re-embedded)."""
        settings = normalise_chunk_settings(chunk_settings)
        passages = chunk_sources(_check_sources(sources), settings)
        store = VectorCache(None, embedder, shard=EMBED_CHUNK)
        store.vectors.update(cache or {})
        return cls._from_passages(sources, passages, embedder, settings, store, progress)

    @classmethod
    def _from_passages(cls, sources: dict[str, str], passages: list[Passage], embedder: Embedder,
                       settings: dict[str, int], store: VectorCache, progress: bool) -> Index:
        """Embed what ``store`` lacks (saving it there as it goes) and assemble the index."""
        if not passages:
            raise ValueError("the sources hold no text to index")
        sentences, sentence_rows = sentence_units(passages)
        embedded = store.embedded
        both = store.get([p.text for p in passages] + sentences, progress=progress)
        vectors, sentence_vectors = both[:len(passages)], both[len(passages):]
        manifest = _manifest(sources, embedder, settings, len(passages))
        index = cls(passages=passages, vectors=vectors, manifest=manifest,
                    faiss_index=make_faiss_index(vectors, manifest["index_type"]),
                    sentence_vectors=sentence_vectors, sentence_rows=sentence_rows)
        index.embedded = store.embedded - embedded
        return index

    @classmethod
    def load(cls, index_dir: str | Path, *, expected: dict | None = None,
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
            reason = _staleness(manifest, expected)
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
            return cls(passages=found, vectors=vectors, manifest=manifest, faiss_index=fa,
                       sentence_vectors=sentence_vectors, sentence_rows=sentence_rows)
        except ValueError as e:
            raise IndexMismatchError(f"is damaged ({e})") from e

    @staticmethod
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

    @classmethod
    def build_or_load(
        cls,
        sources: dict[str, str],
        index_dir: str | Path,
        embedder: Embedder,
        *,
        chunk_settings: dict | None = None,
        rebuild: bool = False,
        progress: bool = False,
        log: Log | None = None,
    ) -> Index:
        """Load the index in ``index_dir`` if it matches ``sources``; else (re)build and save it."""
        if not isinstance(index_dir, (str, Path)) or not str(index_dir):
            raise TypeError(f"index_dir must be a folder path, got {index_dir!r}")
        if not callable(getattr(embedder, "encode", None)):
            raise TypeError("embedder must be a qa.embed.Embedder (or have encode, name and dim)")
        say = log or _stderr
        settings = normalise_chunk_settings(chunk_settings)
        passages = chunk_sources(_check_sources(sources), settings)
        if not passages:
            raise ValueError("the sources hold no text to index")
        folder = Path(index_dir)
        expected = _manifest(sources, embedder, settings, len(passages))
        if not rebuild:
            found = cls._load_if_current(folder, expected, passages, None)
            if found is not None:
                return found
        with writer_lock(folder, say):  # one writer at a time; a second waits, then looks again
            recover_interrupted_swap(folder, say)
            if rebuild:
                say(f"Rebuilding the index at {folder} (re-embedding everything).")
            else:
                found = cls._load_if_current(folder, expected, passages, say)
                if found is not None:  # recovered, or written by the writer we waited for
                    VectorCache(partial_folder(folder), embedder).remove()
                    return found
            store = VectorCache(partial_folder(folder), embedder, shard=EMBED_CHUNK)
            if rebuild:
                store.remove()
            else:
                store.vectors.update(cls.read_cache(folder, embedder, say))
                resumed = store.load()
                if resumed:
                    say(f"Resuming an interrupted build: {resumed:,} texts were already embedded.")
            try:
                index = cls._from_passages(sources, passages, embedder, settings, store, progress)
            except KeyboardInterrupt:
                if store.embedded:
                    say(f"Interrupted: the {store.embedded:,} texts embedded so far are kept in "
                        f"{store.folder.parent}; the same command resumes from them.")
                raise
            save_atomically(index, folder)
            store.remove()
            return index

    @classmethod
    def _load_if_current(cls, folder: Path, expected: dict, passages: list[Passage],
                         say: Log | None) -> Index | None:
        """The index in ``folder`` if it matches ``expected``; else None (``say`` tells why)."""
        if not (folder.is_dir() and any((folder / name).exists() for name in INDEX_FILES)):
            return None
        try:
            return cls.load(folder, expected=expected, passages=passages)
        except IndexMismatchError as e:
            if say is not None:
                say(f"The index at {folder} {e}; rebuilding it.")
            return None
