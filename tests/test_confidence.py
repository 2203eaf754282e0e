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


def test_a_shown_map_is_stored_beside_the_spans_map(tmp_path: Path) -> None:
    spans_only = Confidence(threshold_margin=0.0, slope=0.5, intercept=-1.0)
    assert spans_only.shown(2.0) == spans_only.probability(2.0), "without a shown map, people see the spans'"
    assert "shown_slope" not in json.loads(spans_only.save(tmp_path).read_text())
    both = Confidence(threshold_margin=0.0, slope=0.5, intercept=-1.0, shown_slope=0.4, shown_intercept=0.3)
    both.save(tmp_path)
    assert Confidence.load(tmp_path) == both
    assert both.shown(2.0) == pytest.approx(1 / (1 + math.exp(-(0.4 * 2.0 + 0.3))))
    assert both.probability(2.0) == spans_only.probability(2.0) and both.threshold == spans_only.threshold
    with pytest.raises(ValueError, match="go together"):
        Confidence(threshold_margin=0.0, slope=0.5, intercept=-1.0, shown_slope=0.4)
    with pytest.raises(ValueError, match="shown_slope must be positive"):
        Confidence(threshold_margin=0.0, slope=0.5, intercept=-1.0, shown_slope=-0.4, shown_intercept=0.0)
    with pytest.raises(ValueError, match="shown_intercept must be a finite number"):
        Confidence(threshold_margin=0.0, slope=0.5, intercept=-1.0, shown_slope=0.4, shown_intercept=math.inf)
