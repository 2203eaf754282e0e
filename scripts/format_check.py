"""The seed article as text, PDF and Word: the same questions answered from each, F1 side by side.

Run ``python scripts/format_check.py`` from the repository root. It writes the article as a PDF
(fpdf2, four paragraphs a page) and a .docx (python-docx) in a temporary folder, builds a chatbot over
each file alone (the default embedder, reader and retrieval) and asks every question of
``../shared/data/article_dev.json``; an unanswerable question counts 100 when the chatbot abstains. It
prints F1, exact match and the seconds from adding the file to the first answer, per format. Then
it times what the chat window does with a PDF of ``--pages`` pages of SQuAD paragraphs (real models,
``qa.chat.library``): seconds from adding it to its first answer.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from qa.chat.chatbot import DEFAULT_SOURCES, Chatbot  # noqa: E402
from qa.lab.report import report_arg  # noqa: E402
from qa.lab.squad import exact_match, f1, load_squad  # noqa: E402

QUESTIONS = REPO.parent / "shared" / "data" / "article_dev.json"


def write_pdf(path: Path, paragraphs: list[str], *, per_page: int, font_size: int, line_height: int,
              gap: int) -> None:
    """A PDF of ``paragraphs``, ``per_page`` to a page (fpdf2's latin-1 core font)."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=font_size)
    for i, para in enumerate(paragraphs):
        if i % per_page == 0:
            pdf.add_page()
        pdf.multi_cell(0, line_height, para.encode("latin-1", "replace").decode("latin-1"))
        pdf.ln(gap)
    pdf.output(str(path))


def write_formats(text: str, folder: Path) -> dict[str, Path]:
    """The article as .txt, .pdf and .docx files in ``folder``."""
    import docx

    paragraphs = [p for p in text.split("\n\n") if p.strip()]
    txt = folder / "article.txt"
    txt.write_text(text, encoding="utf-8")
    write_pdf(folder / "article.pdf", paragraphs, per_page=4, font_size=11, line_height=6, gap=4)
    document = docx.Document()
    for para in paragraphs:
        document.add_paragraph(para)
    document.save(str(folder / "article.docx"))
    return {"txt": txt, "pdf": folder / "article.pdf", "docx": folder / "article.docx"}


def score(path: Path, items: list, index_dir: Path) -> dict[str, float]:
    """F1 and exact match over ``items`` answered from ``path`` alone, and the time to the first answer."""
    t0 = time.perf_counter()
    bot = Chatbot(sources=[path], index_dir=index_dir, log=lambda m: None)
    f1s, ems = [], []
    first = None
    for item in items:
        answer = bot.ask(item.question)
        first = first if first is not None else time.perf_counter() - t0
        golds = list(item.answers)
        if not golds:  # unanswerable: right only when it abstains
            f1s.append(100.0 * answer.abstained)
            ems.append(100.0 * answer.abstained)
        else:
            f1s.append(f1(answer.text, golds))
            ems.append(exact_match(answer.text, golds))
    n = len(items)
    return {"f1": round(sum(f1s) / n, 2), "exact_match": round(sum(ems) / n, 2),
            "seconds_to_first_answer": round(first or 0.0, 2)}


def time_large_pdf(pages: int, folder: Path) -> dict[str, float]:
    """Seconds to add a ``pages``-page PDF to a session (``qa.chat.library``), answer one question."""
    from qa.chat.library import Library

    data = json.loads((REPO.parent / "shared" / "data" / "squad" / "squad-v1.1-dev-40.json")
                      .read_text(encoding="utf-8"))
    paragraphs = [p["context"] for a in data["data"] for p in a["paragraphs"]][:3 * pages]
    write_pdf(folder / "large.pdf", paragraphs, per_page=3, font_size=10, line_height=5, gap=3)
    chars = sum(len(p) for p in paragraphs)
    base = Chatbot(index_dir=folder / "base-index", log=lambda m: None)
    base.warm_up()
    library = Library(base=base, root=folder / "sessions")
    t0 = time.perf_counter()
    library.add_files("s", [folder / "large.pdf"])
    added = time.perf_counter() - t0
    library.bot_for("s").ask(data["data"][0]["paragraphs"][0]["qas"][0]["question"])
    first = time.perf_counter() - t0
    library.wait("s")  # the full index, built in the background, before the folder goes
    return {"pages": pages, "characters": chars, "seconds_to_add": round(added, 2),
            "seconds_to_first_answer": round(first, 2),
            "seconds_to_full_index": round(time.perf_counter() - t0, 2),
            "passages": len(library.bot_for("s").index.passages)}


def main(argv: list[str] | None = None) -> int:
    """Print the table (or one JSON object)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--questions", default=str(QUESTIONS), help="SQuAD-format questions about the article")
    p.add_argument("--pages", type=int, default=20, help="pages of the PDF timed as an upload (0: skip)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--report", default=None, metavar="MD", type=report_arg,
                   help="also write the figures as a Markdown report (and a .json beside it)")
    args = p.parse_args(argv)
    items = load_squad(args.questions)
    text = (DEFAULT_SOURCES[0] / "article.txt").read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory() as tmp:
        files = write_formats(text, Path(tmp))
        result: dict = {kind: score(path, items, Path(tmp) / f"index-{kind}") for kind, path in files.items()}
        if args.pages:
            result["upload"] = time_large_pdf(args.pages, Path(tmp))
    result["questions"] = len(items)
    if args.json:
        print(json.dumps(result))
    else:
        for kind in ("txt", "pdf", "docx"):
            r = result[kind]
            print(f"{kind:>5}: F1 {r['f1']:6.2f}  exact match {r['exact_match']:6.2f}  "
                  f"first answer after {r['seconds_to_first_answer']} s")
        print(f"({len(items)} questions)")
        if "upload" in result:
            u = result["upload"]
            print(f"a {u['pages']}-page PDF ({u['characters']:,} characters, {u['passages']} passages) "
                  f"added in "
                  f"{u['seconds_to_add']} s, first answer after {u['seconds_to_first_answer']} s "
                  f"(full index after {u['seconds_to_full_index']} s)")
    if args.report:
        from qa.lab import report

        body = "## Figures\n\n" + report.figures(result)
        path = report.write(args.report, title="Documents as text, PDF and Word", kind="formats",
                            result=result, sections=[body],
                            command=["python", "scripts/format_check.py",
                                     *(argv if argv is not None else sys.argv[1:])])
        print(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
