"""Pure formatting for the chat UI: answers, errors and status lines as small HTML fragments.

The chat window renders these fragments as sanitized HTML (``gr.Chatbot(render_markdown=False)``),
so nothing here is interpreted as Markdown or LaTeX. Every piece of text that comes from a user
or a document goes through :func:`escape` (``html.escape`` plus line breaks): a ``<script>`` in a
question or passage shows up as text, never as markup. The answer span is highlighted by its
offsets (``answer.start``/``answer.end`` relative to the cited passage), never by searching the
passage for the answer string, so the right occurrence is marked even when the words repeat.

No gradio import here: these functions are unit-tested on their own (tests/test_format.py).
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Sequence

from qa.schema import UNCERTAIN_PREFIX, Answer, Hit

ABSTAIN_TEXT = "The article does not say."
GENERIC_ERROR = "Something went wrong while answering. Please try again."
#: The confidence's tooltip: what the number means (the shipped reader's is calibrated, qa.lab.calibrate).
CONFIDENCE_MEANS = "The estimated chance that this answer is right."

_NEWLINES = re.compile(r"\r\n|\r|\n")


def escape(text: str) -> str:
    """HTML-escape ``text`` (quotes included) and turn line breaks into ``<br>``."""
    return _NEWLINES.sub("<br>", html.escape(text, quote=True))


def highlight(text: str, start: int, end: int) -> str:
    """``text`` escaped, with ``text[start:end]`` wrapped in ``<mark>``.

    Offsets are clamped to the text; an empty or inverted range gives the escaped text unmarked.
    """
    start = max(0, min(int(start), len(text)))
    end = max(0, min(int(end), len(text)))
    if start >= end:
        return escape(text)
    return f"{escape(text[:start])}<mark>{escape(text[start:end])}</mark>{escape(text[end:])}"


def format_confidence(score: float | None) -> str:
    """``"Confidence: NN%"`` for a score in [0, 1] (clamped; never rounds up to a false 100%)."""
    if score is None or not math.isfinite(float(score)):
        return "Confidence: n/a"
    score = min(1.0, max(0.0, float(score)))
    if 0.0 < score < 0.005:
        pct = "<1%"
    elif 0.995 <= score < 1.0:
        pct = ">99%"
    else:
        pct = f"{round(score * 100)}%"
    return f"Confidence: {pct}"


def _contains(hit: Hit, answer: Answer) -> bool:
    """True when the answer span lies inside ``hit`` (same source, offsets within its range)."""
    if answer.start is None or answer.end is None or answer.source is None:
        return False
    return hit.source == answer.source and hit.start <= answer.start <= answer.end <= hit.end


def cited_hit_ids(answer: Answer) -> set[str]:
    """The ids of the passages in which the answer span is highlighted.

    The passage named by ``answer.passage_id`` when it holds the span; otherwise every passage of
    the same source whose range contains the span. Empty for an abstention.
    """
    if answer.abstained:
        return set()
    holders = [h for h in answer.passages if _contains(h, answer)]
    named = [h for h in holders if answer.passage_id is not None and h.id == answer.passage_id]
    return {h.id for h in (named or holders)}


def format_passage(hit: Hit, rank: int, answer: Answer | None = None, *, cited: bool = False) -> str:
    """One retrieved passage: its source named, its offsets and score, the text (span marked if cited)."""
    if cited and answer is not None and answer.start is not None and answer.end is not None:
        body = highlight(hit.text, answer.start - hit.start, answer.end - hit.start)
    else:
        body = escape(hit.text)
    tag = " · <strong>answer</strong>" if cited else ""
    meta = (
        f"[{rank}] <code>{escape(hit.citation)}</code> · chars {hit.start}–{hit.end}"
        f" · retrieval score {float(hit.score):.2f}{tag}"
    )
    return (
        f'<li class="qa-passage"><div class="qa-passage-meta"><small>{meta}</small></div>'
        f'<blockquote class="qa-passage-text">{body}</blockquote></li>'
    )


def format_passages(answer: Answer, hits: Sequence[Hit] | None = None) -> str:
    """The list of passages shown under an answer (all of ``answer.passages`` by default)."""
    hits = answer.passages if hits is None else hits
    if not hits:
        return '<p class="qa-no-passages"><em>No passages were retrieved.</em></p>'
    cited = cited_hit_ids(answer)
    items = "".join(format_passage(h, i, answer, cited=h.id in cited) for i, h in enumerate(hits, 1))
    return f'<ol class="qa-passages">{items}</ol>'


def format_context(answer: Answer) -> str:
    """The sentence the answer stands in, the answer in bold ("" when it is not known)."""
    context = answer.context
    if context is None or answer.start is None or answer.end is None or answer.context_start is None:
        return ""
    a, b = answer.start - answer.context_start, answer.end - answer.context_start
    return (f'<p class="qa-context">{escape(context[:a])}<b>{escape(context[a:b])}</b>'
            f'{escape(context[b:])}</p>')


def format_answer(answer: Answer) -> str:
    """The assistant's chat bubble for ``answer``.

    An answer reads: the answer in bold, the sentence it stands in (the answer in bold again),
    ``Confidence: NN%``, then the passages with the answer span marked in the one it came from. An
    abstention says plainly "The article does not say." and still lists the closest passages.
    """
    if answer.abstained:
        head = f'<p class="qa-reply qa-abstain"><strong>{escape(ABSTAIN_TEXT)}</strong></p>'
        label = "Closest passages:"
    else:
        # an answer likelier wrong than right says so first, and looks different
        possibly = f'<span class="qa-possibly">{escape(UNCERTAIN_PREFIX)}</span> '
        reply = f'<p class="qa-reply qa-uncertain">{possibly}' if answer.uncertain else '<p class="qa-reply">'
        head = (
            f'{reply}<strong>{escape(answer.text or "")}</strong></p>'
            f'{format_context(answer)}'
            f'<p class="qa-confidence" title="{escape(CONFIDENCE_MEANS)}">'
            f'{escape(format_confidence(answer.score))}</p>'
        )
        label = "Sources:"
    return (
        f'<div class="qa-answer">{head}'
        f'<p class="qa-sources-label"><small>{label}</small></p>{format_passages(answer)}</div>'
    )


def format_question(question: str) -> str:
    """The user's chat bubble: the question, escaped."""
    return f'<div class="qa-question">{escape(question)}</div>'


