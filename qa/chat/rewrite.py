"""A learned follow-up rewriter: candidates made from the conversation, ranked by weights learned from people.

"Did he tour?" after a conversation about Lea Salonga becomes "Did Lea Salonga tour?". Two steps, each
a choice among candidates that a linear model scores from their features (what was done, to which
pronoun, with a phrase from where in the conversation):

1. ``replacements``: the question unchanged, or one of its first two pronouns replaced by a phrase of
   the conversation (the topic's title, a name or short answer of an earlier turn), possessive when
   the pronoun is; or a word of the title standing alone made the whole title ("Kohli" -> "Virat Kohli").
2. ``additions``: the step-1 question unchanged, or with a phrase of the conversation (a name, the
   last answer's first words or its first clause) appended after a preposition ("What else did Sven
   Hedin do besides Adolf Hitler?").

Both choices also add a small bonus per word of a candidate (``Weights.length_bonus``): people's rewrites
are longer than the likeliest candidates. A bias on each step's unchanged candidate (``copy_bias`` in step 1,
``keep_bias`` in step 2) sets how readily a step changes the question.

The weights (``rewriter.json`` beside this file) are learned from people's rewrites of real follow-ups
(CANARD) by ``python -m qa.lab.train_rewriter``; ``qa eval CANARD_FILE --json`` measures them.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from qa.chat.followup import DEMONSTRATIVE, FUNCTION_WORDS, WH_WORDS, Turn, names

#: The shipped weights.
WEIGHTS_FILE = Path(__file__).with_name("rewriter.json")
#: The weights file's format version.
FORMAT = "qa-rewriter-1"
#: Pronouns a phrase can stand in for, and their kind.
PRONOUNS: Mapping[str, str] = {
    "he": "person", "she": "person", "him": "person", "his": "person_pos", "her": "person_her",
    "hers": "person_pos", "they": "plural", "them": "plural", "their": "plural_pos", "theirs": "plural_pos",
    "it": "neuter", "its": "neuter_pos",
}
#: Only this many of a question's pronouns are candidates for replacement.
MAX_PRONOUNS = 2
#: Phrases of the conversation considered as referents, at most.
MAX_PHRASES = 14
#: An answer of at most this many words can be a referent as a whole.
MAX_SHORT_ANSWER_WORDS = 8
#: Only the latest turns give referents.
RECENT_TURNS = 4
#: Prepositions an appended phrase may follow ("" appends it bare).
PREPOSITIONS = ("", "of ", "in ", "about ", "besides ", "after ", "for ", "during ", "with ")
#: Leading words of the last answer appended as context ("besides <the first 8 words>").
ANSWER_PREFIXES = (4, 8, 14, 30)
_SPLIT = re.compile(r"(\W+)")
_WORDS = re.compile(r"\w+")


@dataclass(frozen=True)
class Candidate:
    """One candidate rewrite and the names of its features."""

    text: str
    features: tuple[str, ...]


@dataclass(frozen=True)
class Rewrite:
    """A follow-up made self-contained, and how sure the rewriter is of it (0-1)."""

    question: str
    text: str
    confidence: float

    @property
    def changed(self) -> bool:
        """True when the rewrite differs from the question as asked by more than its tidying."""
        return self.text != tidy(self.question)


def title_base(title: str) -> str:
    """The title without its parenthesised qualifier: "Hugo (film)" -> "Hugo"."""
    return re.sub(r"\s*\(.*?\)\s*", " ", title).strip()


def phrases(topic: Sequence[str], history: Sequence[Turn]) -> list[tuple[str, str]]:
    """Referent candidates as (phrase, where from): the topic's title and section, then recent names."""
    out: list[tuple[str, str]] = []
    seen: set[str] = set()

    def add(text: str, source: str) -> None:
        text = text.strip().strip(",.;:")
        if text and text.lower() not in seen and len(text) < 80:
            seen.add(text.lower())
            out.append((text, source))

    if topic:
        title = topic[0]
        add(title, "title")
        base = title_base(title)
        add(base, "title_base")
        words = base.split()
        if len(words) >= 2:
            add(words[0], "title_first")
            add(words[-1], "title_last")
        if len(topic) > 1:
            add(topic[1], "section")
    for k, turn in enumerate(reversed(history[-RECENT_TURNS:])):
        age = min(k, 2)
        if turn.answer:
            for name in names(turn.answer)[:3]:
                add(name, f"ans_name{age}")
            short = turn.answer.strip().rstrip(".,")
            if 0 < len(short.split()) <= MAX_SHORT_ANSWER_WORDS:
                add(short, f"ans_short{age}")
        for name in names(turn.question)[:2]:
            add(name, f"q_name{age}")
    return out[:MAX_PHRASES]


