"""A BERT encoder in plain torch, read from a ``save_pretrained`` folder: the fast path of embed and read.

``transformers`` 5 takes about 7 s to import on two CPU cores (it pulls in torch's compiler and
distributed packages); this module needs only torch, ``safetensors`` and ``tokenizers`` (about 2 s).
It runs BERT-architecture checkpoints (``BertModel``, ``BertForQuestionAnswering``: MiniLM, the
shipped reader) and gives the same numbers as ``transformers`` (tests compare them); any other model
goes through ``transformers`` as before. ``supports(folder)`` says which path a folder takes.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

#: ``config.json`` values this implementation reproduces exactly; anything else takes transformers.
SUPPORTED = {"model_type": ("bert",), "hidden_act": ("gelu",), "position_embedding_type": ("absolute",)}
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_FILE = "tokenizer.json"
#: How the encoder's Linear layers compute: "float32" (exact), "int8" (int8 weights per output channel
#: and activations per token, products through fbgemm: about 3x faster than float32 on x86 CPUs with
#: VNNI) or "bfloat16" (weights and activations in bfloat16). Embeddings, layer norms and the QA head
#: stay float32.
PRECISIONS = ("float32", "int8", "bfloat16")
#: int8 moves this power of each input channel's range from the activations into the weights
#: (SmoothQuant) for the products fed by a layer norm (query/key/value, feed-forward in), whose few
#: outlier channels otherwise set the quantisation step for all; 0.5 is SmoothQuant's default.
SMOOTH_ALPHA = 0.5
#: A layer norm's output channel j is gamma_j * z + beta_j with z of unit variance: its range is taken
#: as this many |gamma_j| plus |beta_j| (no calibration data needed).
SMOOTH_SIGMAS = 3.0


def _config(folder: Path) -> dict[str, Any] | None:
    """The folder's ``config.json`` as a dict, or None when missing or unreadable."""
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return config if isinstance(config, dict) else None


def supports(folder: str | Path, *, head: str | None = None) -> bool:
    """True when ``folder`` holds a BERT checkpoint this module runs (``head``: 'qa' for a QA head)."""
    folder = Path(folder)
    config = _config(folder)
    if config is None or not (folder / WEIGHTS_FILE).is_file() or not (folder / TOKENIZER_FILE).is_file():
        return False
    for key, allowed in SUPPORTED.items():
        if config.get(key, allowed[0]) not in allowed:
            return False
    if config.get("is_decoder") or config.get("add_cross_attention"):
        return False
    if head == "qa":
        return "BertForQuestionAnswering" in (config.get("architectures") or [])
    return True


