"""Distillation: teachers' start/end logits as soft targets, and the loss mixing them with gold labels."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from qa.lab.train_features import collate

#: Distillation (``--teacher``): the share of the loss that comes from the teachers' softened start and
#: end distributions (the rest from the gold labels), and the softmax temperature that softens them.
DISTILL_WEIGHT = 0.7
TEMPERATURE = 2.0
#: Windows per forward pass when the teachers' logits are computed.
TEACHER_BATCH = 64


def teacher_logits(feats: list[dict], teachers: list[str], pad_id: int, *, device: str = "cpu",
                   bf16: bool = False, answers_only: bool = False) -> tuple[Any, Any, Any]:
    """The teachers' mean start and end logits for every window: two flat arrays and each window's offset.

    ``answers_only``: only windows labelled with an answer are read (the others' logits stay 0), for a
    run whose no-answer windows learn from the gold label alone (``--gold-no-answer``).
    """
    import numpy as np
    import torch
    from transformers import AutoModelForQuestionAnswering

    lengths = np.array([len(f["input_ids"]) for f in feats], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    start = np.zeros(int(offsets[-1]), dtype=np.float32)
    end = np.zeros(int(offsets[-1]), dtype=np.float32)
    order = np.argsort(lengths, kind="stable")  # windows of like length together: little padding
    if answers_only:
        order = np.array([k for k in order if feats[k]["start"] > 0], dtype=np.int64)
    for path in teachers:
        model = AutoModelForQuestionAnswering.from_pretrained(path, dtype=torch.float32).to(device).eval()
        t0 = time.time()
        for i in range(0, len(order), TEACHER_BATCH):
            idx = order[i : i + TEACHER_BATCH]
            batch = collate([feats[k] for k in idx], pad_id)
            inputs = {k: batch[k].to(device) for k in ("input_ids", "token_type_ids", "attention_mask")}
            with torch.no_grad(), torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
                out = model(**inputs)
            s, e = out.start_logits.float().cpu().numpy(), out.end_logits.float().cpu().numpy()
            for row, k in enumerate(idx):
                a, n = int(offsets[k]), int(lengths[k])
                start[a : a + n] += s[row, :n] / len(teachers)
                end[a : a + n] += e[row, :n] / len(teachers)
        print(f"teacher {path}: {len(order)} windows in {time.time() - t0:.0f}s", flush=True)
    return start, end, offsets


def distill_loss(start: Any, end: Any, t_start: Any, t_end: Any, mask: Any,
                 temperature: float = TEMPERATURE, *, reduction: str = "batchmean") -> Any:
    """KL divergence of the student's start/end distributions from the teachers', softened, times T².

    ``reduction``: "batchmean" (one number) or "none" (one per window).
    """
    import torch.nn.functional as F  # noqa: N812

    keep = mask.bool()
    loss = 0.0
    for s, t in ((start, t_start), (end, t_end)):
        s = s.float().masked_fill(~keep, -1e4) / temperature
        t = t.float().masked_fill(~keep, -1e4) / temperature
        kl = F.kl_div(F.log_softmax(s, -1), F.log_softmax(t, -1), log_target=True, reduction="none")
        loss = loss + (kl.sum(-1) if reduction == "none" else kl.sum() / kl.shape[0])
    return loss / 2 * temperature**2


def mixed_loss(start: Any, end: Any, batch: dict[str, Any], t_start: Any, t_end: Any, *, weight: float,
               temperature: float = TEMPERATURE, gold_no_answer: bool = False) -> Any:
    """The gold labels' cross-entropy mixed with ``weight`` of the teachers' (``distill_loss``), per window.

    ``gold_no_answer``: windows labelled "no answer" learn from the gold label alone (a teacher that
    would answer there is overruled).
    """
    import torch
    import torch.nn.functional as F  # noqa: N812

    n = start.shape[1]
    gold = (F.cross_entropy(start.float(), batch["start_positions"].clamp(0, n - 1), reduction="none")
            + F.cross_entropy(end.float(), batch["end_positions"].clamp(0, n - 1), reduction="none")) / 2
    kd = distill_loss(start, end, t_start, t_end, batch["attention_mask"], temperature, reduction="none")
    share = torch.full_like(gold, weight)
    if gold_no_answer:
        share = share.masked_fill(batch["start_positions"] == 0, 0.0)
    return ((1 - share) * gold + share * kd).mean()


def attach_teacher(feats: list[dict], work: Path, teachers: list[str], pad_id: int, *, device: str,
                   bf16: bool, answers_only: bool = False) -> None:
    """Add each window's teacher logits (``t_start``, ``t_end``), computed once and kept in ``work``.

    ``answers_only``: see ``teacher_logits``.
    """
    import numpy as np

    path = work / "teacher-logits.npz"
    names = json.dumps([str(t) for t in teachers] + (["answers only"] if answers_only else []))
    if path.exists():
        with np.load(path, allow_pickle=False) as z:
            start, end, offsets, saved = z["start"], z["end"], z["offsets"], str(z["teachers"])
        if saved != names or len(offsets) != len(feats) + 1:
            raise SystemExit(f"{path} holds other teachers or windows ({saved}): delete it to recompute")
        print(f"teacher logits from {path}", flush=True)
    else:
        start, end, offsets = teacher_logits(feats, teachers, pad_id, device=device, bf16=bf16,
                                             answers_only=answers_only)
        tmp = work / "teacher-logits.tmp.npz"
        np.savez(tmp, start=start, end=end, offsets=offsets, teachers=np.array(names))
        tmp.replace(path)
    for k, f in enumerate(feats):
        a, b = int(offsets[k]), int(offsets[k + 1])
        f["t_start"], f["t_end"] = start[a:b], end[a:b]
