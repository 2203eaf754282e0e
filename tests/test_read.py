"""Tests for qa.reader.read: loading, validation, windowing, vectorised decoding and offsets."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from qa.reader.read import DEFAULT_READER, DEFAULT_THRESHOLD, MAX_ANSWER_TOKENS, Reader
from qa.reader.spans import decode, uncalibrated_confidence
from qa.schema import Hit, Passage, Span

SOURCE_TEXT = (
    "Preface line.\n\n"
    "The lighthouse on Kerrow Point was built in 1871 by the harbour board. Its lamp burned whale oil "
    "until 1903, when paraffin replaced it. The keeper, Ann Tullis, kept a log of every ship.\n\n"
    "In winter the causeway floods twice a day, so supplies came by boat from Malden."
)


def _passages(text: str = SOURCE_TEXT, source: str = "doc.txt") -> list[Passage]:
    """Split a text at blank lines into passages with true source offsets."""
    out, pos = [], 0
    for i, block in enumerate(text.split("\n\n")):
        start = text.index(block, pos)
        out.append(Passage(id=f"{source}#{i}", source=source, start=start, end=start + len(block),
                           text=block))
        pos = start + len(block)
    return out


@pytest.fixture(scope="module")
def reader(tiny_model_dir: Path) -> Reader:
    """The public Reader over the tiny model, warmed up once."""
    r = Reader(model=tiny_model_dir, threshold=0.0)
    r.warm_up()
    return r


def _check_span(span: Span, passages: list[Passage], source_text: str) -> None:
    """A span's text is the exact slice of its passage and of its source."""
    passage = next(p for p in passages if p.id == span.passage_id)
    assert passage.start <= span.start < span.end <= passage.end
    assert span.text == passage.text[span.start - passage.start : span.end - passage.start]
    assert source_text[span.start : span.end] == span.text
    assert span.source == passage.source
    assert 0.0 <= span.score <= 1.0


# --- light tests: no model -------------------------------------------------------------------------


def test_import_is_light() -> None:
    code = "import sys, qa.reader.read; print('torch' in sys.modules or 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_constants() -> None:
    assert DEFAULT_READER.name == "reader_model"
    assert 0.0 < DEFAULT_THRESHOLD < 1.0
    assert MAX_ANSWER_TOKENS == 22


