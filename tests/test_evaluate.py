"""Tests for qa.lab.squad and .evaluate: SQuAD metrics, loading, reader-only and pipeline evaluation."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from qa.lab.evaluate import THRESHOLDS, calibration, evaluate, lookalike_pairs
from qa.lab.squad import EvalItem, exact_match, f1, load_squad, negative_pairs, normalize_answer
from qa.schema import Answer, Hit, Passage, Span

EXPECTED_KEYS = {
    "questions", "exact_match", "f1", "has_answer_f1", "no_answer_accuracy", "false_abstentions",
    "recall_at_k", "latency_ms_p50", "latency_ms_p95", "best_f1", "best_f1_threshold", "no_abstention_f1",
    "answers_right", "answers_confidence_shown", "answers_uncertain",
}

CTX_A0 = "The mill on the river was built in 1820. It ground wheat for three villages."
CTX_A1 = "A flood in 1875 destroyed the wheel, and the miller, Tom Hale, rebuilt it in oak."
CTX_B0 = "Glass floats were used by fishermen to keep nets at the surface of the sea."


def _qa(qid: str, question: str, answers: list[tuple[str, str]], impossible: bool = False) -> dict:
    """One SQuAD question; answers are (text, context) pairs located in their context."""
    out: dict[str, Any] = {"id": qid, "question": question,
                           "answers": [{"text": t, "answer_start": c.index(t)} for t, c in answers]}
    if impossible:
        out["is_impossible"] = True
        out["answers"] = []
    return out


@pytest.fixture()
def squad_file(tmp_path: Path) -> Path:
    """A tiny SQuAD file: two articles, five answerable questions, one unanswerable."""
    data = {"version": "2.0", "data": [
        {"title": "Mill", "paragraphs": [
            {"context": CTX_A0, "qas": [
                _qa("q1", "When was the mill built?", [("1820", CTX_A0), ("in 1820", CTX_A0)]),
                _qa("q2", "What did the mill grind?", [("wheat", CTX_A0)]),
                _qa("q3", "Who owned the mill in 1900?", [], impossible=True),
            ]},
            {"context": CTX_A1, "qas": [
                _qa("q4", "Who was the miller?", [("Tom Hale", CTX_A1)]),
                _qa("q5", "What was the wheel rebuilt in?", [("oak", CTX_A1)]),
            ]},
        ]},
        {"title": "Floats", "paragraphs": [
            {"context": CTX_B0, "qas": [_qa("q6", "Who used glass floats?", [("fishermen", CTX_B0)])]},
        ]},
    ]}
    path = tmp_path / "tiny-squad.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


class FakeReader:
    """Answers from a fixed question -> (answer, score) table; anything else gets the first word."""

    def __init__(self, table: dict[str, tuple[str, float]], threshold: float = 0.5) -> None:
        self.table = table
        self.threshold = threshold
        self.calls: list[tuple[str, list[Passage]]] = []

    def read(self, question: str, passages: list[Passage], *, top_n: int = 1) -> list[Span]:
        """The table's answer when it stands in a passage, else the passage's first word at low score."""
        self.calls.append((question, list(passages)))
        text, score = self.table.get(question, ("", 0.1))
        for p in passages:
            if text and text in p.text:
                i = p.text.index(text)
                return [Span(text, score, p.start + i, p.start + i + len(text), p.source, p.id)]
        p = passages[0]
        word = p.text.split()[0]
        return [Span(word, 0.1, p.start, p.start + len(word), p.source, p.id)]

    def answer(self, question: str, passages: list[Passage]) -> Span | None:
        """The best span unless below threshold."""
        spans = self.read(question, passages)
        return spans[0] if spans[0].score >= self.threshold else None


TABLE = {
    "When was the mill built?": ("1820", 0.9),      # exact
    "What did the mill grind?": ("ground wheat", 0.8),  # partial: F1 2/3, EM 0
    "Who owned the mill in 1900?": ("", 0.1),        # unanswerable, abstains
    "Who was the miller?": ("Tom Hale", 0.95),      # exact
    "What was the wheel rebuilt in?": ("oak", 0.3),  # right but below threshold: false abstention
    "Who used glass floats?": ("nets", 0.7),         # wrong
}


# --- metrics -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "norm"),
    [
        ("The Quick, Brown Fox!", "quick brown fox"),
        ("  an apple a day  ", "apple day"),
        ("theater of the absurd", "theater of absurd"),  # articles only as whole words
        ("Denver Broncos", "denver broncos"),
        ("the  \n U.S.  ", "us"),
        ("A", ""),
    ],
)
def test_normalize_answer(raw: str, norm: str) -> None:
    assert normalize_answer(raw) == norm


def test_exact_match() -> None:
    assert exact_match("Denver Broncos", ["Denver Broncos", "Broncos"]) == 100.0
    assert exact_match("the denver broncos.", ["Denver Broncos"]) == 100.0
    assert exact_match("Broncos of Denver", ["Denver Broncos"]) == 0.0
    assert exact_match(None, ["x"]) == 0.0


def test_f1() -> None:
    assert f1("Denver Broncos", ["Denver Broncos"]) == 100.0
    assert f1("the cat sat", ["cat sat on mat"]) == pytest.approx(200 / 3)  # P 1, R 1/2
    # max over golds: P 4/5, R 1 against the second
    assert f1("cat sat on mat today", ["cat", "cat sat on mat"]) == pytest.approx(100 * 8 / 9)
    assert f1("dog", ["cat"]) == 0.0
    assert f1("the", ["a"]) == 0.0  # both normalise to nothing: no overlap (v1.1)
    assert f1(None, ["cat"]) == 0.0


def test_unanswerable_gold() -> None:
    assert exact_match(None, []) == 100.0 and f1(None, []) == 100.0
    assert exact_match("anything", []) == 0.0 and f1("anything", ()) == 0.0


def test_metric_argument_types() -> None:
    with pytest.raises(TypeError):
        f1("x", "x")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        exact_match(3, ["3"])  # type: ignore[arg-type]


# --- loading -------------------------------------------------------------------------------------------


def test_load_squad(squad_file: Path) -> None:
    items = load_squad(squad_file)
    assert [it.qid for it in items] == ["q1", "q2", "q3", "q4", "q5", "q6"]
    q1 = items[0]
    assert q1.answers == ("1820", "in 1820") and q1.title == "Mill" and q1.paragraph == 0
    assert q1.context[q1.answer_starts[0] :].startswith("1820")
    assert items[2].answers == () and not items[2].answerable
    assert (items[3].paragraph, items[3].article, items[5].article) == (1, 0, 1)
    assert items[3].name == "000-001.txt"
    with pytest.raises(Exception):  # noqa: B017 - frozen dataclass
        q1.qid = "x"  # type: ignore[misc]


def test_load_squad_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="write-validation"):
        load_squad(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{}", encoding="utf-8")
    with pytest.raises(ValueError, match="SQuAD"):
        load_squad(bad)


def test_import_is_light() -> None:
    code = "import sys, qa.lab.evaluate; print('torch' in sys.modules or 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- reader-only evaluation ----------------------------------------------------------------------------


def test_evaluate_reader_only(squad_file: Path) -> None:
    reader = FakeReader(TABLE)
    result = evaluate(squad_file, reader_only=True, top_k=3, reader=reader, progress=False)
    assert set(result) == EXPECTED_KEYS
    assert result["questions"] == 6
    # EM: q1, q3 (abstained), q4 -> 3/6; F1: 100 + 66.67 + 100 + 100 + 0 + 0
    assert result["exact_match"] == pytest.approx(50.0)
    assert result["f1"] == pytest.approx((300 + 200 / 3) / 6, abs=0.01)
    assert result["has_answer_f1"] == pytest.approx((200 + 200 / 3) / 5, abs=0.01)
    assert result["no_answer_accuracy"] == 100.0
    assert result["false_abstentions"] == pytest.approx(20.0)
    assert result["recall_at_k"] is None
    assert 0 <= result["latency_ms_p50"] <= result["latency_ms_p95"]
    # SQuAD 2.0's best threshold: answer q4 .95, q1 .9, q2 .8, q6 .7 (wrong), q5 .3; abstain on q3 (.1)
    assert result["best_f1"] == pytest.approx(100 * (1 + 1 + 2 / 3 + 0 + 1 + 1) / 6, abs=0.01)
    assert result["best_f1_threshold"] == 0.3
    assert result["no_abstention_f1"] == pytest.approx((300 + 200 / 3) / 6, abs=0.01)  # q3 answered: 0
    # answers given: q1, q2 (F1 67), q4 right, q6 wrong; a reader without a shown map shows its scores
    assert result["answers_right"] == 75.0 and result["answers_uncertain"] == 0
    assert result["answers_confidence_shown"] == pytest.approx(100 * (0.9 + 0.8 + 0.95 + 0.7) / 4, abs=0.01)
    # each question got exactly its own paragraph, named after it
    question, passages = reader.calls[3]
    assert question == "Who was the miller?"
    assert len(passages) == 1 and passages[0].text == CTX_A1 and passages[0].source == "000-001.txt"


def test_evaluate_rejects_bad_arguments(squad_file: Path) -> None:
    with pytest.raises(TypeError):
        evaluate(squad_file, reader_only="yes", reader=FakeReader(TABLE))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        evaluate(squad_file, reader_only=True, top_k=0, reader=FakeReader(TABLE))
    with pytest.raises(TypeError):
        evaluate(squad_file, reader_only=True, reader=object(), progress=False)


def test_evaluate_no_unanswerable_gives_none(tmp_path: Path) -> None:
    data = {"data": [{"title": "T", "paragraphs": [{"context": CTX_B0, "qas": [
        _qa("a", "Who used glass floats?", [("fishermen", CTX_B0)])]}]}]}
    path = tmp_path / "one.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    reader = FakeReader({"Who used glass floats?": ("fishermen", 1.0)})
    result = evaluate(path, reader_only=True, reader=reader, progress=False)
    assert result["no_answer_accuracy"] is None
    assert result["exact_match"] == 100.0 and result["false_abstentions"] == 0.0


# --- full pipeline with a fake chatbot -----------------------------------------------------------------


class FakeChatbot:
    """Reads the written paragraph files and 'retrieves' a chosen paragraph per question."""

    made: list[dict[str, Any]] = []

    def __init__(self, *, sources, index_dir, top_k, reader) -> None:
        FakeChatbot.made.append(
            {"sources": sources, "index_dir": index_dir, "top_k": top_k, "reader": reader}
        )
        (folder,) = sources
        self.files = {p.name: p.read_text(encoding="utf-8") for p in Path(folder).glob("*.txt")}
        self.reader = reader
        self.folder = Path(folder)

    def ask(self, question: str) -> Answer:
        """Answer from ``hits``, or abstain below the reader's threshold."""
        hits = self.hits(question)
        span = self.reader.answer(question, hits)
        if span is None:
            return Answer(question, None, 0.0, None, None, None, tuple(hits))
        return Answer(question, span.text, span.score, span.start, span.end, span.source, tuple(hits))

    def hits(self, question: str) -> list[Hit]:
        """Retrieve the wrong paragraph for the floats question and the right one otherwise."""
        want = {"Who used glass floats?": "000-000.txt"}.get(question)
        hits = []
        for name, text in sorted(self.files.items()):
            if want is None or name == want:
                # q4 gets the second half of its paragraph (holds its answer), q5 the first half (does not)
                start, end = 0, len(text)
                if name == "000-001.txt" and "miller" in question:
                    start = len(text) // 2
                if name == "000-001.txt" and "wheel" in question:
                    end = len(text) // 2
                p = Passage(id=f"{name}#0", source=str(self.folder / name), start=start, end=end,
                            text=text[start:end])
                hits.append(Hit(passage=p, score=1.0))
        return hits


