"""Write two-turn conversations made from SQuAD validation articles, as a ``qa-conversations-1`` file.

Run ``python scripts/make_conversations.py OUT_DIR`` from the repository root, then ``qa eval
OUT_DIR/squad-followups.json --json``. Each held-out SQuAD v1.1 article (``qa.lab.train_data.split_squad``)
is written to ``OUT_DIR/articles/`` as one text file, the corpus. A conversation is two questions about
the same paragraph where the second names the first one's answer: that mention is replaced by a pronoun
("it", "they" after a "who" question; "its" / "their" for a possessive), so the second question can only
be answered by reading the conversation; ``squad-followups-named.json`` holds the same conversations
with the name written out, the ceiling for resolving the pronoun. Only answers that look like names
(capitalised, no digits) are used. The gold answers are SQuAD's. No article or question of the
project's seed document is involved.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from qa.lab.train_data import DATA_DIR, SQUAD_FILE, split_squad  # noqa: E402

#: The first answer must be short enough to be what a pronoun stands for.
MAX_ANSWER_WORDS = 4


def follow_up(first_question: str, first_answer: str, second_question: str) -> str | None:
    """The second question with the first answer replaced by a pronoun, or None when it does not name it."""
    pattern = re.compile(rf"\b(the\s+)?{re.escape(first_answer)}(['’]s)?\b", re.IGNORECASE)
    match = pattern.search(second_question)
    if match is None or match.start() == 0:  # a pronoun at the start would change the question's form
        return None
    before = second_question[: match.start()]
    if before.rstrip().lower().endswith((" a", " an")) or before[-1:] in "\"'“‘":
        return None  # "an it", "the opening of \"it\"": not a mention a pronoun can replace
    who = first_question.lower().startswith(("who ", "whom "))
    pronoun = ("their" if who else "its") if match.group(2) else ("they" if who else "it")
    return second_question[: match.start()] + pronoun + second_question[match.end():]


def main(argv: list[str] | None = None) -> int:
    """Write the articles and the conversations file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="folder to write articles/ and squad-followups.json into")
    args = parser.parse_args(argv)
    out = Path(args.out)
    (out / "articles").mkdir(parents=True, exist_ok=True)
    data = json.loads((DATA_DIR / SQUAD_FILE).read_text(encoding="utf-8"))["data"]
    held_out = set(split_squad()[1])
    validation = [a for a in data if a["title"] in held_out]
    conversations: list[dict] = []
    named: list[dict] = []  # the same conversations with the name written out in the second question
    for article in validation:
        title = article["title"]
        (out / "articles" / f"{title}.txt").write_text(
            "\n\n".join(p["context"] for p in article["paragraphs"]) + "\n", encoding="utf-8")
        for k, para in enumerate(article["paragraphs"]):
            qas = [q for q in para["qas"] if q.get("answers")]
            for first in qas:
                answer = first["answers"][0]["text"].strip()
                if not answer[:1].isupper() or len(answer.split()) > MAX_ANSWER_WORDS \
                        or any(c.isdigit() for c in answer):
                    continue  # only names: a date or a number is not what "it" points back to
                for second in qas:
                    if second is first:
                        continue
                    golds = sorted({a["text"] for a in second["answers"]})
                    if any(answer.lower() in g.lower() for g in golds):
                        continue  # the pronoun would hide the answer itself
                    asked = follow_up(first["question"], answer, second["question"].strip())
                    if asked is None:
                        continue
                    for out_list, second_question in ((conversations, asked),
                                                      (named, second["question"].strip())):
                        out_list.append({
                            "id": f"{title}-{k}-{first['id']}-{second['id']}",
                            "turns": [
                                {"question": first["question"].strip(),
                                 "answers": sorted({a["text"] for a in first["answers"]})},
                                {"question": second_question, "answers": golds},
                            ],
                        })
                    break  # one follow-up per first question
    for name, convs in (("squad-followups.json", conversations), ("squad-followups-named.json", named)):
        (out / name).write_text(json.dumps({"version": "qa-conversations-1", "source": "articles",
                                            "conversations": convs}, indent=1), encoding="utf-8")
    print(f"{len(conversations)} conversations from {len(validation)} articles in {out}/squad-followups.json "
          f"({out}/squad-followups-named.json: the same with the name instead of the pronoun)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
