"""The reader: finds the answer span to a question in a few passages with an extractive QA model."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qa.schema import Hit, Passage, Span

#: The project's trained reader (``save_pretrained`` layout), written by ``qa train-reader``.
DEFAULT_READER = Path(__file__).parent / "reader_model"
#: Abstain below this confidence when the model folder has no ``confidence.json`` (``qa.calibrate``:
#: the SQuAD 2.0 threshold and calibrated confidence that ``qa calibrate-reader`` stores with a model):
#: the uncalibrated confidence of ``Reader._confidence``, for other Hugging Face QA models.
DEFAULT_THRESHOLD = 0.3
#: Longest answer, in tokens: the 99th percentile of the SQuAD training answers' lengths
#: (``python -m qa.train --answer-lengths``: p50 3, p95 13, p99 22). Longer spans are mostly lists or
#: clauses around the answer; ``qa eval VAL --reader-only`` measures the F1 of another value.
MAX_ANSWER_TOKENS = 22
#: Tokens per window (question + context): the window the shipped reader was trained on. Longer windows
#: split fewer answers across windows and need fewer windows per long passage (a lower p95 latency);
#: ``qa eval VAL --reader-only`` re-measures F1 and latency.
MAX_LENGTH = 384
#: Tokens shared by consecutive windows of a long passage.
STRIDE = 128
#: Windows per forward pass.
BATCH_SIZE = 32
#: Longest question, in tokens; longer questions are cut (the context needs the room).
MAX_QUESTION_TOKENS = 64
#: "auto" runs BERT checkpoints through ``qa.bert`` (no transformers import) and others through
#: transformers; "transformers" always uses ``AutoModelForQuestionAnswering``.
BACKENDS = ("auto", "transformers")
#: How the encoder's matrix products compute (see ``qa.bert.PRECISIONS``). "auto" is int8 for BERT models
#: on x86 CPUs (``qa.bert``'s per-token int8: SQuAD validation F1 unchanged, about 2.4x faster than float32
#: on one core), else bfloat16 where the CPU multiplies bfloat16 natively (AVX512-BF16 or AMX: about 1.6x)
#: and float32 elsewhere. Models outside ``qa.bert`` take torch's dynamic int8 on request only (it costs
#: them accuracy: one quantisation step per batch).
PRECISIONS = ("auto", "float32", "bfloat16", "int8")

Source = Passage | Hit


@dataclass(frozen=True)
class Windows:
    """Tokenized (question, passage) windows: ids, token types, offsets, sequence ids, passage index."""

    ids: list[list[int]]
    types: list[list[int]]
    offsets: list[list[tuple[int, int]]]
    sequence_ids: list[list[int | None]]
    passage: list[int]


def _native_bf16() -> bool:
    """True when this CPU multiplies bfloat16 matrices natively (AVX512-BF16 or AMX tiles).

    oneDNN's own check also accepts plain AVX-512, where bfloat16 is emulated and slower than float32.
    """
    import torch

    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except (AttributeError, RuntimeError):
        return False


def _x86_int8() -> bool:
    """True when torch has its x86 int8 kernels (fbgemm)."""
    import torch

    return "fbgemm" in torch.backends.quantized.supported_engines


def _is_int(value: Any) -> bool:
    """True for a real int (not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool)