def test_missing_folder_says_what_to_do(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(ValueError, match="qa train-reader") as err:
        Reader(model=missing)
    assert str(missing) in str(err.value)


def test_folder_without_config(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="config.json"):
        Reader(model=tmp_path)


@pytest.mark.parametrize(
    "kwargs",
    [{"threshold": 1.5}, {"threshold": -0.1}, {"threshold": True}, {"max_answer_tokens": 0},
     {"max_length": 8}, {"stride": 370}, {"stride": -1}, {"batch_size": 0}, {"batch_size": 2.0}],
)
def test_bad_arguments(tiny_model_dir: Path, kwargs: dict) -> None:
    with pytest.raises(ValueError):
        Reader(model=tiny_model_dir, **kwargs)


def test_bad_model_type() -> None:
    with pytest.raises(TypeError):
        Reader(model=42)  # type: ignore[arg-type]


def test_hub_id_is_not_checked_as_folder() -> None:
    r = Reader(model="someone/some-qa-model")
    assert r.name == "someone/some-qa-model"
    assert r.model is None  # nothing loaded before first use


# --- tiny model -------------------------------------------------------------------------------------


def test_name_threshold_and_lazy_load(tiny_model_dir: Path) -> None:
    r = Reader(model=tiny_model_dir, threshold=0.25)
    assert r.name == "tiny-qa"
    assert r.threshold == 0.25
    assert r.model is None
    r.warm_up()
    assert r.model is not None


def test_read_validates(reader: Reader) -> None:
    ps = _passages()
    with pytest.raises(ValueError, match="empty"):
        reader.read("   ", ps)
    with pytest.raises(TypeError):
        reader.read(None, ps)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        reader.read("Who?", ps, top_n=0)
    with pytest.raises(TypeError):
        reader.read("Who?", ["plain string"])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        reader.read("Who?", ps[0])  # type: ignore[arg-type]


def test_empty_passages(reader: Reader) -> None:
    assert reader.read("Who kept the log?", []) == []
    blank = Passage(id="b", source="b.txt", start=0, end=3, text="   ")
    assert reader.read("Who kept the log?", [blank]) == []
    assert reader.answer("Who kept the log?", []) is None


def test_spans_are_exact_slices(reader: Reader) -> None:
    ps = _passages()
    spans = reader.read("Who kept a log of every ship?", ps, top_n=5)
    assert 1 <= len(spans) <= 5
    for span in spans:
        _check_span(span, ps, SOURCE_TEXT)
    scores = [s.score for s in spans]
    assert scores == sorted(scores, reverse=True)
    keys = {(s.passage_id, s.start, s.end) for s in spans}
    assert len(keys) == len(spans)


def test_hits_work_like_passages(reader: Reader) -> None:
    ps = _passages()
    hits = [Hit(passage=p, score=1.0 / (i + 1)) for i, p in enumerate(ps)]
    q = "When did paraffin replace whale oil?"
    assert reader.read(q, hits, top_n=3) == reader.read(q, ps, top_n=3)


def test_long_passage_uses_windows_and_batches_agree(tiny_model_dir: Path) -> None:
    words = [f"word{i}" for i in range(900)]
    text = "Intro. " + " ".join(words)
    doc = "x" * 50 + text  # the passage starts at offset 50 of its source
    p = Passage(id="long#0", source="long.txt", start=50, end=50 + len(text), text=text)
    one = Reader(model=tiny_model_dir, threshold=0.0, batch_size=1)
    many = Reader(model=tiny_model_dir, threshold=0.0, batch_size=32)
    one.warm_up()
    enc = one._encode("Which word?", [p])
    assert len(enc.ids) > 3  # several overlapping windows
    a = one.read("Which word?", [p], top_n=4)
    b = many.read("Which word?", [p], top_n=4)
    assert [(s.start, s.end, s.text) for s in a] == [(s.start, s.end, s.text) for s in b]
    for x, y in zip(a, b, strict=True):
        assert math.isclose(x.score, y.score, rel_tol=1e-4, abs_tol=1e-5)
    for span in a:
        _check_span(span, [p], doc)


def test_long_question_is_clipped(reader: Reader) -> None:
    q = "Who " + "really " * 400 + "kept the log?"
    spans = reader.read(q, _passages())
    assert spans and spans[0].text


def test_answer_applies_threshold(tiny_model_dir: Path) -> None:
    ps = _passages()
    q = "Who kept the log?"
    low = Reader(model=tiny_model_dir, threshold=0.0)
    high = Reader(model=tiny_model_dir, threshold=1.0)
    best = low.read(q, ps)[0]
    assert low.answer(q, ps) == best
    if best.score < 1.0:
        assert high.answer(q, ps) is None
    assert high.read(q, ps)[0] == best  # read always returns the best, even below threshold


def test_people_see_the_shown_map_while_spans_keep_theirs(tiny_model_dir: Path, tmp_path: Path) -> None:
    import shutil

    from qa.reader.confidence import Confidence

    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    q, ps = "Who kept the log?", _passages()
    bare = Reader(model=folder)
    span = bare.read(q, ps)[0]
    assert bare.shown(span) == span.score  # no confidence.json: people see the span's score
    conf = Confidence(threshold_margin=-1.0, slope=0.2, intercept=-1.0, shown_slope=0.2, shown_intercept=0.5)
    conf.save(folder)
    calibrated = Reader(model=folder)
    span = calibrated.read(q, ps)[0]
    assert span.margin is not None and span.score == pytest.approx(conf.probability(span.margin), abs=1e-6)
    assert calibrated.shown(span) == pytest.approx(conf.shown(span.margin))
    assert calibrated.shown(span) > span.score  # the use-mix map's intercept is higher
    assert calibrated.threshold == pytest.approx(conf.probability(-1.0)), "the threshold is the spans' map"


def _brute_force(reader: Reader, enc, start, end) -> tuple[float, int, int, int]:
    """Best (confidence, window, start token, end token) by looping over every pair, in plain Python."""
    best = (-1.0, -1, -1, -1)
    for j in range(len(enc.ids)):
        seq = enc.sequence_ids[j]
        null = float(start[j, 0] + end[j, 0])
        ctx = [k for k, s in enumerate(seq) if s == 1]
        spans = {(i, k): float(start[j, i] + end[j, k])
                 for i in ctx for k in ctx if i <= k < i + reader.max_answer_tokens}
        total = math.exp(null) + sum(math.exp(v) for v in spans.values())
        for (i, k), v in spans.items():
            p_span = math.exp(v) / total
            vs_null = 1.0 / (1.0 + math.exp(null - v))
            conf = math.sqrt(p_span * vs_null)
            if conf > best[0]:
                best = (conf, j, i, k)
    return best


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorised_decoding_matches_brute_force(tiny_model_dir: Path, seed: int) -> None:
    r = Reader(model=tiny_model_dir, threshold=0.0, max_length=40, stride=8, max_answer_tokens=5)
    r.warm_up()
    ps = _passages()
    enc = r._encode("Who kept the log?", ps)
    rng = np.random.default_rng(seed)
    n, w = len(enc.ids), max(len(x) for x in enc.ids)
    assert n > len(ps)  # some passages span several windows
    start = (rng.standard_normal((n, w)) * 3).astype(np.float32)
    end = (rng.standard_normal((n, w)) * 3).astype(np.float32)
    for j, ids in enumerate(enc.ids):
        start[j, len(ids):] = -math.inf
        end[j, len(ids):] = -math.inf
    spans = decode(enc, start, end, ps, top_n=3, max_answer_tokens=r.max_answer_tokens)
    conf, j, i, k = _brute_force(r, enc, start, end)
    p = ps[enc.passage[j]]
    offsets = enc.offsets[j]
    assert spans[0].start == p.start + offsets[i][0]
    assert spans[0].end == p.start + offsets[k][1]
    assert math.isclose(spans[0].score, conf, rel_tol=1e-4)
    assert len(spans) == 3
    for span in spans:
        _check_span(span, ps, SOURCE_TEXT)
        assert len(r.tokenizer.encode(span.text, add_special_tokens=False).ids) <= 5


def test_confidence_is_a_probability_and_comparable() -> None:
    # a window that clearly answers vs one that prefers "no answer": same span logit, different null
    span = np.array([[8.0], [8.0]])
    null = np.array([[0.0], [12.0]])
    lse = np.array([[8.0], [8.0]])
    conf = uncalibrated_confidence(span, null, lse)
    assert 0.9 < float(conf[0, 0]) <= 1.0 and float(conf[1, 0]) < 0.05
    # competing spans in the window lower the confidence
    crowded = uncalibrated_confidence(np.array([[8.0]]), np.array([[0.0]]), np.array([[10.0]]))
    assert float(crowded[0, 0]) < float(conf[0, 0])


def test_planted_answer_is_found(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    r = Reader(model=tiny_model_dir, threshold=0.5)
    r.warm_up()
    ps = _passages()
    target = ps[1].text.index("Ann Tullis")
    real = r._logits

    def planted(enc):
        start, end = real(enc)
        start, end = start.copy(), end.copy()
        for j in range(len(enc.ids)):
            if ps[enc.passage[j]] is not ps[1]:
                continue
            for t, (a, b) in enumerate(enc.offsets[j]):
                if enc.sequence_ids[j][t] == 1 and a == target:
                    start[j, t] = 50.0
                if enc.sequence_ids[j][t] == 1 and b == target + len("Ann Tullis"):
                    end[j, t] = 50.0
        return start, end

    monkeypatch.setattr(r, "_logits", planted)
    span = r.answer("Who was the keeper?", ps)
    assert span is not None and span.text == "Ann Tullis"
    assert span.passage_id == ps[1].id and span.score > 0.99
    _check_span(span, ps, SOURCE_TEXT)


def test_works_with_any_hf_qa_folder_layout(tiny_model_dir: Path) -> None:
    files = {p.name for p in tiny_model_dir.iterdir()}
    assert "config.json" in files and "model.safetensors" in files
    assert json.loads((tiny_model_dir / "config.json").read_text())["architectures"] == [
        "BertForQuestionAnswering"
    ]
    r = Reader(model=str(tiny_model_dir), threshold=0.0)
    assert r.read("Where did supplies come from?", _passages())


# --- the trained reader, when present -------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(not (DEFAULT_READER / "config.json").is_file(), reason="no trained reader yet")
def test_trained_reader_finds_an_obvious_answer() -> None:
    r = Reader()
    text = "Maria Lopez founded the bakery in 1998. It sells bread and cakes in the town of Velden."
    p = Passage(id="t#0", source="t.txt", start=0, end=len(text), text=text)
    span = r.read("In which year was the bakery founded?", [p])[0]
    assert "1998" in span.text
    _check_span(span, [p], text)


@pytest.mark.slow
@pytest.mark.skipif(not (DEFAULT_READER / "confidence.json").is_file(), reason="no calibrated reader yet")
def test_trained_reader_abstains_when_the_text_does_not_say() -> None:
    r = Reader()
    assert r.confidence is not None and r.threshold == pytest.approx(r.confidence.threshold)
    text = "Maria Lopez founded the bakery in 1998. It sells bread and cakes in the town of Velden."
    p = Passage(id="t#0", source="t.txt", start=0, end=len(text), text=text)
    assert r.answer("Who won the 2018 FIFA World Cup?", [p]) is None
    assert r.answer("Who founded the bakery?", [p]).text == "Maria Lopez"


def test_calibrated_confidence_comes_from_the_model_folder(tiny_model_dir: Path, tmp_path: Path) -> None:
    import shutil

    from qa.reader.confidence import Confidence

    folder = tmp_path / "calibrated"
    shutil.copytree(tiny_model_dir, folder)
    assert Reader(model=folder).confidence is None and Reader(model=folder).threshold == DEFAULT_THRESHOLD
    ps = _passages()
    margins = [s.margin for s in Reader(model=folder).read("Who kept the log?", ps, top_n=5)]
    conf = Confidence(threshold_margin=sorted(margins)[2], slope=0.8, intercept=-0.3)
    conf.save(folder)
    r = Reader(model=folder)
    assert r.confidence == conf and r.threshold == pytest.approx(conf.threshold)
    assert Reader(model=folder, threshold=0.1).threshold == 0.1  # an explicit threshold wins
    spans = r.read("Who kept the log?", ps, top_n=5)
    for s in spans:
        assert s.score == pytest.approx(conf.probability(s.margin), abs=1e-5)
        _check_span(s, ps, SOURCE_TEXT)
    assert [s.score for s in spans] == sorted((s.score for s in spans), reverse=True)
    best = spans[0]
    assert (r.answer("Who kept the log?", ps) is None) == (best.margin < conf.threshold_margin)
    (folder / "confidence.json").write_text("{}", encoding="utf-8")
    with pytest.raises(ValueError, match="calibrate-reader"):
        Reader(model=folder)


def test_onnx_backend_gives_the_transformers_answers(tiny_model_dir: Path) -> None:
    q = "Who kept the log?"
    ps = _passages()
    kw = {"threshold": 0.0, "max_length": 40, "stride": 8, "precision": "float32"}
    fast = Reader(model=tiny_model_dir, **kw)
    slow = Reader(model=tiny_model_dir, backend="transformers", **kw)
    a, b = fast.read(q, ps, top_n=5), slow.read(q, ps, top_n=5)
    assert (fast.engine, slow.engine) == ("onnx", "transformers")
    assert [(s.text, s.start, s.end) for s in a] == [(s.text, s.start, s.end) for s in b]
    assert all(math.isclose(x.score, y.score, rel_tol=1e-4, abs_tol=1e-6) for x, y in zip(a, b, strict=True))
    with pytest.raises(ValueError, match="backend"):
        Reader(model=tiny_model_dir, backend="torch")


def test_precision_is_checked_and_resolved(tiny_model_dir: Path) -> None:
    with pytest.raises(ValueError, match="precision"):
        Reader(model=tiny_model_dir, precision="fp8")
    with pytest.raises(ValueError, match="CPU only"):
        Reader(model=tiny_model_dir, precision="int8", device="cuda")
    with pytest.raises(ValueError, match="bfloat16 runs with backend='transformers'"):
        Reader(model=tiny_model_dir, precision="bfloat16", backend="onnx").warm_up()
    r = Reader(model=tiny_model_dir)
    assert r.precision == "auto"
    r.warm_up()
    assert (r.engine, r.precision) == ("onnx", "float32")
    r = Reader(model=tiny_model_dir, backend="transformers")
    r.warm_up()
    assert (r.engine, r.precision) == ("transformers", "float32")


@pytest.mark.parametrize("backend", ["auto", "transformers"])
@pytest.mark.parametrize("precision", ["float32", "bfloat16", "int8"])
def test_every_precision_gives_exact_slices(tiny_model_dir: Path, backend: str, precision: str) -> None:
    r = Reader(model=tiny_model_dir, threshold=0.0, max_length=40, stride=8, backend=backend,
               precision=precision)
    ps = _passages()
    spans = r.read("Who kept the log?", ps, top_n=3)
    assert r.precision == precision
    assert r.engine == ("onnx" if backend == "auto" and precision != "bfloat16" else "transformers")
    assert spans
    for span in spans:
        _check_span(span, ps, SOURCE_TEXT)


@pytest.mark.slow
@pytest.mark.skipif(not (DEFAULT_READER / "config.json").is_file(), reason="no trained reader yet")
@pytest.mark.parametrize("precision", ["bfloat16", "int8"])
def test_trained_reader_keeps_its_answer_at_lower_precision(precision: str) -> None:
    text = "Maria Lopez founded the bakery in 1998. It sells bread and cakes in the town of Velden."
    p = Passage(id="t#0", source="t.txt", start=0, end=len(text), text=text)
    exact = Reader(precision="float32").read("In which year was the bakery founded?", [p])[0]
    low = Reader(precision=precision).read("In which year was the bakery founded?", [p])[0]
    assert (low.start, low.end) == (exact.start, exact.end)
    assert abs(low.score - exact.score) < 0.05


def test_per_passage_gives_each_passages_best_span(reader: Reader) -> None:
    ps = _passages()
    every = reader.read("Who kept the log?", ps, top_n=10_000)
    per = reader.read("Who kept the log?", ps, top_n=len(ps), per_passage=True)
    assert len(per) == len(ps) and len({s.passage_id for s in per}) == len(ps)
    for span in per:  # each is the most confident of its passage's spans
        assert span == next(s for s in every if s.passage_id == span.passage_id)
        _check_span(span, ps, SOURCE_TEXT)
    assert [s.score for s in per] == sorted((s.score for s in per), reverse=True)
    assert reader.read("Who kept the log?", ps, top_n=1, per_passage=True) == per[:1]
    with pytest.raises(TypeError, match="per_passage"):
        reader.read("Who kept the log?", ps, per_passage="yes")  # type: ignore[arg-type]


