"""Training data for the reader: SQuAD-format files, the fixed split by article, the mix of sets."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parents[3] / "shared" / "data"
SQUAD_FILE = "squad/squad-v1.1-dev-40.json"
#: SQuAD 2.0 questions of 14 of those articles: the same answerable ones plus crowd-written unanswerable
#: ones (``is_impossible``); the same article split applies.
SQUAD2_FILE = "squad/squad-v2.0-dev-14.json"
#: Every VALIDATION_EVERY-th SQuAD article (sorted by title) is held out for validation.
VALIDATION_EVERY = 4
#: Training sets and how many times each one's questions are drawn per epoch (1.0 = all once); the
#: shipped reader's own commands are in reader_model/README.md.
MIX: dict[str, float] = {
    "squad-train": 1.0,
    "squad2-train-unanswerable": 0.0,
    "qa/squadshifts-new-wiki.json": 1.0,
    "qa/squadshifts-reddit.json": 0.5,
    "qa/squadshifts-amazon.json": 0.5,
    "qa/qed-train-part.json": 1.0,
    "qa/qed-dev.json": 1.0,
    "qa/tydiqa-goldp-en-train.json": 1.0,
    "qa/tydiqa-goldp-en-dev.json": 1.0,
    "qa/fairytaleqa-train.json": 0.5,
    "qa/fairytaleqa-val.json": 0.5,
    "qa/fairytaleqa-test.json": 0.5,
    "qa/covid-qa.json": 0.0,
    "qa/quoref-contrast.json": 1.0,
    "qa/ropes-contrast.json": 0.5,
    "qa/ropes-original.json": 0.5,
    "qa/duorc-part-a.json": 1.0,
    "qa/duorc-part-b.json": 1.0,
}


@dataclass(frozen=True)
class Example:
    """One question with its context and first gold answer (empty text: unanswerable)."""

    qid: str
    question: str
    context: str
    answer: str
    answer_start: int
    group: str
    doc: str = ""  # the document (article) the context belongs to


def read_squad(path: Path, group: str, *, unanswerable: bool = False,
               doc_group: str | None = None) -> list[tuple[str, list[Example]]]:
    """Read a SQuAD-format file as ``(title, examples)`` per article.

    The examples are its answerable questions, or (``unanswerable``) only its unanswerable ones,
    labelled with an empty answer. ``doc_group`` names the documents (``GROUP/TITLE``; default
    ``group``), so that two files holding the same articles name them alike.
    """
    data = json.loads(path.read_text(encoding="utf-8"))
    articles = []
    for i, art in enumerate(data["data"]):
        title = art.get("title") or f"{path.stem}-{i}"
        doc = f"{doc_group or group}/{title}"
        exs = []
        for para in art["paragraphs"]:
            for qa in para["qas"]:
                answers = qa.get("answers") or []
                impossible = bool(qa.get("is_impossible")) or not answers
                if impossible != unanswerable:
                    continue
                a = {"text": "", "answer_start": -1} if impossible else answers[0]
                exs.append(Example(str(qa["id"]), qa["question"].strip(), para["context"], a["text"],
                                   int(a["answer_start"]), group, doc))
        articles.append((title, exs))
    return articles


def split_squad(data_dir: Path = DATA_DIR) -> tuple[list[str], list[str]]:
    """Return the (training, validation) SQuAD article titles: every 4th by sorted title is held out."""
    data = json.loads((data_dir / SQUAD_FILE).read_text(encoding="utf-8"))
    titles = sorted(a["title"] for a in data["data"])
    val = [t for i, t in enumerate(titles) if i % VALIDATION_EVERY == VALIDATION_EVERY - 1]
    return [t for t in titles if t not in val], val


def write_validation_file(path: Path, data_dir: Path = DATA_DIR, *, squad2: bool = False) -> int:
    """Write the SQuAD validation articles to ``path``; return the question count.

    ``squad2``: the validation articles of the SQuAD 2.0 file, their unanswerable questions included.
    """
    data = json.loads((data_dir / (SQUAD2_FILE if squad2 else SQUAD_FILE)).read_text(encoding="utf-8"))
    _, val = split_squad(data_dir)
    arts = [a for a in data["data"] if a["title"] in set(val)]
    version = "v2.0" if squad2 else "1.1"
    path.write_text(json.dumps({"version": version, "data": arts}), encoding="utf-8")
    return sum(len(p["qas"]) for a in arts for p in a["paragraphs"])


def parse_mix(items: list[str]) -> dict[str, float]:
    """``MIX`` with ``NAME=WEIGHT`` overrides (``--mix squad-train=2``); unknown names raise ValueError."""
    mix = dict(MIX)
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or name not in MIX:
            raise ValueError(f"--mix takes NAME=WEIGHT with NAME one of {', '.join(MIX)}; got {item!r}")
        try:
            weight = float(value)
        except ValueError:
            raise ValueError(f"--mix weight must be a number, got {item!r}") from None
        if not 0 <= weight <= 10:
            raise ValueError(f"--mix weight must be between 0 and 10, got {item!r}")
        mix[name] = weight
    return mix


def training_pools(data_dir: Path, mix: dict[str, float]) -> dict[str, list[Example]]:
    """The examples of each set ``mix`` draws from (weight above 0); SQuAD: training articles only.

    Every set gives its answerable questions, but ``squad2-train-unanswerable``: the crowd-written
    unanswerable questions of the SQuAD 2.0 training articles.
    """
    train_titles = set(split_squad(data_dir)[0])
    pools: dict[str, list[Example]] = {}
    for name, weight in mix.items():
        if weight <= 0:
            continue
        if name == "squad2-train-unanswerable":
            articles = read_squad(data_dir / SQUAD2_FILE, name, unanswerable=True, doc_group="squad-train")
        else:
            articles = read_squad(data_dir / (SQUAD_FILE if name == "squad-train" else name), name)
        squad = name in ("squad-train", "squad2-train-unanswerable")
        pools[name] = [e for t, exs in articles if not squad or t in train_titles for e in exs]
    return pools