class Reader:
    """Extractive reader over any Hugging Face question-answering model, with calibrated abstention."""

    def __init__(
        self,
        *,
        model: str | Path = DEFAULT_READER,
        threshold: float | None = None,
        max_answer_tokens: int = MAX_ANSWER_TOKENS,
        max_length: int = MAX_LENGTH,
        stride: int = STRIDE,
        batch_size: int = BATCH_SIZE,
        device: str = "cpu",
        backend: str = "auto",
        precision: str = "auto",
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        if not isinstance(model, (str, Path)) or not str(model).strip():
            raise TypeError(f"model must be a model folder or hub id (str or Path), got {model!r}")
        if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
                                      or not 0 <= threshold <= 1):
            raise ValueError(f"threshold must be a number from 0 to 1 (or None: the model's own), "
                             f"got {threshold!r}")
        if not _is_int(max_answer_tokens) or max_answer_tokens < 1:
            raise ValueError(f"max_answer_tokens must be a positive integer, got {max_answer_tokens!r}")
        if not _is_int(max_length) or max_length < 32:
            raise ValueError(f"max_length must be an integer of at least 32, got {max_length!r}")
        if not _is_int(stride) or not 0 <= stride <= max_length - 24:
            raise ValueError(f"stride must be an integer from 0 to max_length - 24 "
                             f"({max_length - 24}), got {stride!r}")
        if not _is_int(batch_size) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if not isinstance(device, str) or not device:
            raise TypeError(f"device must be a torch device string such as 'cpu' or 'cuda', got {device!r}")
        if precision == "int8" and device != "cpu":
            raise ValueError("int8 precision runs on the CPU only: pass device='cpu' or another precision")
        from qa.calibrate import Confidence

        self._model_ref = model
        self._local = self._check_folder(model)
        #: The model's stored threshold and confidence map (None: the uncalibrated confidence).
        self.confidence = Confidence.load(Path(model).expanduser()) if self._local else None
        if threshold is None:
            threshold = self.confidence.threshold if self.confidence else DEFAULT_THRESHOLD
        self._threshold = float(threshold)
        self.max_answer_tokens = max_answer_tokens
        self.max_length = max_length
        self.stride = stride
        self.batch_size = batch_size
        self.device = device
        self.backend = backend
        self.precision = precision
        self.model: Any = None
        self.tokenizer: Any = None
        self._fast = False

    @staticmethod
    def _check_folder(model: str | Path) -> bool:
        """Return True for a local folder; raise ValueError for a local path that is not a model folder."""
        path = Path(model).expanduser()
        text = str(model)
        looks_local = (isinstance(model, Path) or path.exists() or path.is_absolute()
                       or text.startswith((".", "~")) or text.count("/") > 1 or "\\" in text)
        if not looks_local:
            return False
        if not path.is_dir():
            raise ValueError(
                f"reader model folder {path} not found: train one with `qa train-reader` "
                f"(writes qa/reader_model) or pass --reader / model= a Hugging Face QA model folder or hub id"
            )
        if not (path / "config.json").is_file():
            raise ValueError(
                f"{path} is not a model folder (no config.json): pass a folder written by "
                f"save_pretrained, e.g. by `qa train-reader`"
            )
        return True

    @property
    def name(self) -> str:
        """The model's folder name, or its hub id."""
        return Path(self._model_ref).name if self._local else str(self._model_ref)

    @property
    def threshold(self) -> float:
        """Answers whose confidence is below this are withheld by ``answer`` (and by the chatbot)."""
        return self._threshold

    def warm_up(self) -> None:
        """Load the model and its tokenizer (once)."""
        if self.model is not None:
            return
        if self._local:
            self._check_folder(Path(self._model_ref))
        folder = Path(self._model_ref).expanduser()
        fast = False
        if self._local and self.backend == "auto" and self.device == "cpu":
            from qa import bert

            fast = bert.supports(folder, head="qa")
        if self.precision == "auto":
            if fast and _x86_int8():
                self.precision = "int8"
            else:
                self.precision = "bfloat16" if self.device == "cpu" and _native_bf16() else "float32"
        if fast:
            model = bert.Bert.load(folder, precision=self.precision)
            if self.max_length > model.max_positions:
                raise ValueError(f"max_length {self.max_length} exceeds the model's limit of "
                                 f"{model.max_positions} tokens")
            self.tokenizer = bert.load_tokenizer(folder)
            self.model, self._fast = model, True
            return
        import torch
        from transformers import AutoModelForQuestionAnswering, AutoTokenizer

        ref = str(folder) if self._local else str(self._model_ref)
        dtype = torch.float16 if self.device.startswith("cuda") else torch.float32
        try:
            tokenizer = AutoTokenizer.from_pretrained(ref)
            model = AutoModelForQuestionAnswering.from_pretrained(ref, dtype=dtype)
        except OSError as err:
            raise ValueError(f"could not load the reader model {ref!r} ({err}); pass a local model folder "
                             f"or train one with `qa train-reader`") from err
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError(f"the reader needs a fast tokenizer (offsets); {ref!r} has none")
        limit = getattr(model.config, "max_position_embeddings", None)
        if isinstance(limit, int) and self.max_length > limit:
            raise ValueError(f"max_length {self.max_length} exceeds the model's limit of {limit} tokens")
        model.to(self.device).eval()
        if self.precision == "int8":
            with warnings.catch_warnings():  # torch deprecates quantized tensors for torchao (not installed)
                warnings.simplefilter("ignore")
                model = torch.ao.quantization.quantize_dynamic(
                    model, {torch.nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig})
        self.tokenizer = tokenizer
        self.model = model

    def answer(self, question: str, passages: Sequence[Source]) -> Span | None:
        """The best span, or None when its confidence is below the threshold (abstain)."""
        spans = self.read(question, passages, top_n=1)
        if not spans or spans[0].score < self.threshold:
            return None
        return spans[0]

    def read(self, question: str, passages: Sequence[Source], *, top_n: int = 1,
             per_passage: bool = False) -> list[Span]:
        """Up to ``top_n`` distinct candidate spans, best first; the best is kept even below threshold.

        ``per_passage``: at most one span per passage, its best (``top_n=len(passages)`` gives every
        passage's best span).
        """
        if not isinstance(question, str):
            raise TypeError(f"question must be a str, got {type(question).__name__}")
        if not question.strip():
            raise ValueError("question is empty: ask something")
        if not _is_int(top_n) or top_n < 1:
            raise ValueError(f"top_n must be a positive integer, got {top_n!r}")
        if not isinstance(per_passage, bool):
            raise TypeError(f"per_passage must be True or False, got {per_passage!r}")
        if isinstance(passages, (str, Passage, Hit)) or not isinstance(passages, Sequence):
            raise TypeError("passages must be a sequence of Passage or Hit")
        items = []
        for p in passages:
            if isinstance(p, Hit):
                p = p.passage
            if not isinstance(p, Passage):
                raise TypeError(f"passages must hold Passage or Hit objects, got {type(p).__name__}")
            if p.text.strip():
                items.append(p)
        if not items:
            return []
        self.warm_up()
        enc = self._encode(self._clip_question(question.strip()), items)
        if not enc.ids:
            return []
        start, end = self._logits(enc)
        return self._decode(enc, start, end, items, top_n, per_passage)

    def _clip_question(self, question: str) -> str:
        """Cut a question that would leave too little room for the context."""
        budget = min(MAX_QUESTION_TOKENS, self.max_length - self.stride - 8)
        if self._fast:
            offsets = self.tokenizer.encode(question, add_special_tokens=False).offsets
        else:
            enc = self.tokenizer(question, add_special_tokens=False, return_offsets_mapping=True)
            offsets = enc["offset_mapping"]
        if len(offsets) <= budget:
            return question
        return question[: offsets[budget - 1][1]]

    def _encode(self, question: str, items: list[Passage]) -> Windows:
        """Tokenize the question with every passage in one call, long passages in overlapping windows."""
        if self._fast:
            tok = self.tokenizer
            tok.enable_truncation(self.max_length, stride=self.stride, strategy="only_second")
            try:
                encodings = tok.encode_batch([(question, p.text) for p in items])
            finally:
                tok.no_truncation()
            windows = [(i, w) for i, e in enumerate(encodings) for w in [e, *e.overflowing]]
            return Windows([w.ids for _, w in windows], [w.type_ids for _, w in windows],
                           [w.offsets for _, w in windows], [w.sequence_ids for _, w in windows],
                           [i for i, _ in windows])
        enc = self.tokenizer(
            [question] * len(items), [p.text for p in items], truncation="only_second",
            max_length=self.max_length, stride=self.stride, return_overflowing_tokens=True,
            return_offsets_mapping=True, padding=False,
        )
        n = len(enc["input_ids"])
        types = enc.get("token_type_ids")
        if types is None or "token_type_ids" not in self.tokenizer.model_input_names:
            types = []
        return Windows(enc["input_ids"], types, enc["offset_mapping"],
                       [enc.sequence_ids(j) for j in range(n)], enc["overflow_to_sample_mapping"])

    def _logits(self, enc: Windows) -> tuple[Any, Any]:
        """Start and end logits of every window, (windows, longest) float32 CPU tensors padded with -inf."""
        import torch

        ids = enc.ids
        n = len(ids)
        width = max(len(x) for x in ids)
        start = torch.full((n, width), -math.inf)
        end = torch.full((n, width), -math.inf)
        types = enc.types
        use_types = bool(types)
        order = sorted(range(n), key=lambda k: len(ids[k]))  # similar lengths share a batch: less padding
        pad = 0 if self._fast else (self.tokenizer.pad_token_id or 0)
        with torch.inference_mode():
            for b in range(0, n, self.batch_size):
                rows = order[b : b + self.batch_size]
                w = max(len(ids[k]) for k in rows)
                input_ids = torch.full((len(rows), w), pad, dtype=torch.long)
                mask = torch.zeros((len(rows), w), dtype=torch.long)
                tt = torch.zeros((len(rows), w), dtype=torch.long)
                for r, k in enumerate(rows):
                    m = len(ids[k])
                    input_ids[r, :m] = torch.tensor(ids[k])
                    mask[r, :m] = 1
                    if use_types:
                        tt[r, :m] = torch.tensor(types[k])
                inputs = {"input_ids": input_ids, "attention_mask": mask}
                if use_types:
                    inputs["token_type_ids"] = tt
                idx = torch.tensor(rows)
                if self._fast:
                    s, e = self.model.span_logits(input_ids, mask, tt if use_types else None)
                else:
                    device = self.model.device
                    with torch.autocast(device.type, dtype=torch.bfloat16,
                                        enabled=self.precision == "bfloat16"):
                        out = self.model(**{k: v.to(device) for k, v in inputs.items()})
                    s, e = out.start_logits, out.end_logits
                start[idx, :w] = s.float().cpu()
                end[idx, :w] = e.float().cpu()
        return start, end

    def _decode(self, enc: Windows, start: Any, end: Any, items: list[Passage], top_n: int,
                per_passage: bool = False) -> list[Span]:
        """Score every span of context tokens (vectorised), then keep the most confident distinct ones."""
        import torch

        n, width = start.shape
        m = self.max_answer_tokens
        context = torch.zeros((n, width), dtype=torch.bool)
        for j in range(n):
            seq = enc.sequence_ids[j]
            context[j, : len(seq)] = torch.tensor([s == 1 for s in seq])
        null = start[:, 0] + end[:, 0]  # the no-answer option: [CLS] as start and end
        s = start.masked_fill(~context, -math.inf)
        e = end.masked_fill(~context, -math.inf)
        # band[j, i, k]: logit of the span from token i to token i + k of window j (k < max answer length)
        e_pad = torch.cat([e, torch.full((n, m - 1), -math.inf)], dim=1)
        band = (s.unsqueeze(2) + e_pad.unfold(1, m, 1)[:, :width, :]).reshape(n, -1)
        # each window's top spans; the global top-n distinct spans are among them (same order within a window)
        values, where = torch.topk(band, min(top_n, band.shape[1]), dim=1)
        margins = values - null.unsqueeze(1)
        if self.confidence is not None:
            c = self.confidence
            conf = torch.sigmoid(c.slope * margins + c.intercept)
        else:
            conf = self._confidence(values, null.unsqueeze(1), torch.logsumexp(band, dim=1, keepdim=True))
        order = torch.argsort(conf.reshape(-1), descending=True).tolist()
        k = values.shape[1]
        best: dict[tuple[int, ...], tuple[int, int, int, float]] = {}
        for flat in order:
            j, r = divmod(flat, k)
            if not math.isfinite(float(values[j, r])):
                continue
            i, off = divmod(int(where[j, r]), m)
            offsets = enc.offsets[j]
            span = (enc.passage[j], offsets[i][0], offsets[i + off][1])
            key = span[:1] if per_passage else span
            if key not in best:
                best[key] = (*span, float(conf[j, r]), float(margins[j, r]))
                if len(best) == top_n:
                    break
        spans = []
        for p, c0, c1, score, margin in best.values():
            passage = items[p]
            spans.append(Span(text=passage.text[c0:c1], score=score, start=passage.start + c0,
                              end=passage.start + c1, source=passage.source, passage_id=passage.id,
                              margin=margin))
        return spans

    @staticmethod
    def _confidence(span: Any, null: Any, spans_lse: Any) -> Any:
        """Uncalibrated confidence in [0, 1] of spans: the confidence of models without ``confidence.json``.

        ``span``: the spans' logits; ``null``: their window's no-answer logit; ``spans_lse``: the
        logsumexp of all its spans.

        The geometric mean of the span's probability in a softmax over all spans of its window plus the
        no-answer option, and the sigmoid of the span's margin over no-answer: the first is low when the
        window offers several competing spans, the second when the model would rather not answer.
        Windows are normalised on their own, so scores compare across passages and questions.
        """
        import torch

        log_p_span = span - torch.logaddexp(spans_lse, null)
        log_vs_null = torch.nn.functional.logsigmoid(span - null)
        return torch.exp(0.5 * (log_p_span + log_vs_null)).clamp(0.0, 1.0)
