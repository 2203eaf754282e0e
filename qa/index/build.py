"""Building an index: chunk the sources, embed what no cache holds, make the FAISS index, save it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qa.index import store as index_store
from qa.index.local import Index, make_faiss_index, vector_units
from qa.index.vector_cache import VectorCache
from qa.ingest.chunk import DEFAULT_MAX_CHARS, DEFAULT_OVERLAP, DEFAULT_SENTENCES, chunk_text
from qa.schema import Passage

if TYPE_CHECKING:
    import numpy as np

    from qa.index.embed import Embedder

#: Texts per ``Embedder.encode`` call while building: the progress bar's step, and what a killed build
#: loses (each step is saved in ``.NAME.partial`` beside the index and the next build resumes from it).
EMBED_CHUNK = 512
DEFAULT_CHUNK_SETTINGS = {"sentences": DEFAULT_SENTENCES, "overlap": DEFAULT_OVERLAP,
                          "max_chars": DEFAULT_MAX_CHARS}

Log = Callable[[str], None]


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


def chunk_sources(sources: dict[str, str], chunk_settings: dict[str, int]) -> list[Passage]:
    """All passages of all sources, sources in name order."""
    return [p for name in sorted(sources) for p in chunk_text(sources[name], name, **chunk_settings)]


def check_sources(sources: Any) -> dict[str, str]:
    """Return ``sources`` if it maps names to texts, else raise."""
    if not isinstance(sources, dict) or not sources:
        raise ValueError("sources must be a non-empty {name: text} dict "
                         "(see qa.ingest.sources.collect_sources)")
    for name, text in sources.items():
        if not isinstance(name, str) or not name or not isinstance(text, str):
            raise TypeError(f"sources must map non-empty str names to str texts, got {name!r}")
    return sources


def build(sources: dict[str, str], embedder: Embedder, *, chunk_settings: dict | None = None,
          cache: dict[str, np.ndarray] | None = None, progress: bool = False) -> Index:
    """Chunk and embed ``sources`` in memory (texts found in ``cache`` are not re-embedded)."""
    settings = normalise_chunk_settings(chunk_settings)
    passages = chunk_sources(check_sources(sources), settings)
    store = VectorCache(None, embedder, shard=EMBED_CHUNK)
    store.vectors.update(cache or {})
    return from_passages(sources, passages, embedder, settings, store, progress)


def from_passages(sources: dict[str, str], passages: list[Passage], embedder: Embedder,
                  settings: dict[str, int], store: VectorCache, progress: bool, *,
                  sentences: bool = True) -> Index:
    """Embed what ``store`` lacks (saving it there as it goes) and assemble the index.

    ``sentences=False``: the passages stand in for their sentences (nothing but the passages embedded).
    """
    if not passages:
        raise ValueError("the sources hold no text to index")
    units, sentence_rows = vector_units(passages, sentences=sentences)
    embedded = store.embedded
    both = store.get([p.text for p in passages] + units, progress=progress)
    vectors, sentence_vectors = both[:len(passages)], both[len(passages):]
    manifest = index_store.manifest(sources, embedder, settings, len(passages), sentences=sentences)
    index = Index(passages=passages, vectors=vectors, manifest=manifest,
                faiss_index=make_faiss_index(vectors, manifest["index_type"]),
                sentence_vectors=sentence_vectors, sentence_rows=sentence_rows)
    index.embedded = store.embedded - embedded
    return index


def build_or_load(
    sources: dict[str, str],
    index_dir: str | Path,
    embedder: Embedder,
    *,
    chunk_settings: dict | None = None,
    rebuild: bool = False,
    progress: bool = False,
    log: Log | None = None,
    sentences: bool = True,
) -> Index:
    """Load the index in ``index_dir`` if it matches ``sources``; else (re)build and save it.

    ``sentences=False`` builds without sentence vectors (about half the embedding): quick to make,
    retrieval then scores passages by their own vector only.
    """
    if not isinstance(index_dir, (str, Path)) or not str(index_dir):
        raise TypeError(f"index_dir must be a folder path, got {index_dir!r}")
    if not callable(getattr(embedder, "encode", None)):
        raise TypeError("embedder must be a qa.index.embed.Embedder (or have encode, name and dim)")
    say = log or index_store._stderr
    settings = normalise_chunk_settings(chunk_settings)
    passages = chunk_sources(check_sources(sources), settings)
    if not passages:
        raise ValueError("the sources hold no text to index")
    folder = Path(index_dir)
    expected = index_store.manifest(sources, embedder, settings, len(passages), sentences=sentences)
    if not rebuild:
        found = load_if_current(folder, expected, passages, None)
        if found is not None:
            return found
    with index_store.writer_lock(folder, say):  # one writer at a time; a second waits, then looks again
        index_store.recover_interrupted_swap(folder, say)
        if rebuild:
            say(f"Rebuilding the index at {folder} (re-embedding everything).")
        else:
            found = load_if_current(folder, expected, passages, say)
            if found is not None:  # recovered, or written by the writer we waited for
                VectorCache(index_store.partial_folder(folder), embedder).remove()
                return found
        store = VectorCache(index_store.partial_folder(folder), embedder, shard=EMBED_CHUNK)
        if rebuild:
            store.remove()
        else:
            store.vectors.update(index_store.read_cache(folder, embedder, say))
            resumed = store.load()
            if resumed:
                say(f"Resuming an interrupted build: {resumed:,} texts were already embedded.")
        try:
            index = from_passages(sources, passages, embedder, settings, store, progress, sentences=sentences)
        except KeyboardInterrupt:
            if store.embedded:
                say(f"Interrupted: the {store.embedded:,} texts embedded so far are kept in "
                    f"{store.folder.parent}; the same command resumes from them.")
            raise
        index_store.save_atomically(index, folder)
        store.remove()
        return index


def load_if_current(folder: Path, expected: dict, passages: list[Passage],
                     say: Log | None) -> Index | None:
    """The index in ``folder`` if it matches ``expected``; else None (``say`` tells why)."""
    if not (folder.is_dir() and any((folder / name).exists() for name in index_store.INDEX_FILES)):
        return None
    try:
        return index_store.load(folder, expected=expected, passages=passages)
    except index_store.IndexMismatchError as e:
        if say is not None:
            say(f"The index at {folder} {e}; rebuilding it.")
        return None