def question_features(question: str, topic: Sequence[str], history: Sequence[Turn]) -> list[str]:
    """Features of the question itself, shared by all its candidates."""
    words = [w.lower() for w in _WORDS.findall(question)]
    out = [f"qlen={min(len(words), 12)}", "wh=" + (words[0] if words and words[0] in WH_WORDS else "other"),
           f"nturns={min(len(history), 4)}"]
    title_words = {w.lower() for w in _WORDS.findall(topic[0])} if topic else set()
    flags = {
        "q_has_title_word": bool(title_words & set(words)),
        "q_has_name": bool(names(question)),
        "q_has_pron": any(w in PRONOUNS for w in words),
        "q_has_dem": any(w in DEMONSTRATIVE for w in words),
        "q_else": "else" in words or "other" in words,
    }
    return out + [name for name, on in flags.items() if on]


def replacements(question: str, topic: Sequence[str], history: Sequence[Turn]) -> list[Candidate]:
    """Step 1: the question, and each of its first pronouns replaced by each referent candidate."""
    tokens = _SPLIT.split(question)  # words at even positions
    common = question_features(question, topic, history)
    out = [Candidate(question, ("op=copy", *(f"copy&{c}" for c in common)))]
    last_q = history[-1].question.lower() if history else ""
    last_a = (history[-1].answer or "").lower() if history else ""
    where = [i for i, t in enumerate(tokens) if i % 2 == 0 and t.lower() in PRONOUNS][:MAX_PRONOUNS]
    referents = phrases(topic, history) if where else []
    for nth, i in enumerate(where):
        kind = PRONOUNS[tokens[i].lower()]
        following = tokens[i + 2] if i + 2 < len(tokens) else ""
        for rank, (phrase, source) in enumerate(referents):
            if kind.endswith("_pos"):
                forms = [(f"{phrase}'s", "pos")]
            elif kind == "person_her":
                forms = [(f"{phrase}'s", "pos"), (phrase, "obj")]
            else:
                forms = [(phrase, "plain")]
            n_words = min(len(phrase.split()), 5)
            for text, form in forms:
                feats = [f"k={kind}", f"src={source}", f"k={kind}&src={source}", f"form={form}",
                         f"kind={kind}&form={form}", f"nw={n_words}", f"src={source}&nw={n_words}",
                         f"pi={nth}", f"rank={min(rank, 8)}"]
                if phrase[:1].isupper():
                    feats += ["cap", f"k={kind}&cap"]
                if phrase.lower() in last_q:
                    feats.append("in_lastq")
                if last_a and phrase.lower() in last_a:
                    feats.append("in_lasta")
                if kind == "person_her" and following[:1].islower():
                    feats.append(f"her_next_lower&form={form}")
                if " and " in phrase or phrase.endswith("s"):
                    feats.append(f"plurallike&k={kind}")
                rewritten = list(tokens)
                rewritten[i] = text
                out.append(Candidate("".join(rewritten), ("op=rep", *(f"rep&{f}" for f in feats + common))))
    return out + expansions(tokens, topic, common)


