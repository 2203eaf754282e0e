"""Tests for qa.lab.train and its parts: the split, the data mix, windows, labels, the schedule, resuming."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from qa.lab import distill, train, train_data, train_features, train_loop, train_negatives
from qa.reader.read import Reader
from qa.schema import Passage

CITIES = ["Aldon", "Brevik", "Corvale", "Dunmore", "Elster", "Fennick", "Garrow", "Holm"]


def _article(title: str, k: int) -> dict:
    """A small SQuAD-format article whose answers are city names."""
    paras = []
    for j in range(3):
        city = CITIES[(k + j) % len(CITIES)]
        context = (f"The {title} river rises in the hills. "
                   f"It flows through {city} before it reaches the sea. "
                   f"Fishermen in {city} sell eels at the market every morning.")
        start = context.index(city)
        paras.append({"context": context, "qas": [
            {"id": f"{title}-{j}", "question": f"Which town does the {title} river flow through?",
             "answers": [{"text": city, "answer_start": start}]},
        ]})
    return {"title": title, "paragraphs": paras}


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A data folder shaped like ../shared/data: a SQuAD file of 8 articles."""
    d = tmp_path / "data"
    (d / "squad").mkdir(parents=True)
    titles = ["Tay", "Avon", "Exe", "Ure", "Wye", "Cam", "Dee", "Fal"]
    data = {"version": "1.1", "data": [_article(t, k) for k, t in enumerate(titles)]}
    (d / train_data.SQUAD_FILE).write_text(json.dumps(data), encoding="utf-8")
    return d


ONLY_SQUAD = [f"{name}=0" for name in train_data.MIX if name != "squad-train"]


def test_split_holds_out_every_fourth_article_by_title(data_dir: Path, tmp_path: Path) -> None:
    training, validation = train_data.split_squad(data_dir)
    assert validation == ["Exe", "Wye"]  # sorted: Avon Cam Dee [Exe] Fal Tay Ure [Wye]
    assert not set(training) & set(validation) and len(training) + len(validation) == 8
    out = tmp_path / "val.json"
    assert train_data.write_validation_file(out, data_dir) == 6
    assert sorted(a["title"] for a in json.loads(out.read_text())["data"]) == validation


def test_parse_mix_overrides_and_checks() -> None:
    mix = train_data.parse_mix(["squad-train=2", "qa/covid-qa.json=0.5"])
    assert mix["squad-train"] == 2 and mix["qa/covid-qa.json"] == 0.5
    assert train_data.MIX["squad-train"] == 1.0  # the module default is untouched
    for bad in ["squad-train", "nope.json=1", "squad-train=x", "squad-train=-1"]:
        with pytest.raises(ValueError, match="--mix"):
            train_data.parse_mix([bad])


def test_training_examples_keep_validation_articles_out(data_dir: Path) -> None:
    exs = train_negatives.training_examples(data_dir, random.Random(0), train_data.parse_mix(ONLY_SQUAD))
    answered = [e for e in exs if e.answer]
    assert {e.qid.split("-")[0] for e in answered} == {"Avon", "Cam", "Dee", "Fal", "Tay", "Ure"}
    assert all(e.context[e.answer_start:e.answer_start + len(e.answer)] == e.answer for e in answered)
    assert all(e.group == "generated-negative" for e in exs if not e.answer)


def test_hard_negatives_pair_questions_with_look_alikes_of_other_documents(data_dir: Path) -> None:
    mix = train_data.parse_mix(ONLY_SQUAD)
    plain = train_negatives.training_examples(data_dir, random.Random(0), mix)
    same = train_negatives.training_examples(data_dir, random.Random(0), mix, hard_rate=0.0)
    assert same == plain  # as before
    exs = train_negatives.training_examples(data_dir, random.Random(0), mix, hard_rate=0.5)
    answered = [e for e in exs if e.answer]
    hard = [e for e in exs if e.group == "hard-negative"]
    assert len(hard) == len(answered) // 2  # every sampled question found a look-alike
    training_contexts = {e.context for e in answered}
    for h in hard:
        asked = next(e for e in answered if e.qid == h.qid.removesuffix("-hard"))
        assert h.question == asked.question and h.answer == "" and h.answer_start == -1
        assert h.context in training_contexts  # never a validation article's paragraph
        other_docs = {e.doc for e in answered if e.context == h.context}
        # its own article's other paragraphs (same river name) rank first but are not allowed
        assert asked.doc not in other_docs and asked.answer not in h.context