class CandidateChatbot(FakeChatbot):
    """A fake chatbot that also tells its best span before abstaining, as ``Chatbot.candidate``."""

    def candidate(self, question: str) -> tuple[list[Hit], Span | None]:
        """The hits and the reader's best span among them."""
        hits = self.hits(question)
        return hits, self.reader.read(question, hits)[0]

    def reply(self, question: str, hits: list[Hit], best: Span | None) -> Answer:
        """``ask``'s answer from the candidate, showing another number than the span's score (a shown map)."""
        if best is None or best.score < self.reader.threshold:
            return Answer(question, None, 0.0, None, None, None, tuple(hits))
        return Answer(question, best.text, best.score / 2, best.start, best.end, best.source, tuple(hits))


def test_evaluate_full_pipeline_and_recall(squad_file: Path) -> None:
    FakeChatbot.made.clear()
    reader = FakeReader(TABLE)
    result = evaluate(squad_file, reader_only=False, top_k=4, reader=reader, chatbot_factory=FakeChatbot,
                      progress=False)
    assert set(result) == EXPECTED_KEYS
    (made,) = FakeChatbot.made
    assert made["top_k"] == 4 and made["reader"] is reader
    assert Path(made["index_dir"]).name == "index"
    # q1, q2, q4 recalled; q5's passage is the wrong half of its paragraph; q6's paragraph is missing
    assert result["recall_at_k"] == pytest.approx(60.0)
    assert result["questions"] == 6
    # the same answers as reader-only except q6: "nets" is not in the retrieved paragraph -> first word
    assert result["no_answer_accuracy"] == 100.0