def expansions(tokens: Sequence[str], topic: Sequence[str], common: Sequence[str]) -> list[Candidate]:
    """Step 1 also: a word of the title standing alone in the question ("Kohli") made the whole title."""
    if not topic:
        return []
    base = title_base(topic[0])
    words = base.split()
    question = "".join(tokens)
    if len(words) < 2 or base.lower() in question.lower():
        return []
    lowered = [w.lower() for w in words]
    parts = {w: which for w, which in ((lowered[-1], "last"), (lowered[0], "first"))
             if w not in FUNCTION_WORDS}
    for i in range(0, len(tokens), 2):
        which = parts.get(tokens[i].lower())
        if which and not (i >= 2 and tokens[i - 2].lower() in lowered):  # "Le Pen" is not "Pen"
            following = tokens[i + 1] if i + 1 < len(tokens) else ""
            feats = [f"which={which}", "cap" if tokens[i][:1].isupper() else "lower",
                     "pos" if following.startswith("'") else "plain", f"nw={min(len(words), 4)}"]
            rewritten = list(tokens)
            rewritten[i] = base
            return [Candidate("".join(rewritten), ("op=exp", *(f"exp&{f}" for f in feats + list(common))))]
    return []


def additions(question: str, topic: Sequence[str], history: Sequence[Turn]) -> list[Candidate]:
    """Step 2: the question, and the question with a phrase of the conversation appended."""
    referents = [(p, s) for p, s in phrases(topic, history) if not s.startswith("ans_short")][:8]
    last = history[-1].answer if history else None
    if last:
        words = last.strip().rstrip(".").split()
        referents += [(" ".join(words[:n]), f"lasta{n}") for n in ANSWER_PREFIXES if len(words) > n]
        if len(words) <= ANSWER_PREFIXES[-1]:
            referents.append((" ".join(words), "lasta"))
        clause = re.split(r"[,;:.]\s", last.strip(), maxsplit=1)[0].rstrip(".").split()
        if 1 < len(clause) < len(words) and len(clause) <= ANSWER_PREFIXES[-2]:
            referents.append((" ".join(clause), "lasta_clause"))
    common = question_features(question, topic, history)
    out = [Candidate(question, ("op=none", *(f"none&{c}" for c in common)))]
    stem = re.sub(r"\s*[?.!]*\s*$", "", question)
    lowered = question.lower()
    for rank, (phrase, source) in enumerate(referents):
        present = phrase.lower() in lowered
        for prep in PREPOSITIONS:
            p = prep.strip() or "_"
            feats = [f"prep={p}", f"src={source}", f"prep={p}&src={source}",
                     f"nw={min(len(phrase.split()), 8)}",
                     f"rank={min(rank, 8)}", f"present={present}", f"present={present}&src={source}"]
            feats += [f"prep={p}&{c}" for c in common] + [f"src={source}&{c}" for c in common] + common
            out.append(Candidate(f"{stem} {prep}{phrase}?", ("op=app", *(f"app&{f}" for f in feats))))
    return out


def tidy(text: str) -> str:
    """A capital first letter and a question mark at the end, as people write a question."""
    text = text.strip()
    text = text[:1].upper() + text[1:]
    return text if text.endswith("?") else f"{text}?"


def softmax(scores: Sequence[float]) -> list[float]:
    """Probabilities from scores."""
    top = max(scores)
    exps = [math.exp(s - top) for s in scores]
    total = sum(exps)
    return [e / total for e in exps]


