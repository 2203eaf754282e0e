"""Turn a reader's start and end logits into answer spans: stateless functions over numpy arrays."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from qa.schema import Passage, Span

if TYPE_CHECKING:
    from qa.reader.confidence import Confidence
    from qa.reader.windows import Windows


def _logsumexp(x: np.ndarray) -> np.ndarray:
    """Row-wise log-sum-exp of a 2-d array, keeping the axis (-inf for rows of -inf only)."""
    top = x.max(axis=1, keepdims=True)
    safe = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        return safe + np.log(np.exp(x - safe).sum(axis=1, keepdims=True))


def uncalibrated_confidence(span: np.ndarray, null: np.ndarray, spans_lse: np.ndarray) -> np.ndarray:
    """Confidence in [0, 1] of spans for models without ``confidence.json``.

    ``span``: the spans' logits; ``null``: their window's no-answer logit; ``spans_lse``: the
    logsumexp of all its spans. The geometric mean of the span's probability in a softmax over all
    spans of its window plus the no-answer option, and the sigmoid of the span's margin over
    no-answer: the first is low when the window offers several competing spans, the second when the
    model would rather not answer. Windows are normalised on their own, so scores compare across
    passages and questions.
    """
    log_p_span = span - np.logaddexp(spans_lse, null)
    log_vs_null = -np.logaddexp(0.0, -(span - null))
    return np.clip(np.exp(0.5 * (log_p_span + log_vs_null)), 0.0, 1.0)


def context_mask(windows: Windows, width: int) -> np.ndarray:
    """(windows, width) booleans: True where a token belongs to the passage (sequence id 1)."""
    mask = np.zeros((len(windows.sequence_ids), width), dtype=bool)
    for j, seq in enumerate(windows.sequence_ids):
        mask[j, : len(seq)] = [s == 1 for s in seq]
    return mask


def decode(windows: Windows, start: np.ndarray, end: np.ndarray, passages: list[Passage], *,
           top_n: int, max_answer_tokens: int, confidence: Confidence | None = None,
           per_passage: bool = False) -> list[Span]:
    """The ``top_n`` most confident distinct spans (one per passage with ``per_passage``), best first.

    ``start``/``end``: (windows, width) float32 logits padded with -inf. Every span of context tokens
    up to ``max_answer_tokens`` long is scored at once; ``confidence`` (the model's calibration) maps
    a span's margin over the no-answer option ([CLS] as start and end) to a probability.
    """
    n, width = start.shape
    m = max_answer_tokens
    context = context_mask(windows, width)
    null = (start[:, 0] + end[:, 0])[:, None]
    s = np.where(context, start, -np.inf).astype(np.float32)
    e = np.where(context, end, -np.inf).astype(np.float32)
    # band[j, i, k]: logit of the span from token i to token i + k of window j (k < max answer length)
    e_pad = np.concatenate([e, np.full((n, m - 1), -np.inf, dtype=np.float32)], axis=1)
    band = (s[:, :, None] + np.lib.stride_tricks.sliding_window_view(e_pad, m, axis=1)[:, :width, :])
    band = band.reshape(n, -1)
    # each window's top spans; the global top-n distinct spans are among them (same order within a window)
    k = min(top_n, band.shape[1])
    where = np.argpartition(-band, k - 1, axis=1)[:, :k] if k < band.shape[1] else np.tile(
        np.arange(band.shape[1]), (n, 1))
    values = np.take_along_axis(band, where, axis=1)
    rank = np.argsort(-values, axis=1, kind="stable")
    where, values = np.take_along_axis(where, rank, axis=1), np.take_along_axis(values, rank, axis=1)
    margins = values - null
    if confidence is not None:
        conf = 1.0 / (1.0 + np.exp(-(confidence.slope * margins + confidence.intercept)))
    else:
        conf = uncalibrated_confidence(values, null, _logsumexp(band))
    best: dict[tuple[int, ...], tuple[int, int, int, float, float]] = {}
    for flat in np.argsort(-conf.reshape(-1), kind="stable").tolist():
        j, r = divmod(flat, k)
        if not np.isfinite(values[j, r]):
            continue
        i, off = divmod(int(where[j, r]), m)
        offsets = windows.offsets[j]
        span = (windows.passage[j], offsets[i][0], offsets[i + off][1])
        key = span[:1] if per_passage else span
        if key not in best:
            best[key] = (*span, float(conf[j, r]), float(margins[j, r]))
            if len(best) == top_n:
                break
    spans = []
    for p, c0, c1, score, margin in best.values():
        passage = passages[p]
        spans.append(Span(text=passage.text[c0:c1], score=score, start=passage.start + c0,
                          end=passage.start + c1, source=passage.source, passage_id=passage.id,
                          margin=margin))
    return spans
