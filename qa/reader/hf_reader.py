"""A Hugging Face question-answering model run by transformers: any architecture, any device.

The reader's other engine (``qa.ort`` is its default): hub ids, GPUs, bfloat16 and models ONNX Runtime
cannot take go through ``AutoModelForQuestionAnswering`` here.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from qa.reader.windows import Windows


def load(ref: str, *, device: str, precision: str, max_length: int) -> tuple[Any, Any]:
    """The model (in eval mode, int8 on request) and its fast tokenizer; ValueError saying what to do."""
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    dtype = torch.float16 if device.startswith("cuda") else torch.float32
    try:
        tokenizer = AutoTokenizer.from_pretrained(ref)
        model = AutoModelForQuestionAnswering.from_pretrained(ref, dtype=dtype)
    except OSError as err:
        raise ValueError(f"could not load the reader model {ref!r} ({err}); pass a local model folder "
                         f"or train one with `qa train-reader`") from err
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"the reader needs a fast tokenizer (offsets); {ref!r} has none")
    limit = getattr(model.config, "max_position_embeddings", None)
    if isinstance(limit, int) and max_length > limit:
        raise ValueError(f"max_length {max_length} exceeds the model's limit of {limit} tokens")
    model.to(device).eval()
    if precision == "int8":
        with warnings.catch_warnings():  # torch deprecates quantized tensors for torchao (not installed)
            warnings.simplefilter("ignore")
            model = torch.ao.quantization.quantize_dynamic(
                model, {torch.nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig})
    return model, tokenizer


def fill_logits(model: Any, tokenizer: Any, enc: Windows, start: np.ndarray, end: np.ndarray, *,
                batch_size: int, bfloat16: bool = False) -> None:
    """Fill ``start``/``end`` (windows, width) with the model's logits, windows of similar length batched."""
    import torch

    ids, types = enc.ids, enc.types
    order = sorted(range(len(ids)), key=lambda k: len(ids[k]))  # similar lengths: less padding
    pad = tokenizer.pad_token_id or 0
    device = model.device
    with torch.inference_mode():
        for b in range(0, len(ids), batch_size):
            rows = order[b : b + batch_size]
            w = max(len(ids[k]) for k in rows)
            input_ids = torch.full((len(rows), w), pad, dtype=torch.long)
            mask = torch.zeros((len(rows), w), dtype=torch.long)
            tt = torch.zeros((len(rows), w), dtype=torch.long)
            for r, k in enumerate(rows):
                input_ids[r, : len(ids[k])] = torch.tensor(ids[k])
                mask[r, : len(ids[k])] = 1
                if types:
                    tt[r, : len(ids[k])] = torch.tensor(types[k])
            inputs = {"input_ids": input_ids, "attention_mask": mask}
            if types:
                inputs["token_type_ids"] = tt
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bfloat16):
                out = model(**{k: v.to(device) for k, v in inputs.items()})
            start[rows, :w] = out.start_logits.float().cpu().numpy()
            end[rows, :w] = out.end_logits.float().cpu().numpy()
