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
#: How the encoder's Linear layers compute: "float32" (exact), "int8" (dynamic per-channel int8
#: weights and activations through fbgemm: about 3x faster matrix products on x86 CPUs with VNNI) or
#: "bfloat16" (weights and activations in bfloat16). Embeddings, layer norms and the QA head stay float32.
PRECISIONS = ("float32", "int8", "bfloat16")


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
        """Build the encoder's Linear layers in ``self.precision`` (int8: dynamic per-channel)."""
        import torch

        names = [k.removesuffix(".weight") for k in self.w
                 if k.startswith("encoder.layer.") and k.endswith(".weight") and self.w[k].dim() == 2
                 and f"{k.removesuffix('.weight')}.bias" in self.w]
        for name in names:
            weight, bias = self.w[f"{name}.weight"], self.w[f"{name}.bias"]
            if self.precision == "bfloat16":
                bf = (weight.to(torch.bfloat16), bias.to(torch.bfloat16))
                self._linears[name] = lambda x, bf=bf: torch.nn.functional.linear(x.to(torch.bfloat16), *bf)
                continue
            lin = torch.nn.Linear(weight.shape[1], weight.shape[0])
            with torch.no_grad():
                lin.weight.copy_(weight)
                lin.bias.copy_(bias)
            with warnings.catch_warnings():  # torch deprecates quantized tensors for torchao (not installed)
                warnings.simplefilter("ignore")
                qlin = torch.ao.nn.quantized.dynamic.Linear.from_float(
                    _with_qconfig(lin), use_precomputed_fake_quant=False)
            self._linears[name] = qlin

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
        """Last hidden states, (batch, tokens, hidden), for int64 tensors of shape (batch, tokens)."""
        import torch
        import torch.nn.functional as F

        w, eps = self.w, self.eps
        n, t = input_ids.shape
        if t > self.max_positions:
            raise ValueError(f"{t} tokens exceed the model's {self.max_positions} positions")
        types = token_type_ids if token_type_ids is not None else torch.zeros_like(input_ids)
        x = (F.embedding(input_ids, w["embeddings.word_embeddings.weight"])
             + w["embeddings.position_embeddings.weight"][:t].unsqueeze(0)
             + F.embedding(types, w["embeddings.token_type_embeddings.weight"]))
        x = F.layer_norm(x, x.shape[-1:], w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"],
                         eps)
        keep = attention_mask.bool()[:, None, None, :]  # (batch, 1, 1, tokens): True = attend
        h = self.heads
        for i in range(self.layers):
            p = f"encoder.layer.{i}."

            qkv = self._linear(p + "attention.self.qkv", x, low=True).view(n, t, 3, h, -1)
            q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (batch, heads, tokens, head size)
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)
            a = self._linear(p + "attention.output.dense", a.transpose(1, 2).reshape(n, t, -1))
            x = F.layer_norm(x + a, x.shape[-1:], w[p + "attention.output.LayerNorm.weight"],
                             w[p + "attention.output.LayerNorm.bias"], eps)
            f = F.gelu(self._linear(p + "intermediate.dense", x, low=True))
            f = self._linear(p + "output.dense", f)
            x = F.layer_norm(x + f, x.shape[-1:], w[p + "output.LayerNorm.weight"],
                             w[p + "output.LayerNorm.bias"], eps)
        return x

    def span_logits(self, input_ids: Any, attention_mask: Any, token_type_ids: Any = None) -> tuple[Any, Any]:
        """Start and end logits, each (batch, tokens), from the QA head."""
        import torch.nn.functional as F

        if not self.has_qa_head:
            raise ValueError("this checkpoint has no question-answering head (qa_outputs)")
        logits = F.linear(self.encode(input_ids, attention_mask, token_type_ids),
                          self.w["qa_outputs.weight"], self.w["qa_outputs.bias"])
        return logits[..., 0], logits[..., 1]


def _with_qconfig(module: Any) -> Any:
    """``module`` with the per-channel dynamic int8 quantisation config attached."""
    import torch

    module.qconfig = torch.ao.quantization.per_channel_dynamic_qconfig
    return module


def load_tokenizer(folder: str | Path) -> Any:
    """The folder's ``tokenizer.json`` as a ``tokenizers.Tokenizer`` with padding and truncation off."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(Path(folder) / TOKENIZER_FILE))
    tok.no_padding()
    tok.no_truncation()
    return tok
