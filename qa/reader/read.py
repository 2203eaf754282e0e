"""The reader: finds the answer span to a question in a few passages with an extractive QA model."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qa.reader import spans, windows
from qa.reader.confidence import Confidence
from qa.reader.windows import Windows
from qa.schema import Hit, Passage, Span

if TYPE_CHECKING:
    import numpy as np

#: The project's trained reader (``save_pretrained`` layout), written by ``qa train-reader``.
DEFAULT_READER = Path(__file__).parent.parent / "reader_model"
#: Abstain below this confidence when the model folder has no ``confidence.json`` (``qa.lab.calibrate``:
#: the SQuAD 2.0 threshold and calibrated confidence that ``qa calibrate-reader`` stores with a model):
#: the uncalibrated confidence of ``Reader._confidence``, for other Hugging Face QA models.
DEFAULT_THRESHOLD = 0.3
#: Longest answer, in tokens: the 99th percentile of the SQuAD training answers' lengths
#: (``python -m qa.lab.train --answer-lengths``: p50 3, p95 13, p99 22). Longer spans are mostly lists or
#: clauses around the answer; ``qa eval VAL --reader-only`` measures the F1 of another value.
MAX_ANSWER_TOKENS = 22
#: Tokens per window (question + context): the window the shipped reader was trained on. Longer windows
#: split fewer answers across windows and need fewer windows per long passage (a lower p95 latency);
#: ``qa eval VAL --reader-only`` re-measures F1 and latency.
MAX_LENGTH = 384
#: Tokens shared by consecutive windows of a long passage.
STRIDE = 128
#: Windows per forward pass of the transformers backend (ONNX Runtime reads one window per call: no
#: padding, and a passage reads the same alone or beside others).
BATCH_SIZE = 32
#: "auto" runs local models with a ``tokenizer.json`` through ONNX Runtime (``qa.ort``: exported once
#: and cached; no torch at answer time) and others (hub ids, GPUs) through transformers;
#: "onnx" and "transformers" force one engine.
BACKENDS = ("auto", "onnx", "transformers")
#: How the encoder computes. "auto" is float32, exact and the fastest on this project's 2-core AVX2
#: machine (300 SQuAD questions: 113.9 ms p50 against int8's 119.1, ``qa compare-readers --readers
#: onnx:float32,onnx:int8``); "int8" is ONNX
#: Runtime's dynamic int8 (or torch's, with transformers), worth measuring on CPUs with AVX512-VNNI;
#: "bfloat16" runs with transformers only (torch autocast, for CPUs with AMX or for GPUs).
PRECISIONS = ("auto", "float32", "int8", "bfloat16")

Source = Passage | Hit


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
        log: Callable[[str], None] | None = None,
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
        if log is not None and not callable(log):
            raise TypeError(f"log must be a function taking a message (or None), got {type(log).__name__}")
        if precision == "int8" and device != "cpu":
            raise ValueError("int8 precision runs on the CPU only: pass device='cpu' or another precision")
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
        #: "onnx" or "transformers" once loaded.
        self.engine: str | None = None
        #: Where one-time work (the first ONNX export) is announced.
        self.log = log

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

    def shown(self, span: Span) -> float:
        """The confidence people see for one of this reader's spans (``Confidence.shown`` of its margin)."""
        if self.confidence is None or span.margin is None:
            return span.score
        return self.confidence.shown(span.margin)

    def warm_up(self) -> None:
        """Load the model and its tokenizer (once)."""
        if self.model is not None:
            return
        if self._local:
            self._check_folder(Path(self._model_ref))
        folder = Path(self._model_ref).expanduser()
        from qa import ort

        onnx = self.backend == "onnx" or (self.backend == "auto" and self._local and self.device == "cpu"
                                          and self.precision != "bfloat16" and ort.supports(folder))
        if self.precision == "auto":
            self.precision = "float32"
        if onnx:
            if self.precision == "bfloat16":
                raise ValueError("bfloat16 runs with backend='transformers' only; ONNX Runtime takes "
                                 "float32 or int8")
            if not self._local or self.device != "cpu":
                raise ValueError("backend='onnx' runs a local model folder on the CPU: pass a folder "
                                 "and device='cpu', or backend='transformers'")
            limit = ort.max_positions(folder)
            if self.max_length > limit:
                raise ValueError(f"max_length {self.max_length} exceeds the model's limit of {limit} tokens")
            path = ort.exported(folder, "qa", self.precision, log=self.log)
            self.tokenizer = ort.load_tokenizer(folder)
            self.model = ort.Session(path)
            self.engine = "onnx"
            return
        from qa.reader import hf_reader

        ref = str(folder) if self._local else str(self._model_ref)
        self.model, self.tokenizer = hf_reader.load(ref, device=self.device, precision=self.precision,
                                                    max_length=self.max_length)
        self.engine = "transformers"

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
        enc = self._encode(question.strip(), items)
        if not enc.ids:
            return []
        start, end = self._logits(enc)
        return spans.decode(enc, start, end, items, top_n=top_n, max_answer_tokens=self.max_answer_tokens,
                            confidence=self.confidence, per_passage=per_passage)

    def _encode(self, question: str, items: Sequence[Passage]) -> Windows:
        """The question (cut to fit) with every passage, in model windows."""
        question = windows.clip_question(self.tokenizer, question, max_length=self.max_length,
                                         stride=self.stride)
        return windows.tokenize(self.tokenizer, question, [p.text for p in items],
                                max_length=self.max_length, stride=self.stride)

    def _logits(self, enc: Windows) -> tuple[np.ndarray, np.ndarray]:
        """Start and end logits of every window, (windows, longest) float32 arrays padded with -inf."""
        import numpy as np

        n, width = len(enc.ids), max(len(x) for x in enc.ids)
        start = np.full((n, width), -np.inf, dtype=np.float32)
        end = np.full((n, width), -np.inf, dtype=np.float32)
        if self.engine == "onnx":
            for j, row in enumerate(enc.ids):  # one window per call: no padding, the same alone or batched
                ids = np.asarray([row], dtype=np.int64)
                types = np.asarray([enc.types[j]], dtype=np.int64) if enc.types else None
                s, e = self.model.run(ids, np.ones_like(ids), types)
                start[j, : len(row)], end[j, : len(row)] = s[0], e[0]
            return start, end
        from qa.reader import hf_reader

        hf_reader.fill_logits(self.model, self.tokenizer, enc, start, end, batch_size=self.batch_size,
                              bfloat16=self.precision == "bfloat16")
        return start, end
