"""Fine-tuning on some articles and measuring on the others (``python -m qa.lab.finetune_folds``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qa.lab import finetune_folds
from qa.lab.finetune_folds import article_examples, auc, separation
from qa.lab.squad import load_squad

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _squad2(path: Path) -> Path:
    """Four one-paragraph articles, each with two answerable and one unanswerable question."""
    data = []
    people = (("Ada", "1815"), ("Boris", "1902"), ("Clara", "1950"), ("Dmitri", "1977"))
    for n, (name, year) in enumerate(people):
        context = f"{name} was born in {year} in a small town. {name} studied music and later taught it."
        qas = [{"id": f"{n}a", "question": f"When was {name} born?", "is_impossible": False,
                "answers": [{"text": year, "answer_start": context.index(year)}]},
               {"id": f"{n}b", "question": f"What did {name} study?", "is_impossible": False,
                "answers": [{"text": "music", "answer_start": context.index("music")}]},
               {"id": f"{n}c", "question": f"When did {name} die?", "is_impossible": True, "answers": []}]
        data.append({"title": f"Article_{name}", "paragraphs": [{"context": context, "qas": qas}]})
    path.write_text(json.dumps({"version": "v2.0", "data": data}), encoding="utf-8")
    return path


def test_auc_counts_pairs_and_ties() -> None:
    rows = [(3.0, 100.0, True), (1.0, 0.0, True), (2.0, 0.0, False), (1.0, 0.0, False)]
    assert auc(rows) == pytest.approx((1 + 0 + 1 + 0.5) / 4)
    assert auc([(1.0, 100.0, True), (0.0, 0.0, False)]) == 1.0
    with pytest.raises(ValueError, match="answerable and unanswerable"):
        auc([(1.0, 100.0, True)])


def test_separation_reads_the_margin_that_withholds_the_given_share_of_answerable_questions() -> None:
    answerable = [(float(m), 100.0, True) for m in range(10)]  # margins 0..9, all right
    unanswerable = [(-1.0, 0.0, False), (0.5, 0.0, False), (5.0, 0.0, False), (20.0, 0.0, False)]
    figures = separation(answerable + unanswerable, max_false_abstentions=10)
    # The cut is margin 1: answerable 0 is withheld, and the unanswerable at -1 and 0.5.
    assert figures["no_answer_accuracy"] == 50.0
    assert figures["f1"] == round((9 * 100 + 2 * 100) / 14, 2)
    assert figures["answerable_f1"] == 100.0
    assert 0 < figures["auc"] < 1


def test_article_examples_keep_answers_and_label_unanswerable_questions(tmp_path: Path) -> None:
    items = load_squad(_squad2(tmp_path / "s.json"))
    examples = article_examples(items)
    assert len(examples) == 12
    for item, ex in zip(items, examples, strict=True):
        if item.answerable:
            assert ex.context[ex.answer_start:ex.answer_start + len(ex.answer)] == ex.answer
        else:
            assert (ex.answer, ex.answer_start) == ("", -1)
        assert ex.doc == item.title


@pytest.mark.slow
def test_each_fold_is_fine_tuned_on_the_other_articles_and_measured_on_its_own(
        tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture) -> None:
    squad = _squad2(tmp_path / "s.json")
    work = tmp_path / "work"
    argv = [str(squad), "--folds", "2", "--base", str(tiny_model_dir), "--work-dir", str(work),
            "--max-steps", "1", "--threads", "1"]
    if DATA.is_dir():  # the usual mix to replay, as the real command uses it
        argv += ["--data-dir", str(DATA), "--replay", "0.5", "--control"]
    else:
        argv += ["--replay", "0"]
    assert finetune_folds.main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["folds"], out["articles"], out["questions"]) == (2, 4, 12)
    readers = ["base", "fine_tuned"] + (["control"] if DATA.is_dir() else [])
    assert sorted(k for k in out if k in ("base", "fine_tuned", "control")) == sorted(readers)
    for name in readers:
        assert len(out[name]["per_fold"]) == 2
        assert 0 <= out[name]["auc"]["min"] <= out[name]["auc"]["max"] <= 1
    for fold in (0, 1):
        assert (work / f"fold{fold}" / "model" / "model.safetensors").is_file()
        assert (work / f"fold{fold}-control" / "model").is_dir() == DATA.is_dir()


def test_bad_options_are_refused_before_any_work(tmp_path: Path, tiny_model_dir: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    squad = _squad2(tmp_path / "s.json")
    for bad, says in ((["--folds", "1"], "folds"), (["--folds", "5"], "folds"),
                      (["--replay", "-1"], "--replay"), (["--replay", "0", "--control"], "--replay"),
                      (["--max-false-abstentions", "100"], "--max-false-abstentions"),
                      (["--base", str(tmp_path / "none")], "--base"),
                      (["--base", str(tiny_model_dir), "--data-dir", str(tmp_path / "none")], "--data-dir")):
        with pytest.raises(SystemExit):
            finetune_folds.main([str(squad), "--work-dir", str(tmp_path / "w"), *bad])
        assert says in capsys.readouterr().err
    (tmp_path / "used" / "fold0").mkdir(parents=True)
    with pytest.raises(SystemExit):
        finetune_folds.main([str(squad), "--base", str(tiny_model_dir), "--work-dir", str(tmp_path / "used")])
    assert "already holds fold0" in capsys.readouterr().err
    only_answerable = json.loads(squad.read_text(encoding="utf-8"))
    for article in only_answerable["data"]:
        article["paragraphs"][0]["qas"] = article["paragraphs"][0]["qas"][:2]
    (tmp_path / "v1.json").write_text(json.dumps(only_answerable), encoding="utf-8")
    with pytest.raises(SystemExit):
        finetune_folds.main([str(tmp_path / "v1.json"), "--work-dir", str(tmp_path / "w")])
    assert "lacks answerable or unanswerable" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        finetune_folds.main([str(tmp_path / "missing.json"), "--base", str(tiny_model_dir)])
    assert "no such SQuAD file" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()


def test_the_replay_is_the_shipped_runs_mix_or_the_usual_one() -> None:
    from qa.lab.train_data import MIX

    mix, rates = finetune_folds.replay_mix("shipped-run")
    assert set(mix) == set(MIX)
    assert mix["squad2-train-unanswerable"] == 1.0 and mix["squad-train"] == 0.3
    assert mix["qa/duorc-part-a.json"] == 0.0
    assert rates["antonym_rate"] == 1.0 and rates["swap_rate"] == 0.5
    assert finetune_folds.replay_mix("mix") == (dict(MIX), {})
