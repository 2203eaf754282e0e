"""The reader's fitted confidence: its abstention threshold and margin-to-probability map, as data.

``qa calibrate-reader`` (``qa.lab.calibrate``) fits it and stores it beside the model's weights as plain
JSON (``confidence.json``); the reader loads it and turns each span's margin into a calibrated
probability of being right.
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

    def __post_init__(self) -> None:
        for name in ("threshold_margin", "slope", "intercept"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        if self.slope <= 0:
            raise ValueError(f"slope must be positive (a higher margin means a likelier answer), "
                             f"got {self.slope!r}")

    def probability(self, margin: float) -> float:
        """The probability that a span of this margin is a right answer."""
        z = self.slope * margin + self.intercept
        return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))

    @property
    def threshold(self) -> float:
        """The abstention threshold as a confidence: answer when the confidence reaches it."""
        return self.probability(self.threshold_margin)

    def save(self, folder: str | Path) -> Path:
        """Write ``confidence.json`` into a model folder; return its path."""
        path = Path(folder) / CONFIDENCE_FILE
        data = {"format": FORMAT, "method": "platt", **asdict(self)}
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
                       figures=dict(data.get("figures") or {}))
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise ValueError(f"{path} is not a {FORMAT} file ({err}): run `qa calibrate-reader` again, "
                             f"or delete it to use the reader's uncalibrated confidence") from err
