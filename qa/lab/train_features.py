"""Examples as model features: tokenised windows with answer labels, batches, answer lengths."""

from __future__ import annotations

import math
import random
from pathlib import Path

from qa.lab.train_data import Example, training_pools

#: Share of windows without the answer kept for training (long documents give many such windows).
NEGATIVE_WINDOW_RATE = 0.2
MAX_LENGTH = 256
STRIDE = 96
#: ``--answer-lengths`` reports this percentile of the SQuAD training answers' lengths in tokens: the
#: reader's answer-length limit (``qa.reader.read.MAX_ANSWER_TOKENS``) comes from it.
ANSWER_LENGTH_PERCENTILE = 99


def featurize(examples: list[Example], tokenizer, rng: random.Random, *, max_length: int | None = None,
              stride: int | None = None) -> list[dict]:
    """Tokenize into windows with start/end token labels (0/0 = no answer in this window)."""
    max_length = max_length or MAX_LENGTH
    stride = stride or STRIDE
    if stride >= max_length // 2:
        raise ValueError(f"stride {stride} must be under half the window length {max_length}")
    feats: list[dict] = []
    step = 1000
    for i in range(0, len(examples), step):
        chunk = examples[i : i + step]
        enc = tokenizer(
            [e.question for e in chunk], [e.context for e in chunk], truncation="only_second",
            max_length=max_length, stride=stride, return_overflowing_tokens=True,
            return_offsets_mapping=True, padding=False,
        )
        for j, ids in enumerate(enc["input_ids"]):
            ex = chunk[enc["overflow_to_sample_mapping"][j]]
            seq = enc.sequence_ids(j)
            offsets = enc["offset_mapping"][j]
            ctx = [k for k, s in enumerate(seq) if s == 1]
            start_tok = end_tok = 0
            if ex.answer:
                a0, a1 = ex.answer_start, ex.answer_start + len(ex.answer)
                if offsets[ctx[0]][0] <= a0 and offsets[ctx[-1]][1] >= a1:
                    start_tok = next(k for k in ctx if offsets[k][1] > a0)
                    end_tok = next(k for k in reversed(ctx) if offsets[k][0] < a1)
            if start_tok == 0 and ex.answer and rng.random() > NEGATIVE_WINDOW_RATE:
                continue
            feats.append({
                "input_ids": ids,
                "token_type_ids": enc["token_type_ids"][j],
                "start": start_tok,
                "end": end_tok,
            })
    return feats


def answer_lengths(examples: list[Example], tokenizer) -> list[int]:
    """Length in tokens of each answerable example's gold answer."""
    texts = [e.answer for e in examples if e.answer]
    if not texts:
        return []
    return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


def percentile(values: list[int], q: float) -> int:
    """Nearest-rank percentile ``q`` (0 < q <= 100) of a non-empty list."""
    if not values:
        raise ValueError("percentile of an empty list: there are no answers to measure")
    if not 0 < q <= 100:
        raise ValueError(f"q must be a percentage above 0 and at most 100, got {q!r}")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def report_answer_lengths(data_dir: Path, tokenizer, mix: dict[str, float]) -> list[str]:
    """One line per training set of ``mix`` (weight above 0): answer count, length percentiles in tokens."""
    lines = []
    for name, exs in training_pools(data_dir, mix).items():
        lengths = answer_lengths(exs, tokenizer)
        if not lengths:
            continue
        lines.append(f"{name}: {len(lengths):,} answers, tokens p50 {percentile(lengths, 50)}, "
                     f"p95 {percentile(lengths, 95)}, p{ANSWER_LENGTH_PERCENTILE} "
                     f"{percentile(lengths, ANSWER_LENGTH_PERCENTILE)}, max {max(lengths)}")
    return lines


def batches(feats: list[dict], batch_size: int, rng: random.Random) -> list[list[dict]]:
    """Group windows of similar length into batches (less padding), in shuffled batch order."""
    order = sorted(range(len(feats)), key=lambda k: (len(feats[k]["input_ids"]), rng.random()))
    out = [[feats[k] for k in order[i : i + batch_size]] for i in range(0, len(order), batch_size)]
    rng.shuffle(out)
    return out


def collate(batch: list[dict], pad_id: int):
    """Pad one batch into tensors."""
    import torch

    n = max(len(f["input_ids"]) for f in batch)
    ids = torch.full((len(batch), n), pad_id, dtype=torch.long)
    tt = torch.zeros((len(batch), n), dtype=torch.long)
    mask = torch.zeros((len(batch), n), dtype=torch.long)
    for i, f in enumerate(batch):
        k = len(f["input_ids"])
        ids[i, :k] = torch.tensor(f["input_ids"])
        tt[i, :k] = torch.tensor(f["token_type_ids"])
        mask[i, :k] = 1
    start = torch.tensor([f["start"] for f in batch])
    end = torch.tensor([f["end"] for f in batch])
    out = {"input_ids": ids, "token_type_ids": tt, "attention_mask": mask,
           "start_positions": start, "end_positions": end}
    if "t_start" in batch[0]:  # the teachers' logits (``teacher_logits``); padding is masked in the loss
        t_start = torch.zeros(ids.shape, dtype=torch.float32)
        t_end = torch.zeros(ids.shape, dtype=torch.float32)
        for i, f in enumerate(batch):
            t_start[i, : len(f["t_start"])] = torch.as_tensor(f["t_start"])
            t_end[i, : len(f["t_end"])] = torch.as_tensor(f["t_end"])
        out["t_start"], out["t_end"] = t_start, t_end
    return out
