"""Each epoch's training examples: the mix drawn, plus unanswerable ones (random, look-alike, swap...)."""

from __future__ import annotations

import random
import re
from pathlib import Path

from qa.lab.train_data import MIX, Example, training_pools

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
