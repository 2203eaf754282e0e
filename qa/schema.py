"""The frozen records that flow between stages: a passage, a hit, a span, an answer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Passage:
    """A slice of a source text: ``source_text[start:end] == text`` always holds."""

    id: str
    source: str
    start: int
    end: int
    text: str

    def __post_init__(self) -> None:
        if self.start < 0 or self.end < self.start:
            raise ValueError(f"bad passage offsets {self.start}:{self.end}")
        if self.end - self.start != len(self.text):
            raise ValueError("passage text length does not match its offsets")


@dataclass(frozen=True)
class Hit:
    """A retrieved passage with its score (higher is better) and rank per retriever."""

    passage: Passage
    score: float
    dense_rank: int | None = None
    lexical_rank: int | None = None
    #: The PDF page the passage starts on (1-based), None for other sources.
    page: int | None = None

    @property
    def citation(self) -> str:
        """The source as users read it: ``report.pdf p. 3`` for a PDF page, else the source name."""
        return self.source if self.page is None else f"{self.source} p. {self.page}"

    @property
    def id(self) -> str:
        """The passage id."""
        return self.passage.id

    @property
    def source(self) -> str:
        """The passage's source file."""
        return self.passage.source

    @property
    def start(self) -> int:
        """The passage's start offset in its source."""
        return self.passage.start

    @property
    def end(self) -> int:
        """The passage's end offset in its source."""
        return self.passage.end

    @property
    def text(self) -> str:
        """The passage's text."""
        return self.passage.text

    def to_dict(self) -> dict[str, Any]:
        """The JSON form used by ``qa ask --json`` and the app's ``/ask`` endpoint."""
        return {"id": self.id, "source": self.source, "start": self.start, "end": self.end,
                "text": self.text, "score": round(float(self.score), 4), "page": self.page}


@dataclass(frozen=True)
class Span:
    """A reader's candidate answer: offsets into the source, confidence in [0, 1].

    ``margin``: the span's start + end logit minus its window's no-answer logit (None for readers
    without one); ``qa.lab.calibrate`` turns it into the confidence.
    """

    text: str
    score: float
    start: int
    end: int
    source: str
    passage_id: str
    margin: float | None = None


#: An answer whose calibrated confidence is below this is shown as uncertain ("Possibly: …"): it is
#: likelier wrong than right. Abstention happens lower, at the reader's stored threshold.
UNCERTAIN_BELOW = 0.5
#: How an uncertain answer is introduced, in every surface.
UNCERTAIN_PREFIX = "Possibly:"


@dataclass(frozen=True)
class Answer:
    """The chatbot's reply: the answer span (``text`` None when abstaining) and its passages."""

    question: str
    text: str | None
    score: float
    start: int | None
    end: int | None
    source: str | None
    passages: tuple[Hit, ...] = field(default_factory=tuple)
    passage_id: str | None = None
    context_start: int | None = None
    context_end: int | None = None
    #: The PDF page the answer stands on (1-based), None for other sources or an abstention.
    page: int | None = None

    @property
    def citation(self) -> str | None:
        """The answer's source as users read it (``report.pdf p. 3``); None when abstaining."""
        if self.source is None:
            return None
        return self.source if self.page is None else f"{self.source} p. {self.page}"

    @property
    def abstained(self) -> bool:
        """True when the reader found no supported answer."""
        return self.text is None

    @property
    def uncertain(self) -> bool:
        """True when an answer is given with a confidence below ``UNCERTAIN_BELOW`` (likelier wrong)."""
        return self.text is not None and self.score < UNCERTAIN_BELOW

    @property
    def context(self) -> str | None:
        """The sentence the answer stands in (``source_text[context_start:context_end]``), if known."""
        if self.context_start is None or self.context_end is None:
            return None
        for hit in self.passages:
            if hit.id == self.passage_id and hit.start <= self.context_start <= self.context_end <= hit.end:
                return hit.text[self.context_start - hit.start:self.context_end - hit.start]
        return None

    def to_dict(self) -> dict[str, Any]:
        """The JSON object printed by ``qa ask --json`` and returned by the app's ``/ask``."""
        return {
            "question": self.question,
            "answer": self.text,
            "score": round(float(self.score), 4),
            "uncertain": self.uncertain,
            "start": self.start,
            "end": self.end,
            "source": self.source,
            "context": self.context,
            "context_start": self.context_start,
            "context_end": self.context_end,
            "page": self.page,
            "passages": [h.to_dict() for h in self.passages],
        }