@dataclass(frozen=True)
class Weights:
    """Both steps' learned weights, a bias for leaving each step's question unchanged, a bonus per word.

    ``copy_bias`` is added to step 1's unchanged question and ``keep_bias`` to step 2's; ``length_bonus``
    to a candidate's score for each of its words, in both steps. People's rewrites are longer than what a
    choice fitted one question at a time gives (``rewrite_length_ratio`` in ``qa eval CANARD_FILE
    --json``), and corpus BLEU's brevity penalty counts length over the whole corpus, which no single
    question's label shows; the bonus and both biases are chosen together by cross-validation
    (``python -m qa.lab.train_rewriter ... --cv-only``).
    """

    replace: Mapping[str, float]
    add: Mapping[str, float]
    keep_bias: float = 0.0
    length_bonus: float = 0.0
    copy_bias: float = 0.0

    @classmethod
    def load(cls, path: str | Path = WEIGHTS_FILE) -> Weights:
        """Weights from a ``qa-rewriter-1`` JSON file; ValueError when it is not one."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ValueError(f"cannot read the rewriter weights {path} ({err}); "
                             f"retrain with python -m qa.lab.train_rewriter") from err
        try:
            if data.get("format") != FORMAT:
                raise ValueError(f"its format is not {FORMAT}")
            return cls({f: float(w) for f, w in data["replace"].items()},
                       {f: float(w) for f, w in data["add"].items()},
                       keep_bias=float(data.get("keep_bias", 0.0)),
                       length_bonus=float(data.get("length_bonus", 0.0)),
                       copy_bias=float(data.get("copy_bias", 0.0)))
        except (AttributeError, KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{path} is not a {FORMAT} weights file ({err}); "
                             f"retrain with python -m qa.lab.train_rewriter") from err

    def to_json(self, **about: object) -> str:
        """The weights as a ``qa-rewriter-1`` JSON document, with ``about`` (how they were made)."""
        rounded = {k: {f: round(w, 5) for f, w in sorted(v.items()) if abs(w) >= 1e-5}
                   for k, v in (("replace", self.replace), ("add", self.add))}
        decisions = {"copy_bias": self.copy_bias, "keep_bias": self.keep_bias,
                     "length_bonus": self.length_bonus}
        return json.dumps({"format": FORMAT, **about, **decisions, **rounded}, indent=0)


def score(weights: Mapping[str, float], candidate: Candidate) -> float:
    """A candidate's score: the sum of its features' weights."""
    return sum(weights.get(f, 0.0) for f in candidate.features)


def choose(weights: Mapping[str, float], candidates: Sequence[Candidate], *, keep_bias: float = 0.0,
           length_bonus: float = 0.0) -> tuple[Candidate, float]:
    """The best-scoring candidate and its softmax probability.

    ``keep_bias`` favours the first (unchanged) candidate; ``length_bonus`` is added per word of each.
    """
    scores = [score(weights, c) + length_bonus * len(_WORDS.findall(c.text)) for c in candidates]
    scores[0] += keep_bias
    probabilities = softmax(scores)
    best = max(range(len(candidates)), key=probabilities.__getitem__)
    return candidates[best], probabilities[best]


class Rewriter:
    """Makes follow-up questions self-contained with the learned weights (``warm_up`` loads them)."""

    def __init__(self, *, weights: Weights | str | Path | None = None) -> None:
        if weights is not None and not isinstance(weights, (Weights, str, Path)):
            raise TypeError("weights must be Weights or the path of a rewriter.json file")
        self._source = weights
        self.weights: Weights | None = weights if isinstance(weights, Weights) else None

    def warm_up(self) -> None:
        """Load the weights file, once."""
        if self.weights is None:
            source = self._source if self._source is not None else WEIGHTS_FILE
            self.weights = Weights.load(source)  # type: ignore[arg-type]

    def rewrite(self, question: str, history: Sequence[Turn], *, topic: Sequence[str] = ()) -> Rewrite:
        """The question made self-contained from the earlier turns (and the topic's title and section)."""
        if not history and not topic:
            return Rewrite(question, question, 1.0)
        self.warm_up()
        assert self.weights is not None
        bonus = self.weights.length_bonus
        first, p1 = choose(self.weights.replace, replacements(question, topic, history),
                           keep_bias=self.weights.copy_bias, length_bonus=bonus)
        second, p2 = choose(self.weights.add, additions(first.text, topic, history),
                            keep_bias=self.weights.keep_bias, length_bonus=bonus)
        return Rewrite(question, tidy(second.text), p1 * p2)
