"""The reader's fitted confidence: its abstention threshold and margin-to-probability maps, as data.

``qa calibrate-reader`` (``qa.lab.calibrate``) fits it and stores it beside the model's weights as plain
JSON (``confidence.json``); the reader loads it and turns each span's margin into a calibrated
probability of being right. Two maps can be stored: ``slope``/``intercept``, fitted on SQuAD 2.0 as it
is, score spans (the chatbot compares them when it picks between passages); ``shown_slope``/
``shown_intercept``, fitted on the use mix (``qa calibrate-reader --map use``: mostly answerable
questions), give the number people see. Without the second, people see the first.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

#: The file beside the weights that holds the threshold and the confidence map.
CONFIDENCE_FILE = "confidence.json"
FORMAT = "qa-confidence-1"


@dataclass(frozen=True)
class Confidence:
    """A reader's abstention threshold (a margin) and its margin-to-probability map (Platt scaling)."""

    threshold_margin: float
    slope: float
    intercept: float
    fitted_on: str = ""
    figures: dict[str, Any] = field(default_factory=dict)
    shown_slope: float | None = None
    shown_intercept: float | None = None

    def __post_init__(self) -> None:
        if (self.shown_slope is None) != (self.shown_intercept is None):
            raise ValueError("shown_slope and shown_intercept go together: give both or neither")
        shown = self.shown_slope is not None
        names = ["threshold_margin", "slope", "intercept"]
        names += ["shown_slope", "shown_intercept"] if shown else []
        for name in names:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        for name in ["slope"] + (["shown_slope"] if shown else []):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive (a higher margin means a likelier answer), "
                                 f"got {getattr(self, name)!r}")

    def probability(self, margin: float) -> float:
        """The probability that a span of this margin is a right answer (SQuAD 2.0's mix: spans' scores)."""
        return _sigmoid(self.slope * margin + self.intercept)

    def shown(self, margin: float) -> float:
        """The confidence people see for a span of this margin: the use-mix map where one is stored."""
        if self.shown_slope is None or self.shown_intercept is None:
            return self.probability(margin)
        return _sigmoid(self.shown_slope * margin + self.shown_intercept)

    @property
    def threshold(self) -> float:
        """The abstention threshold as a confidence: answer when the confidence reaches it."""
        return self.probability(self.threshold_margin)

    def save(self, folder: str | Path) -> Path:
        """Write ``confidence.json`` into a model folder; return its path."""
        path = Path(folder) / CONFIDENCE_FILE
        fields = {k: v for k, v in asdict(self).items() if v is not None}  # no shown map: none written
        data = {"format": FORMAT, "method": "platt", **fields}
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, folder: str | Path) -> Confidence | None:
        """The folder's ``confidence.json``, or None when it has none; ValueError when it is damaged."""
        path = Path(folder) / CONFIDENCE_FILE
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("format") != FORMAT or data.get("method") != "platt":
                raise ValueError(f"format {data.get('format')!r}, method {data.get('method')!r}")
            return cls(threshold_margin=data["threshold_margin"], slope=data["slope"],
                       intercept=data["intercept"], fitted_on=str(data.get("fitted_on", "")),
                       figures=dict(data.get("figures") or {}), shown_slope=data.get("shown_slope"),
                       shown_intercept=data.get("shown_intercept"))
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise ValueError(f"{path} is not a {FORMAT} file ({err}): run `qa calibrate-reader` again, "
                             f"or delete it to use the reader's uncalibrated confidence") from err


def _sigmoid(z: float) -> float:
    """The logistic function, without overflow."""
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))