def test_evaluate_full_pipeline_best_threshold(squad_file: Path) -> None:
    plain = evaluate(squad_file, reader_only=False, reader=FakeReader(TABLE), chatbot_factory=FakeChatbot,
                     progress=False)
    assert plain["best_f1"] is None and plain["no_abstention_f1"] is None  # no candidate() to ask
    result = evaluate(squad_file, reader_only=False, reader=FakeReader(TABLE),
                      chatbot_factory=CandidateChatbot, progress=False)
    # answered: q1 .9, q2 .8, q4 .95, q6's first word .1 (wrong paragraph); abstained: q3 .1, q5 (half) .1;
    # the threshold is in the spans' scores (what abstention compares), not the number the answers show
    assert result["best_f1_threshold"] == 0.8 and result["best_f1"] >= result["f1"]
    # the answers given (q1 .9, q2 .8 with F1 67, q4 .95: all right), shown at half the span's score each
    assert result["answers_right"] == 100.0 and result["answers_uncertain"] == 3
    assert result["answers_confidence_shown"] == pytest.approx(100 * (0.9 + 0.8 + 0.95) / 2 / 3, abs=0.01)
    assert result["best_f1"] == pytest.approx(100 * (1 + 2 / 3 + 1 + 1) / 6, abs=0.01)


