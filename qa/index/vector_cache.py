"""Embedded vectors kept on disk by text SHA-256, in shards, so an interrupted embedding run resumes.

``qa index`` keeps one beside an index it is building (``.NAME.partial``, removed once the index is
written); ``qa bench`` keeps one for its corpora (``build/bench-cache``).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from qa.index.embed import Embedder

#: Texts embedded between two shard writes: an interrupted run loses at most this many.
DEFAULT_SHARD = 2048


def text_key(text: str) -> str:
    """The SHA-256 hex digest of a text (the embedding cache key, the source fingerprint)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class VectorCache:
    """Embedded vectors on disk by text SHA-256, written in shards (``.npy`` + keys ``.json``).

    ``folder`` None keeps them in memory only.
    """

    def __init__(self, folder: Path | None, embedder: Embedder, *, shard: int = DEFAULT_SHARD,
                 desc: str = "Embedding") -> None:
        if not isinstance(shard, int) or isinstance(shard, bool) or shard < 1:
            raise ValueError(f"shard must be a positive int, got {shard!r}")
        slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in embedder.name)[-80:]
        self.folder = Path(folder) / slug if folder is not None else None
        self.embedder = embedder
        self.shard = shard
        self.desc = desc
        self.vectors: dict[str, np.ndarray] = {}
        #: Texts embedded by this object, and the seconds it took.
        self.embedded = 0
        self.embed_seconds = 0.0

    def load(self) -> int:
        """Read every shard whose keys and vectors agree; return how many vectors were read."""
        import numpy as np

        if self.folder is None or not self.folder.is_dir():
            return 0
        before = len(self.vectors)
        for keys_file in sorted(self.folder.glob("shard-*.json")):
            try:
                keys = json.loads(keys_file.read_text(encoding="utf-8"))
                vecs = np.load(keys_file.with_suffix(".npy"), allow_pickle=False)
            except (OSError, ValueError, EOFError):
                continue
            if isinstance(keys, list) and vecs.shape == (len(keys), self.embedder.dim) \
                    and vecs.dtype == np.float32 and np.isfinite(vecs).all():
                self.vectors.update(zip(keys, vecs, strict=True))
        return len(self.vectors) - before

    def _save_shard(self, keys: list[str], vecs: np.ndarray) -> None:
        """Write one shard (vectors first, keys last, each by atomic rename)."""
        import numpy as np

        if self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        stem = f"shard-{time.time_ns()}"
        tmp = self.folder / f".{stem}.npy"
        with tmp.open("wb") as f:
            np.save(f, vecs, allow_pickle=False)
        tmp.replace(self.folder / f"{stem}.npy")
        tmp = self.folder / f".{stem}.json"
        tmp.write_text(json.dumps(keys), encoding="utf-8")
        tmp.replace(self.folder / f"{stem}.json")

    def add(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        """Cache vectors embedded elsewhere."""
        pairs = zip((text_key(t) for t in texts), vectors, strict=True)
        new = [(k, v) for k, v in pairs if k not in self.vectors]
        if new:
            import numpy as np

            self.vectors.update(new)
            self._save_shard([k for k, _ in new], np.stack([v for _, v in new]).astype(np.float32))

    def get(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        """Vectors for ``texts``, embedding (and saving, shard by shard) those not cached yet."""
        import numpy as np
        from tqdm import tqdm

        dim = int(self.embedder.dim)
        keys = [text_key(t) for t in texts]
        todo: dict[str, str] = {}
        for k, t in zip(keys, texts, strict=True):
            if k not in self.vectors and k not in todo:
                todo[k] = t
        items = list(todo.items())
        interval = 0.5 if sys.stderr.isatty() else 30.0  # a log file gets a line every 30 s, not a flood
        with tqdm(total=len(items), desc=self.desc, unit="text", file=sys.stderr, mininterval=interval,
                  disable=not progress or not items) as bar:
            for i in range(0, len(items), self.shard):
                batch = items[i:i + self.shard]
                t0 = time.perf_counter()
                vecs = np.asarray(self.embedder.encode([t for _, t in batch]), dtype=np.float32)
                self.embed_seconds += time.perf_counter() - t0
                if vecs.shape != (len(batch), dim):
                    raise RuntimeError(f"the embedder returned shape {vecs.shape}, "
                                       f"expected {(len(batch), dim)}")
                self.embedded += len(batch)
                self.vectors.update(zip((k for k, _ in batch), vecs, strict=True))
                self._save_shard([k for k, _ in batch], vecs)
                bar.update(len(batch))
        if not keys:
            return np.zeros((0, dim), dtype=np.float32)
        return np.stack([self.vectors[k] for k in keys]).astype(np.float32, copy=False)

    def remove(self) -> None:
        """Delete the shards on disk (the vectors in memory stay)."""
        if self.folder is None:
            return
        shutil.rmtree(self.folder, ignore_errors=True)
        parent = self.folder.parent
        if parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