def _squad2(data_dir: Path) -> None:
    """Write a SQuAD 2.0 file beside the v1.1 one: each article gains one unanswerable question."""
    data = json.loads((data_dir / train_data.SQUAD_FILE).read_text())
    for art in data["data"]:
        art["paragraphs"][0]["qas"].append({
            "id": f"{art['title']}-none", "is_impossible": True, "answers": [],
            "question": f"Who named the {art['title']} river?",
            "plausible_answers": [{"text": "hills", "answer_start": 0}]})
    (data_dir / train_data.SQUAD2_FILE).write_text(json.dumps(data), encoding="utf-8")


def test_squad2_unanswerables_of_training_articles_only(data_dir: Path, tmp_path: Path) -> None:
    _squad2(data_dir)
    mix = train_data.parse_mix([*ONLY_SQUAD, "squad-train=0", "squad2-train-unanswerable=1"])
    pool = train_data.training_pools(data_dir, mix)["squad2-train-unanswerable"]
    assert sorted(e.qid for e in pool) == [f"{t}-none" for t in ("Avon", "Cam", "Dee", "Fal", "Tay", "Ure")]
    assert all(e.answer == "" and e.answer_start == -1 and e.doc.startswith("squad-train/") for e in pool)
    assert train_data.write_validation_file(tmp_path / "v2.json", data_dir, squad2=True) == 8  # 2 x 4
    v2 = json.loads((tmp_path / "v2.json").read_text())
    assert v2["version"] == "v2.0" and {a["title"] for a in v2["data"]} == {"Exe", "Wye"}


def test_same_document_negatives_are_other_paragraphs_of_the_article(data_dir: Path) -> None:
    mix = train_data.parse_mix(ONLY_SQUAD)
    exs = train_negatives.training_examples(data_dir, random.Random(0), mix, same_document_rate=1.0)
    answered = [e for e in exs if e.answer]
    same = [e for e in exs if e.group == "same-document-negative"]
    assert len(same) == len(answered)  # each article has other paragraphs without the answer's city
    for neg in same:
        asked = next(e for e in answered if e.qid == neg.qid.removesuffix("-same-document"))
        assert neg.question == asked.question and neg.answer == "" and neg.doc == asked.doc
        assert neg.context != asked.context and asked.answer not in neg.context
        assert any(e.doc == asked.doc and e.context == neg.context for e in answered)


def test_swap_negatives_change_one_name_of_the_question() -> None:
    context = ("The Normans conquered Sicily in 1091. Later, in 1130, Roger II was crowned king of "
               "Sicily. Robert Guiscard led the campaign against Bari.")
    asked = train_data.Example("q", "When did the Normans conquer Sicily?", context, "1091",
                          context.index("1091"), "squad-train", "squad-train/Normans")
    (neg,) = train_negatives.swap_negatives([asked], [asked], random.Random(0))
    assert neg.answer == "" and neg.context == context and neg.group == "swap-negative"
    names = ("Robert Guiscard", "Roger II", "Bari")  # outside the answer's sentence
    assert neg.question in {f"When did the {n} conquer Sicily?" for n in names} | {
        f"When did the Normans conquer {n}?" for n in names}
    assert train_negatives.mentions("Suddenly, Tesla left in 1884 with 3 men.") == [
        ("name", "Tesla", 10), ("year", "1884", 24), ("number", "3", 34)]
    nothing = train_data.Example("n", "When did they conquer it?", context, "1091", context.index("1091"),
                                 "s", "d")
    assert train_negatives.swap_negatives([nothing], [nothing], random.Random(0)) == []


