"""Tokenise a question with passages into model windows: long passages overlap, offsets kept."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

#: Longest question, in tokens; longer questions are cut (the context needs the room).
MAX_QUESTION_TOKENS = 64


@dataclass(frozen=True)
class Windows:
    """Tokenized (question, passage) windows: ids, token types, offsets, sequence ids, passage index.

    ``offsets[j][i]`` is token i's character span in its passage's text (context tokens) or in the
    question; ``sequence_ids[j][i]`` is 1 for context tokens; ``passage[j]`` indexes the passages given.
    """

    ids: list[list[int]]
    types: list[list[int]]
    offsets: list[list[tuple[int, int]]]
    sequence_ids: list[list[int | None]]
    passage: list[int]


def is_fast(tokenizer: Any) -> bool:
    """True for a ``tokenizers.Tokenizer`` (the ONNX path), False for a transformers tokenizer."""
    return hasattr(tokenizer, "encode_batch")


def clip_question(tokenizer: Any, question: str, *, max_length: int, stride: int) -> str:
    """Cut a question that would leave too little room for the context."""
    budget = min(MAX_QUESTION_TOKENS, max_length - stride - 8)
    if is_fast(tokenizer):
        offsets = tokenizer.encode(question, add_special_tokens=False).offsets
    else:
        offsets = tokenizer(question, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    if len(offsets) <= budget:
        return question
    return question[: offsets[budget - 1][1]]


def tokenize(tokenizer: Any, question: str, texts: Sequence[str], *, max_length: int,
             stride: int) -> Windows:
    """Tokenize the question with every passage text in one call, long ones in overlapping windows."""
    if is_fast(tokenizer):
        tokenizer.enable_truncation(max_length, stride=stride, strategy="only_second")
        try:
            encodings = tokenizer.encode_batch([(question, t) for t in texts])
        finally:
            tokenizer.no_truncation()
        windows = [(i, w) for i, e in enumerate(encodings) for w in [e, *e.overflowing]]
        return Windows([w.ids for _, w in windows], [w.type_ids for _, w in windows],
                       [w.offsets for _, w in windows], [w.sequence_ids for _, w in windows],
                       [i for i, _ in windows])
    enc = tokenizer(
        [question] * len(texts), list(texts), truncation="only_second", max_length=max_length,
        stride=stride, return_overflowing_tokens=True, return_offsets_mapping=True, padding=False,
    )
    n = len(enc["input_ids"])
    types = enc.get("token_type_ids")
    if types is None or "token_type_ids" not in tokenizer.model_input_names:
        types = []
    return Windows(enc["input_ids"], types, enc["offset_mapping"],
                   [enc.sequence_ids(j) for j in range(n)], enc["overflow_to_sample_mapping"])