class Bert:
    """BERT weights (float32) and a forward pass: embeddings, N encoder layers, optional QA head."""

    def __init__(self, weights: dict[str, Any], config: dict[str, Any], *,
                 precision: str = "float32") -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.config = config
        self.precision = precision
        self.heads = int(config["num_attention_heads"])
        self.layers = int(config["num_hidden_layers"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        self.max_positions = int(config.get("max_position_embeddings", 512))
        # BertForQuestionAnswering prefixes the encoder with "bert."; BertModel does not
        prefix = "bert." if "bert.embeddings.word_embeddings.weight" in weights else ""
        self.w = {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in weights.items()}
        missing = [k for k in ("embeddings.word_embeddings.weight", "encoder.layer.0.output.dense.weight")
                   if k not in self.w]
        if missing:
            raise ValueError(f"not a BERT checkpoint: missing {', '.join(missing)}")
        self._fuse_qkv()
        self._linears: dict[str, Any] = {}
        if precision != "float32":
            self._convert_linears()

    def _fuse_qkv(self) -> None:
        """Join each layer's query, key and value projections into one (one matrix product, not three)."""
        import torch

        for i in range(self.layers):
            p = f"encoder.layer.{i}.attention.self."
            for part in ("weight", "bias"):
                names = [f"{p}{name}.{part}" for name in ("query", "key", "value")]
                if all(n in self.w for n in names):
                    self.w[f"{p}qkv.{part}"] = torch.cat([self.w.pop(n) for n in names])

    def _convert_linears(self) -> None:
        """Build the encoder's Linear layers in ``self.precision``."""
        import torch

        names = [k.removesuffix(".weight") for k in self.w
                 if k.startswith("encoder.layer.") and k.endswith(".weight") and self.w[k].dim() == 2
                 and f"{k.removesuffix('.weight')}.bias" in self.w]
        for name in names:
            weight, bias = self.w[f"{name}.weight"], self.w[f"{name}.bias"]
            if self.precision == "bfloat16":
                bf = (weight.to(torch.bfloat16), bias.to(torch.bfloat16))
                self._linears[name] = lambda x, bf=bf: torch.nn.functional.linear(x.to(torch.bfloat16), *bf)
            else:
                self._linears[name] = _Int8Linear(weight, bias, self._smoothing(name, weight))

    def _smoothing(self, name: str, weight: Any) -> Any:
        """Per-input-channel factors s for the int8 product ``name`` (x / s times W * s), or None.

        Only products fed by a layer norm are smoothed; the norm's weights estimate the input's range.
        """
        i = int(name.split(".")[2])
        if name.endswith("attention.self.qkv"):
            norm = "embeddings.LayerNorm" if i == 0 else f"encoder.layer.{i - 1}.output.LayerNorm"
        elif name.endswith("intermediate.dense"):
            norm = f"encoder.layer.{i}.attention.output.LayerNorm"
        else:
            return None
        if f"{norm}.weight" not in self.w:
            return None
        act = SMOOTH_SIGMAS * self.w[f"{norm}.weight"].abs() + self.w[f"{norm}.bias"].abs()
        w = weight.abs().amax(0)
        s = act.clamp(min=1e-5) ** SMOOTH_ALPHA / w.clamp(min=1e-5) ** (1 - SMOOTH_ALPHA)
        return s / s.mean()

    def _linear(self, name: str, x: Any, *, low: bool = False) -> Any:
        """The Linear layer ``name`` (its weight and bias keys without the suffix) applied to ``x``.

        The result is float32, or left in bfloat16 with ``low`` when the layer computes in bfloat16 (for
        the next matrix product: attention, the feed-forward output).
        """
        import torch

        fn = self._linears.get(name)
        if fn is None:
            return torch.nn.functional.linear(x, self.w[f"{name}.weight"], self.w[f"{name}.bias"])
        y = fn(x)
        return y if low else y.float()

    @classmethod
    def load(cls, folder: str | Path, *, precision: str = "float32") -> Bert:
        """Read ``config.json`` and ``model.safetensors`` (any float dtype, kept as float32)."""
        import torch
        from safetensors.torch import load_file

        folder = Path(folder)
        config = _config(folder)
        if config is None:
            raise ValueError(f"{folder} has no readable config.json")
        weights = {k: v.to(torch.float32) for k, v in load_file(str(folder / WEIGHTS_FILE)).items()}
        return cls(weights, config, precision=precision)

    @property
    def has_qa_head(self) -> bool:
        """True when the checkpoint carries a span-prediction head (``qa_outputs``)."""
        return "qa_outputs.weight" in self.w

    def encode(self, input_ids: Any, attention_mask: Any, token_type_ids: Any = None) -> Any:
        """Last hidden states, (batch, tokens, hidden), for int64 tensors of shape (batch, tokens).

        Only the tokens the mask keeps are computed (padding rows cost nothing; its states are zero):
        the encoder runs on them packed into one (tokens, hidden) matrix, attention row by row.
        """
        import torch
        import torch.nn.functional as F

        w, eps = self.w, self.eps
        n, t = input_ids.shape
        if t > self.max_positions:
            raise ValueError(f"{t} tokens exceed the model's {self.max_positions} positions")
        types = token_type_ids if token_type_ids is not None else torch.zeros_like(input_ids)
        keep = attention_mask.bool()
        lengths = keep.sum(1).tolist()
        positions = torch.arange(t).expand(n, t)[keep]
        x = (F.embedding(input_ids[keep], w["embeddings.word_embeddings.weight"])
             + w["embeddings.position_embeddings.weight"][positions]
             + F.embedding(types[keep], w["embeddings.token_type_embeddings.weight"]))
        x = F.layer_norm(x, x.shape[-1:], w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"],
                         eps)
        for i in range(self.layers if len(x) else 0):
            p = f"encoder.layer.{i}."
            qkv = self._linear(p + "attention.self.qkv", x, low=True)
            a = self._linear(p + "attention.output.dense", self._attend(qkv, lengths))
            x = F.layer_norm(x + a, x.shape[-1:], w[p + "attention.output.LayerNorm.weight"],
                             w[p + "attention.output.LayerNorm.bias"], eps)
            f = F.gelu(self._linear(p + "intermediate.dense", x, low=True))
            f = self._linear(p + "output.dense", f)
            x = F.layer_norm(x + f, x.shape[-1:], w[p + "output.LayerNorm.weight"],
                             w[p + "output.LayerNorm.bias"], eps)
        out = x.new_zeros((n, t, x.shape[-1]))
        out[keep] = x
        return out

    def _attend(self, qkv: Any, lengths: list[int]) -> Any:
        """Self-attention within each row: packed (tokens, 3 * hidden) -> (tokens, hidden)."""
        import torch
        import torch.nn.functional as F

        h = self.heads
        if len(set(lengths)) == 1:  # equal rows: one batched call
            n, m = len(lengths), lengths[0]
            q, k, v = qkv.view(n, m, 3, h, -1).permute(2, 0, 3, 1, 4)  # each (rows, heads, tokens, size)
            return F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(n * m, -1)
        parts = []
        for row in qkv.split(lengths):
            if len(row):
                # each (1, heads, tokens, size): SDPA takes its fast kernel for 4-d inputs only
                q, k, v = row.view(1, len(row), 3, h, -1).permute(2, 0, 3, 1, 4)
                parts.append(F.scaled_dot_product_attention(q, k, v)[0].transpose(0, 1).reshape(len(row), -1))
        return torch.cat(parts)

    def span_logits(self, input_ids: Any, attention_mask: Any, token_type_ids: Any = None) -> tuple[Any, Any]:
        """Start and end logits, each (batch, tokens), from the QA head."""
        import torch.nn.functional as F

        if not self.has_qa_head:
            raise ValueError("this checkpoint has no question-answering head (qa_outputs)")
        logits = F.linear(self.encode(input_ids, attention_mask, token_type_ids),
                          self.w["qa_outputs.weight"], self.w["qa_outputs.bias"])
        return logits[..., 0], logits[..., 1]


class _Int8Linear:
    """``x @ W.T + b`` in int8: W per output channel, x per token (each row scaled to [-1, 1] first).

    fbgemm's dynamic int8 product quantises its whole input with one step; BERT's [CLS] and [SEP] rows
    are far larger than the rest, so one step per token keeps the others' precision (SQuAD validation
    F1 of the shipped reader with 30-token answers: one step per batch 71.19, per token 73.44, per token
    with ``smooth`` on the layer-norm-fed products 74.14; bfloat16 74.16). ``smooth``: per-input-channel
    factors s, computing x / s @ (W * s).T.
    """

    def __init__(self, weight: Any, bias: Any, smooth: Any = None) -> None:
        import torch

        lin = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=False)
        with torch.no_grad():
            lin.weight.copy_(weight if smooth is None else weight * smooth)
        lin.qconfig = torch.ao.quantization.per_channel_dynamic_qconfig
        with warnings.catch_warnings():  # torch deprecates quantized tensors for torchao (not installed)
            warnings.simplefilter("ignore")
            self.q = torch.ao.nn.quantized.dynamic.Linear.from_float(lin, use_precomputed_fake_quant=False)
        self.bias = bias
        self.inv = None if smooth is None else 1.0 / smooth

    def __call__(self, x: Any) -> Any:
        """The product for float32 ``x`` of shape (..., in features).

        Each row is scaled to a largest magnitude of 1, and one extra row holding 1 and -1 fixes
        fbgemm's quantisation step (it takes one from the whole input's smallest and largest value) at
        [-1, 1]: a row's result never depends on the rows beside it, so a passage reads the same alone
        or in any batch. (Shifting each row to span exactly [-1, 1] instead puts its zero between steps,
        and the feed-forward output, mostly near-zero GELU values, loses F1: 74.14 -> 68.69.)
        """
        import torch

        x = x.float()  # no copy when float32 already
        if self.inv is not None:
            x = x * self.inv
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        r = x.abs().amax(-1, keepdim=True).clamp(min=1e-6)
        n = x.shape[0]
        y = torch.empty((n + 1, shape[-1]), dtype=x.dtype)
        torch.div(x, r, out=y[:n])
        y[n] = 0.0
        y[n, 0], y[n, -1] = 1.0, -1.0
        return torch.addcmul(self.bias, self.q(y)[:n], r).reshape(*shape[:-1], -1)


def load_tokenizer(folder: str | Path) -> Any:
    """The folder's ``tokenizer.json`` as a ``tokenizers.Tokenizer`` with padding and truncation off."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(Path(folder) / TOKENIZER_FILE))
    tok.no_padding()
    tok.no_truncation()
    return tok