def format_error(message: str) -> str:
    """A clear, escaped error bubble (``message`` is shown as text; empty gives a generic one)."""
    message = (message or "").strip() or GENERIC_ERROR
    return f'<div class="qa-error"><strong>⚠️ Sorry:</strong> {escape(message)}</div>'


def status_line(description: str | None, *, ready: bool = True, concurrency: int | None = None) -> str:
    """The short line under the title: what is loaded (``bot.describe()``), escaped.

    ``ready=False`` says the bot is still loading; ``concurrency`` adds how many questions are
    answered at once.
    """
    text = (description or "").strip() or "no corpus description"
    state = "Ready" if ready else "Loading"
    extra = ""
    if concurrency:
        extra = f" · answers {concurrency} question{'s' if concurrency != 1 else ''} at a time"
    return f'<p class="qa-status"><small>{state}: {escape(text)}{escape(extra)}</small></p>'


def documents_added(names: Sequence[str]) -> str:
    """The status line after documents were added."""
    shown = ", ".join(names)
    return (f'<p class="qa-doc-added">Added {escape(shown)}: questions in this window now answer from '
            f'your documents.</p>')


def document_removed(name: str) -> str:
    """The status line after a document was removed."""
    return f'<p class="qa-doc-removed">Removed {escape(name)}.</p>'


def documents_line(names: Sequence[str]) -> str:
    """Which documents this window answers from."""
    if not names:
        return '<p class="qa-doc-list"><small>This window answers from the article above.</small></p>'
    return (f'<p class="qa-doc-list"><small>This window answers from: {escape(", ".join(names))}'
            f'</small></p>')