def test_pipeline_files_hold_each_paragraph_once(squad_file: Path) -> None:
    seen: dict[str, str] = {}

    class Spy(FakeChatbot):
        def __init__(self, **kw: Any) -> None:
            super().__init__(**kw)
            seen.update(self.files)

    evaluate(squad_file, reader_only=False, reader=FakeReader(TABLE), chatbot_factory=Spy, progress=False)
    assert seen == {"000-000.txt": CTX_A0, "000-001.txt": CTX_A1, "001-000.txt": CTX_B0}


# --- calibration -------------------------------------------------------------------------------------


def test_negative_pairs_are_other_articles_and_deterministic(squad_file: Path) -> None:
    items = load_squad(squad_file)
    neg = negative_pairs(items)
    assert len(neg) == len(items)
    for it, n in zip(items, neg, strict=True):
        assert n.question == it.question and n.answers == () and n.title != it.title
    assert neg == negative_pairs(items)
    with pytest.raises(ValueError):
        negative_pairs([it for it in items if it.title == "Mill"])


def test_lookalike_pairs_are_the_closest_paragraph_of_another_article(squad_file: Path) -> None:
    items = load_squad(squad_file)
    pairs = lookalike_pairs(items)
    asked = {it.qid: it for it in items}
    assert [p.qid for p in pairs] == [f"{q}-lookalike" for q in ("q1", "q2", "q4", "q5", "q6")]
    for p in pairs:
        it = asked[p.qid.removesuffix("-lookalike")]
        assert p.question == it.question and p.answers == () and p.title != it.title
        assert not any(a.lower() in p.context.lower() for a in it.answers)
    # the glass-floats question gets a Mill paragraph; "mill" and "wheel" words make either a candidate
    assert pairs[-1].context in (CTX_A0, CTX_A1) and pairs[0].context == CTX_B0
    assert lookalike_pairs(items) == pairs
    assert lookalike_pairs([it for it in items if not it.answerable]) == []