def test_antonym_negatives_turn_a_word_of_the_answers_sentence_into_its_opposite() -> None:
    context = "Velden is the largest town of the valley. The smallest one is Orth, founded before 1200."
    asked = train_data.Example("q", "What is the largest town of the valley?", context, "Velden", 0, "s", "d")
    (neg,) = train_negatives.antonym_negatives([asked], random.Random(0))
    assert neg.question == "What is the smallest town of the valley?" and neg.answer == ""
    assert neg.context == context and neg.group == "antonym-negative"
    both = train_data.Example("b", "Which town is larger or smaller?",
                              "Orth is larger than Velden and smaller than Aldon.", "Velden", 26, "s", "d")
    assert train_negatives.antonym_negatives([both], random.Random(0)) == []  # the opposite stands there too
    antonyms = train_negatives.ANTONYMS
    assert all(w in antonyms[o] for w, opposites in antonyms.items() for o in opposites)


def test_mixed_loss_distils_answers_and_keeps_gold_no_answer() -> None:
    import torch

    torch.manual_seed(0)
    start, end = torch.randn(2, 6), torch.randn(2, 6)
    batch = {"start_positions": torch.tensor([2, 0]), "end_positions": torch.tensor([3, 0]),
             "attention_mask": torch.ones(2, 6, dtype=torch.long)}
    t_start, t_end = torch.randn(2, 6), torch.randn(2, 6)
    gold = torch.nn.functional.cross_entropy
    ce = (gold(start, batch["start_positions"], reduction="none")
          + gold(end, batch["end_positions"], reduction="none")) / 2
    kd = distill.distill_loss(start, end, t_start, t_end, batch["attention_mask"], reduction="none")
    assert kd.mean().item() == pytest.approx(
        distill.distill_loss(start, end, t_start, t_end, batch["attention_mask"]).item(), rel=1e-5)
    both = distill.mixed_loss(start, end, batch, t_start, t_end, weight=0.5)
    assert both.item() == pytest.approx((0.5 * ce + 0.5 * kd).mean().item(), rel=1e-5)
    kept = distill.mixed_loss(start, end, batch, t_start, t_end, weight=0.5, gold_no_answer=True)
    assert kept.item() == pytest.approx(((0.5 * ce[0] + 0.5 * kd[0]) + ce[1]).item() / 2, rel=1e-5)


def test_featurize_labels_point_at_the_answer(data_dir: Path, tiny_model_dir: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers import AutoTokenizer

    monkeypatch.setattr(train_features, "MAX_LENGTH", 32)  # several windows per paragraph
    monkeypatch.setattr(train_features, "STRIDE", 8)
    monkeypatch.setattr(train_features, "NEGATIVE_WINDOW_RATE", 1.0)
    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    mix = train_data.parse_mix(ONLY_SQUAD)
    exs = [e for e in train_negatives.training_examples(data_dir, random.Random(0), mix) if e.answer]
    feats = train_features.featurize(exs, tok, random.Random(0))
    assert len(feats) > len(exs)  # long contexts were split into windows
    labelled = [f for f in feats if f["start"]]
    assert labelled and all(len(f["input_ids"]) <= 32 for f in feats)
    for f in labelled:
        text = tok.decode(f["input_ids"][f["start"]:f["end"] + 1])
        assert text.capitalize() in CITIES


def test_featurize_takes_the_window_length_and_stride(data_dir: Path, tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    mix = train_data.parse_mix(ONLY_SQUAD)
    exs = [e for e in train_negatives.training_examples(data_dir, random.Random(0), mix) if e.answer]
    short = train_features.featurize(exs, tok, random.Random(0), max_length=32, stride=8)
    whole = train_features.featurize(exs, tok, random.Random(0), max_length=128, stride=32)
    assert max(len(f["input_ids"]) for f in short) <= 32 < max(len(f["input_ids"]) for f in whole)
    with pytest.raises(ValueError, match="stride"):
        train_features.featurize(exs, tok, random.Random(0), max_length=32, stride=16)


def test_distill_loss_compares_distributions_over_real_tokens_only() -> None:
    import torch

    torch.manual_seed(0)
    teacher = torch.randn(2, 6), torch.randn(2, 6)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])
    same = distill.distill_loss(teacher[0], teacher[1], teacher[0], teacher[1], mask)
    assert same.item() == pytest.approx(0.0, abs=1e-6)
    other = distill.distill_loss(torch.randn(2, 6), torch.randn(2, 6), *teacher, mask)
    assert other.item() > 0.01
    padded = teacher[0].clone(), teacher[1].clone()
    padded[0][1, 4:] = 50.0  # what the student says on padding does not count
    assert distill.distill_loss(*padded, *teacher, mask).item() == pytest.approx(0.0, abs=1e-6)


