"""Tests for qa.reader.confidence: the fitted confidence map and its file."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from qa.reader import confidence
from qa.reader.confidence import Confidence


def test_confidence_file_round_trip_and_errors(tmp_path: Path) -> None:
    conf = Confidence(threshold_margin=1.5, slope=0.7, intercept=-0.2, fitted_on="x", figures={"ece": 0.03})
    assert Confidence.load(tmp_path) is None
    path = conf.save(tmp_path)
    assert json.loads(path.read_text())["format"] == confidence.FORMAT
    assert Confidence.load(tmp_path) == conf
    assert conf.threshold == pytest.approx(1 / (1 + math.exp(-(0.7 * 1.5 - 0.2))))
    assert conf.probability(-1000) == pytest.approx(0.0) and conf.probability(1000) == pytest.approx(1.0)
    path.write_text('{"format": "qa-confidence-1", "method": "platt", "slope": 1}', encoding="utf-8")
    with pytest.raises(ValueError, match="calibrate-reader"):
        Confidence.load(tmp_path)
    path.write_text("not json", encoding="utf-8")
    with pytest.raises(ValueError, match="confidence.json"):
        Confidence.load(tmp_path)
    with pytest.raises(ValueError, match="slope"):
        Confidence(threshold_margin=0.0, slope=-1.0, intercept=0.0)
    with pytest.raises(ValueError, match="finite"):
        Confidence(threshold_margin=math.nan, slope=1.0, intercept=0.0)