def test_calibration(squad_file: Path) -> None:
    out = calibration(squad_file, FakeReader(TABLE), negatives=True)
    # 6 questions (5 answerable) + 6 random pairs + 5 look-alike pairs
    assert out["questions"] == 17 and out["answerable"] == 5 and out["unanswerable"] == 12
    assert out["lookalike"] == 5
    assert [r["threshold"] for r in out["thresholds"]] == list(THRESHOLDS)
    assert "F1" in out["right_means"]
    row = {r["threshold"]: r for r in out["thresholds"]}
    # right answers: q1 (0.9), q2 (0.8, F1 67), q4 (0.95), q5 (0.3); wrong: q6 (0.7) and every negative (0.1)
    assert row[0.5]["false_abstentions"] == pytest.approx(20.0)
    assert row[0.5]["no_answer_accuracy"] == 100.0 and row[0.5]["lookalike_no_answer_accuracy"] == 100.0
    assert row[0.05]["lookalike_no_answer_accuracy"] == 0.0
    assert row[0.5]["accuracy"] == pytest.approx(100 * (3 + 12) / 17, abs=0.01)
    assert row[0.25]["accuracy"] == pytest.approx(100 * (4 + 12) / 17, abs=0.01)
    assert out["best_threshold"] <= 0.3 and out["best_accuracy"] == pytest.approx(100 * 16 / 17, abs=0.01)
    table = {r["confidence_at_least"]: r for r in out["calibration"]}
    assert table[0.5]["answered"] == 4 and table[0.5]["right"] == pytest.approx(75.0)
    assert table[0.9]["answered"] == 2 and table[0.9]["right"] == 100.0
    assert 0.0 <= out["brier"] <= 1.0
    bins = {r["from"]: r for r in out["reliability"]}
    assert sum(r["count"] for r in out["reliability"]) == 17 and bins[0.1]["count"] == 12  # the negatives
    assert bins[0.9]["count"] == 2 and bins[0.9]["right"] == 1.0
    # |0.1 - 0| x 12 (negatives) + |0.3 - 1| (q5) + |0.7 - 0| (q6) + |0.8 - 1| (q2) + |0.925 - 1| x 2
    assert out["ece"] == pytest.approx((1.2 + 0.7 + 0.7 + 0.2 + 0.15) / 17, abs=1e-3)


class MarginReader(FakeReader):
    """FakeReader whose spans carry a margin (the score on a logit scale), as the real reader's do."""

    def read(self, question: str, passages, **kw) -> list[Span]:
        spans = super().read(question, passages, **kw)
        return [Span(s.text, s.score, s.start, s.end, s.source, s.passage_id,
                     margin=math.log(s.score / (1 - s.score))) for s in spans]


def test_calibration_cross_validates_over_articles_when_asked(squad_file: Path) -> None:
    items, table, at = [], {}, (CTX_B0.index("fishermen"),)
    for a, title in enumerate(("Mill", "Floats", "Wheel")):
        for k in range(6):
            question = f"Question {k} about {title}?"
            if k < 4:  # answered right, with confidence
                items.append(EvalItem(f"{a}-{k}", question, CTX_B0, ("fishermen",), at, title, 0))
                table[question] = ("fishermen", 0.6 + 0.1 * k)
            else:  # unanswerable, answered with little confidence
                items.append(EvalItem(f"{a}-{k}", question, CTX_B0, (), (), title, 0))
                table[question] = ("glass", 0.2 + 0.1 * a)
    out = calibration(items, MarginReader(table), negatives=False, folds=3)
    validated = out["cross_validated"]
    assert validated["folds"] == 3 and validated["articles"] == 3
    assert sum(f["questions"] for f in validated["per_fold"]) == out["questions"] == 18
    assert validated["f1"]["mean"] == 100.0 and validated["false_abstentions"]["max"] == 0.0
    assert {"no_answer_accuracy", "ece"} <= set(validated)
    assert "cross_validated" not in calibration(items, MarginReader(table), negatives=False)
    with pytest.raises(ValueError, match="folds"):  # checked before any question is read
        calibration(items, None, folds=4)


def test_calibration_uses_a_files_own_unanswerables(squad_file: Path) -> None:
    out = calibration(squad_file, FakeReader(TABLE))  # q3 is unanswerable: no generated pairs
    assert (out["questions"], out["answerable"], out["unanswerable"], out["lookalike"]) == (6, 5, 1, 0)
    assert out["reader_threshold"] == 0.5


def test_calibration_accepts_items_without_negatives() -> None:
    item = EvalItem("x", "Who used glass floats?", CTX_B0, ("fishermen",), (CTX_B0.index("fishermen"),),
                    "Floats", 0)
    out = calibration([item], FakeReader({"Who used glass floats?": ("fishermen", 0.8)}), negatives=False)
    assert out["questions"] == 1 and out["unanswerable"] == 0
    assert out["thresholds"][0]["no_answer_accuracy"] is None


# --- compare-readers helpers (qa.lab.compare) -------------------------------------------------------------


def test_article_passages_keep_offsets() -> None:
    from qa.lab.compare import article_passages

    text = "Title\n\nFirst para one.\nStill first.\n\n\n  Second para.  \n\nThird.\n"
    ps = article_passages(text, "a.txt")
    assert [p.text for p in ps] == ["Title", "First para one.\nStill first.", "Second para.", "Third."]
    assert all(text[p.start : p.end] == p.text for p in ps)
    assert [p.id for p in ps] == ["a.txt#0", "a.txt#1", "a.txt#2", "a.txt#3"]