def test_teacher_logits_are_the_teachers_mean_and_are_kept(data_dir: Path, tiny_model_dir: Path,
                                                          tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    exs = train_negatives.training_examples(data_dir, random.Random(0), train_data.parse_mix(ONLY_SQUAD))
    feats = train_features.featurize(exs, tok, random.Random(0), max_length=48, stride=8)
    other = _other_teacher(tiny_model_dir, tmp_path / "other-teacher")
    start, end, offsets = distill.teacher_logits(feats, [str(tiny_model_dir), str(other)], tok.pad_token_id)
    assert len(offsets) == len(feats) + 1 and len(start) == len(end) == offsets[-1]
    f = feats[-1]
    ids = torch.tensor([f["input_ids"]])
    with torch.no_grad():
        types = torch.tensor([f["token_type_ids"]])
        outs = [AutoModelForQuestionAnswering.from_pretrained(str(m))(input_ids=ids, token_type_ids=types)
                for m in (tiny_model_dir, other)]
    mean = (outs[0].start_logits + outs[1].start_logits)[0] / 2
    assert torch.allclose(torch.tensor(start[offsets[-2]:]), mean, atol=1e-4)

    work = tmp_path / "work"
    work.mkdir()
    distill.attach_teacher(feats, work, [str(tiny_model_dir)], tok.pad_token_id, device="cpu", bf16=False)
    assert (work / "teacher-logits.npz").is_file()
    assert all(len(f["t_start"]) == len(f["input_ids"]) == len(f["t_end"]) for f in feats)
    batch = train_features.collate(feats[:3], tok.pad_token_id)
    assert batch["t_start"].shape == batch["input_ids"].shape
    with pytest.raises(SystemExit, match="delete it"):  # kept logits of other teachers are not reused
        distill.attach_teacher(feats, work, [str(other)], tok.pad_token_id, device="cpu", bf16=False)


def test_schedule_and_budget() -> None:
    assert train_loop.lr_factor(0, 100, 0.1) == pytest.approx(0.1)
    assert train_loop.lr_factor(9, 100, 0.1) == pytest.approx(1.0)
    assert train_loop.lr_factor(55, 100, 0.1) == pytest.approx(0.5)
    assert train_loop.lr_factor(100, 100, 0.1) == 0.0
    assert train_loop.steps_in_budget(70, 10_000, 10.0, 60.0, 20.0) == 70 + 1000
    assert train_loop.steps_in_budget(70, 500, 10.0, 60.0, 20.0) == 500  # never more than asked
    assert train_loop.steps_in_budget(70, 10_000, 90.0, 60.0, 20.0) == 70  # over budget: stop now
    with pytest.raises(ValueError, match="speed"):
        train_loop.steps_in_budget(70, 100, 1.0, 60.0, 0.0)


@pytest.mark.slow
def test_a_time_budget_is_sized_again_during_the_run(data_dir: Path, tiny_model_dir: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture) -> None:
    import torch

    clock = iter(range(10**6))  # every look at the clock is one second later: a slow, steady device
    monkeypatch.setattr(train_loop.time, "time", lambda: float(next(clock)))
    monkeypatch.setattr(train_loop, "PROBE_FROM", 2)
    monkeypatch.setattr(train_loop, "PROBE_STEPS", 4)
    monkeypatch.setattr(train_loop, "RESIZE_EVERY", 4)
    args = _train_args(data_dir, tiny_model_dir, tmp_path / "w", tmp_path / "out")
    args[args.index("--max-steps") + 1] = "400"
    train.main([*args, "--epochs", "40", "--minutes", "1", "--save-every", "1000", "--log-every", "1000"])
    sizings = [line for line in capsys.readouterr().out.splitlines() if "min budget at step" in line]
    assert [line.split()[5] for line in sizings[:2]] == ["4", "8"]  # sized, then sized again
    assert "repeat with --max-steps" in sizings[-1]
    done = torch.load(tmp_path / "w" / "checkpoint.pt", weights_only=True)
    assert done["step"] == done["total"] < 400  # the budget, not the step limit, ended the run


def _train_args(data_dir: Path, base: Path, work: Path, out: Path) -> list[str]:
    return ["--data-dir", str(data_dir), "--base", str(base), "--work-dir", str(work), "--out", str(out),
            "--max-steps", "4", "--batch-size", "2", "--save-every", "2", "--threads", "1", "--lr", "1e-3",
            "--mix", *ONLY_SQUAD]


def _weights(work: Path) -> dict:
    import torch

    return torch.load(work / "checkpoint.pt", weights_only=True)["model"]


@pytest.mark.slow
def test_training_resumes_after_an_interruption_as_if_never_stopped(
        data_dir: Path, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    whole, broken = tmp_path / "whole", tmp_path / "broken"
    train.main(_train_args(data_dir, tiny_model_dir, whole, tmp_path / "out-whole"))

    real_collate, calls = train_features.collate, []

    def collate_then_crash(batch: list[dict], pad_id: int):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # stopped during step 3; the checkpoint of step 2 is on disk
        return real_collate(batch, pad_id)

    monkeypatch.setattr(train_loop, "collate", collate_then_crash)
    with pytest.raises(KeyboardInterrupt):
        train.main(_train_args(data_dir, tiny_model_dir, broken, tmp_path / "out-broken"))
    assert torch.load(broken / "checkpoint.pt", weights_only=True)["step"] == 2
    monkeypatch.setattr(train_loop, "collate", real_collate)
    train.main(_train_args(data_dir, tiny_model_dir, broken, tmp_path / "out-broken"))

    assert (whole / "features.jsonl").read_bytes() == (broken / "features.jsonl").read_bytes()  # seeded
    a, b = _weights(whole), _weights(broken)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    start = _weights(whole)["qa_outputs.weight"]
    assert not torch.equal(start, torch.zeros_like(start))

    # The output is a save_pretrained folder that the reader loads like any QA model.
    out = tmp_path / "out-broken"
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
    text = "The Dee river rises in the hills. It flows through Brevik before it reaches the sea."
    p = Passage(id="t#0", source="t.txt", start=0, end=len(text), text=text)
    span = Reader(model=out, threshold=0.0).read("Which town does the Dee river flow through?", [p])[0]
    assert text[span.start:span.end] == span.text


def _other_teacher(tiny_model_dir: Path, folder: Path) -> Path:
    """The tiny model with a fresh span head: a teacher that disagrees with it."""
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    torch.manual_seed(1)
    model = AutoModelForQuestionAnswering.from_pretrained(str(tiny_model_dir))
    model.qa_outputs.reset_parameters()
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(str(tiny_model_dir)).save_pretrained(folder)
    return folder


@pytest.mark.slow
def test_distillation_moves_the_student_towards_the_teacher(data_dir: Path, tiny_model_dir: Path,
                                                           tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForQuestionAnswering

    teacher = _other_teacher(tiny_model_dir, tmp_path / "teacher")
    work, out = tmp_path / "work", tmp_path / "out"
    args = _train_args(data_dir, tiny_model_dir, work, out)
    args[args.index("--max-steps") + 1] = "12"
    train.main([*args, "--teacher", str(teacher), "--distill-weight", "1", "--max-length", "64",
                "--stride", "16"])
    assert max(len(json.loads(line)["input_ids"]) for line in (work / "features.jsonl").open()) <= 64
    feats = [json.loads(line) for line in (work / "features.jsonl").open()]
    distill.attach_teacher(feats, work, [str(teacher)], 0, device="cpu", bf16=False)  # the kept logits
    batch = train_features.collate(feats, 0)

    def gap(model_dir: Path) -> float:
        with torch.no_grad():
            o = AutoModelForQuestionAnswering.from_pretrained(str(model_dir))(
                input_ids=batch["input_ids"], token_type_ids=batch["token_type_ids"],
                attention_mask=batch["attention_mask"])
        return distill.distill_loss(o.start_logits, o.end_logits, batch["t_start"], batch["t_end"],
                                  batch["attention_mask"]).item()

    assert gap(out) < 0.8 * gap(tiny_model_dir)


def test_average_weighs_like_models_and_refuses_unlike_ones(tiny_model_dir: Path, tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForQuestionAnswering, BertConfig, BertForQuestionAnswering

    other = _other_teacher(tiny_model_dir, tmp_path / "other")
    train.main(["--average", str(tiny_model_dir), str(other), "--weights", "1", "3",
                "--out", str(tmp_path / "avg")])
    a, b, avg = (AutoModelForQuestionAnswering.from_pretrained(str(m)).qa_outputs.weight
                 for m in (tiny_model_dir, other, tmp_path / "avg"))
    assert not torch.allclose(a, b)
    assert torch.allclose(avg.float(), (a + 3 * b) / 4, atol=1e-3)
    wide = tmp_path / "wide"
    BertForQuestionAnswering(BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1,
                                        num_attention_heads=2, intermediate_size=32)).save_pretrained(wide)
    with pytest.raises(ValueError, match="architecture"):
        train_loop.average([str(tiny_model_dir), str(wide)], [1.0, 1.0], tmp_path / "bad")
    with pytest.raises(ValueError, match="one weight each"):
        train_loop.average([str(tiny_model_dir), str(other)], [1.0], tmp_path / "bad")


def test_bad_options_are_refused_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    for bad in (["--mix", "nope.json=1"], ["--minutes", "-1"], ["--hard-negatives", "2"],
                ["--teacher", str(tmp_path / "none")], ["--distill-weight", "2"], ["--stride", "200"]):
        with pytest.raises(SystemExit):
            train.main([*bad, "--work-dir", str(tmp_path / "w")])
        assert bad[0] in capsys.readouterr().err
    assert not (tmp_path / "w").exists()


def test_training_without_data_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="data folder not found"):
        train.main(["--data-dir", str(tmp_path / "missing"), "--work-dir", str(tmp_path / "w")])


def test_answer_lengths_and_percentiles(data_dir: Path, tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    ex = train_data.Example("q", "Who?", "Ada Lovelace wrote it.", "Ada Lovelace", 0, "g")
    none = train_data.Example("n", "Who?", "Nobody.", "", -1, "generated-negative")
    assert train_features.answer_lengths([ex, none], tok) == [len(tok.tokenize("Ada Lovelace"))]
    assert train_features.answer_lengths([none], tok) == []
    values = list(range(1, 101))
    assert [train_features.percentile(values, q) for q in (1, 50, 99, 100)] == [1, 50, 99, 100]
    assert train_features.percentile([7], 99) == 7
    with pytest.raises(ValueError, match="no answers"):
        train_features.percentile([], 50)
    with pytest.raises(ValueError, match="percentage"):
        train_features.percentile(values, 0)
    lines = train_features.report_answer_lengths(data_dir, tok, train_data.parse_mix(ONLY_SQUAD))
    assert len(lines) == 1 and lines[0].startswith("squad-train: 18 answers, tokens p50 ")


def test_answer_lengths_command_prints_a_line_per_set(data_dir: Path, tiny_model_dir: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    train.main(["--data-dir", str(data_dir), "--base", str(tiny_model_dir), "--answer-lengths",
                "--mix", *ONLY_SQUAD])
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "p99" in out[0] and "max" in out[0]


def test_freeze_keeps_the_embeddings_and_lower_layers_fixed(tiny_model_dir: Path) -> None:
    import torch
    from transformers import AutoModelForQuestionAnswering

    model = AutoModelForQuestionAnswering.from_pretrained(str(tiny_model_dir))
    assert len(train_loop.freeze(model, 0)) == len(list(model.parameters()))
    trainable = train_loop.freeze(model, 1)  # the tiny model has 2 layers
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    assert names and all(n.startswith(("bert.encoder.layer.1.", "qa_outputs.")) for n in names)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.AdamW(trainable, lr=1e-2)
    ids = torch.tensor([[101, 2054, 102, 1996, 2158, 102]])
    out = model(input_ids=ids, start_positions=torch.tensor([3]), end_positions=torch.tensor([4]))
    out.loss.backward()
    opt.step()
    for n, p in model.named_parameters():
        assert torch.equal(p, before[n]) == (n not in names), n
