"""ONNX Runtime sessions for the reader and the embedder: each model exported once, cached, then run.

ONNX Runtime is the standard CPU inference engine. Importing it and opening a session takes about
0.3 s, where importing torch takes 2 s and transformers 7 s, so answering imports neither. A model
folder (``save_pretrained`` layout, weights in safetensors) is exported to ONNX by ``torch.onnx`` on
first use (about 12 s, the only step that imports torch and transformers) into the per-user cache
(``QA_CACHE_DIR`` or platformdirs' cache folder), keyed by the folder's files; ``precision="int8"``
adds ONNX Runtime's dynamic int8 quantisation of that export. On this project's 2-core AVX2 machine
float32 is the fastest at full accuracy (``qa compare-readers`` prints both rows).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

CACHE_ENV = "QA_CACHE_DIR"
#: Intra-op threads per session; unset or 0 is one per core (``qa bench --threads`` sets it).
THREADS_ENV = "QA_THREADS"
#: Exported graphs: "qa" gives start and end logits, "encoder" the last hidden states.
HEADS = ("qa", "encoder")
PRECISIONS = ("float32", "int8")
WEIGHT_FILES = ("model.safetensors",)
TOKENIZER_FILE = "tokenizer.json"
OPSET = 17
#: Inputs of an exported graph, in the order ``Session.run`` takes them.
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def cache_dir() -> Path:
    """Where exported models are kept: ``QA_CACHE_DIR``, else the per-user cache folder."""
    configured = os.environ.get(CACHE_ENV, "").strip()
    if configured:
        return Path(configured).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("qa", appauthor=False))


def supports(folder: str | Path) -> bool:
    """True when ``folder`` is a local model this engine can export: config, safetensors, tokenizer.json."""
    folder = Path(folder)
    return ((folder / "config.json").is_file() and (folder / TOKENIZER_FILE).is_file()
            and any((folder / name).is_file() for name in WEIGHT_FILES))


def cache_key(folder: Path, head: str, precision: str) -> str:
    """A name for the export of ``folder``: changes whenever its config or weights change."""
    h = hashlib.sha256(f"{head}|{precision}|opset{OPSET}".encode())
    for name in ("config.json", *WEIGHT_FILES):
        path = folder / name
        if path.is_file():
            st = path.stat()
            h.update(f"|{name}|{st.st_size}|{st.st_mtime_ns}".encode())
    h.update((folder / "config.json").read_bytes())
    return f"{folder.name}-{head}-{precision}-{h.hexdigest()[:16]}.onnx"


def export(folder: Path, out: Path, head: str) -> None:
    """Export the model in ``folder`` with ``torch.onnx`` (imports torch and transformers: seconds)."""
    import torch
    from transformers import AutoConfig, AutoModel, AutoModelForQuestionAnswering
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    config = AutoConfig.from_pretrained(str(folder))
    cls = AutoModelForQuestionAnswering if head == "qa" else AutoModel
    model = cls.from_pretrained(str(folder), dtype=torch.float32).eval()
    names = list(INPUTS if getattr(config, "type_vocab_size", 0) else INPUTS[:2])

    class Graph(torch.nn.Module):
        """The model as a function of its input tensors, returning plain tensors."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: Any) -> Any:
            out = self.model(**dict(zip(names, inputs, strict=True)))
            return (out.start_logits, out.end_logits) if head == "qa" else out.last_hidden_state

    outputs = ["start_logits", "end_logits"] if head == "qa" else ["last_hidden_state"]
    example = tuple(torch.ones((1, 8), dtype=torch.long) for _ in names)
    axes = {n: {0: "batch", 1: "tokens"} for n in names + outputs}
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")
        torch.onnx.export(Graph(), example, str(out), input_names=names, output_names=outputs,
                          dynamic_axes=axes, opset_version=OPSET, dynamo=False)


def quantize(source: Path, out: Path) -> None:
    """ONNX Runtime's dynamic int8: weights per output channel, activations per tensor at run time."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(source), str(out), weight_type=QuantType.QInt8, per_channel=True,
                     op_types_to_quantize=["MatMul"])


def exported(folder: str | Path, head: str, precision: str = "float32", *,
             log: Callable[[str], None] | None = None) -> Path:
    """The cached ONNX file for ``folder``, exporting (and quantising) it first when missing."""
    if head not in HEADS:
        raise ValueError(f"head must be one of {', '.join(HEADS)}, got {head!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    folder = Path(folder).expanduser().resolve()
    if not supports(folder):
        raise ValueError(f"{folder} cannot be run by ONNX Runtime: it needs config.json, model.safetensors "
                         f"and tokenizer.json (use backend='transformers' for other models)")
    target = cache_dir() / "onnx" / cache_key(folder, head, precision)
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    if log is not None:
        log(f"Preparing {folder.name} for ONNX Runtime (once; it is cached in {target.parent})…")
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".export-") as tmp:
        fresh = Path(tmp) / "model.onnx"
        try:
            if precision == "float32":
                export(folder, fresh, head)
            else:
                quantize(exported(folder, head, "float32", log=None), fresh)
        except Exception as e:
            raise ValueError(f"could not export {folder} to ONNX ({type(e).__name__}: {e}); "
                             f"use backend='transformers' for this model") from e
        os.replace(fresh, target)  # atomic: a reader never sees half a file
    return target


def threads() -> int:
    """Intra-op threads from ``QA_THREADS`` (0: one per core)."""
    try:
        return max(0, int(os.environ.get(THREADS_ENV, "0") or 0))
    except ValueError:
        return 0


class Session:
    """One ONNX Runtime session over an exported graph: int64 inputs in, float32 arrays out."""

    def __init__(self, path: str | Path) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads()
        # idle threads sleep instead of spinning: the app's other threads (HTTP, retrieval) need the cores
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]

    @property
    def uses_token_types(self) -> bool:
        """True when the graph takes ``token_type_ids``."""
        return "token_type_ids" in self.inputs

    def run(self, ids: np.ndarray, mask: np.ndarray, types: np.ndarray | None = None) -> list[np.ndarray]:
        """The graph's outputs for int64 arrays of shape (rows, tokens)."""
        given = {"input_ids": ids, "attention_mask": mask,
                 "token_type_ids": types if types is not None else np.zeros_like(ids)}
        return self.session.run(None, {n: given[n] for n in self.inputs})


def load_tokenizer(folder: str | Path) -> Any:
    """The folder's ``tokenizer.json`` as a ``tokenizers.Tokenizer`` with padding and truncation off."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(Path(folder) / TOKENIZER_FILE))
    tok.no_padding()
    tok.no_truncation()
    return tok


def max_positions(folder: str | Path) -> int:
    """The model's position limit from ``config.json`` (512 when it does not say)."""
    try:
        config = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
        return int(config.get("max_position_embeddings", 512))
    except (OSError, ValueError, TypeError, AttributeError):
        return 512