def test_top_passages_by_word_overlap() -> None:
    from qa.lab.compare import article_passages, top_passages

    text = f"{CTX_A0}\n\n{CTX_A1}\n\n{CTX_B0}"
    ps = article_passages(text, "a.txt")
    assert top_passages("Who used the glass floats for nets?", ps, k=1)[0].text == CTX_B0
    assert [p.id for p in top_passages("Unrelated zebra?", ps, k=2)] == ["a.txt#0", "a.txt#1"]


def test_squad_inputs_sample_is_fixed(squad_file: Path) -> None:
    from qa.lab.compare import squad_inputs

    a, b = squad_inputs(squad_file, 3), squad_inputs(squad_file, 3)
    assert [it.qid for it, _ in a] == [it.qid for it, _ in b] and len(a) == 3
    for it, (p,) in a:
        assert it.answerable and p.text == it.context and p.start == 0
    assert len(squad_inputs(squad_file, 100)) == 5  # answerable only


@pytest.mark.slow
def test_compare_readers_runs_on_a_tiny_model(squad_file: Path, tmp_path: Path, tiny_model_dir: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from qa.lab.compare import main

    article = tmp_path / "article.txt"
    article.write_text(f"{CTX_A0}\n\n{CTX_A1}\n\n{CTX_B0}\n", encoding="utf-8")
    rc = main(["--model", str(tiny_model_dir), "--questions", "3", "--validation", str(squad_file),
               "--article", str(article), "--article-questions", str(squad_file), "--threads", "1",
               "--readers", "onnx:float32,onnx:int8", "--json", "--report", str(tmp_path / "readers.md")])
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    assert "| ours-onnx-int8 |" in (tmp_path / "readers.md").read_text(encoding="utf-8")
    assert report["readers"] == ["ours-onnx-float32", "ours-onnx-int8", "haystack"]
    assert len(report["sets"]) == 2
    for rows in report["sets"].values():
        for name in ("ours-onnx-float32", "ours-onnx-int8", "haystack"):
            assert rows[name]["ms_p50"] > 0 and 0 <= rows[name]["f1"] <= 100
        assert rows["ours-onnx-float32"]["speedup_p50"] > 0 and "speedup_p50" not in rows["haystack"]
        assert 0 <= rows["ours-onnx-int8"]["same_best_span_as_haystack"] <= 100
    with pytest.raises(SystemExit):
        main(["--model", str(tiny_model_dir), "--readers", "onnx:fp8"])


def test_sample_questions_is_fixed_and_in_file_order(squad_file: Path) -> None:
    from qa.lab.squad import sample_questions

    items = load_squad(squad_file)
    three = sample_questions(items, 3)
    assert len(three) == 3 and three == sample_questions(items, 3)  # seeded
    assert [items.index(it) for it in three] == sorted(items.index(it) for it in three)  # file order
    assert sample_questions(items, 1000) == items
    with pytest.raises(ValueError, match="positive"):
        sample_questions(items, 0)


@pytest.mark.slow
def test_cli_calibration_prints_the_threshold_scan(squad_file: Path, tiny_model_dir: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from qa.cli import main

    v1 = squad_file.with_name("v1.json")  # the answerable questions only: pairs are generated
    data = json.loads(squad_file.read_text())
    for art in data["data"]:
        for para in art["paragraphs"]:
            para["qas"] = [q for q in para["qas"] if not q.get("is_impossible")]
    v1.write_text(json.dumps(data), encoding="utf-8")
    plot = squad_file.parent / "plots" / "reliability.png"
    rc = main(["eval", str(v1), "--calibration", "3", "--reader", str(tiny_model_dir), "--json",
               "--plot", str(plot)])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["answerable"] == 3 and out["unanswerable"] == 6 and out["lookalike"] == 3
    assert {r["threshold"] for r in out["thresholds"]} >= {0.25, 0.5}
    assert [row["confidence_at_least"] for row in out["calibration"]] == [0.5, 0.7, 0.9]
    assert 0 <= out["ece"] <= 1 and len(out["reliability"]) == 10
    assert plot.read_bytes()[:4] == b"\x89PNG"
    assert main(["eval", str(squad_file), "--plot", str(plot)]) == 2  # --plot needs --calibration
    assert "add --calibration" in capsys.readouterr().err
