"""The ``qa`` command: index, ask, chat, serve, eval, bench, compare-readers, train- and calibrate-reader."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from qa.chat.chatbot import (
    DEFAULT_INDEX_DIR,
    DEFAULT_MIN_SIMILARITY,
    DEFAULT_MODE,
    DEFAULT_TOP_K,
    MINILM_SIMILARITY_FLOOR,
    Chatbot,
)
from qa.extras import missing_extra, require
from qa.index.retrieve import MODES
from qa.ingest.sources import is_url
from qa.reader.read import DEFAULT_READER, PRECISIONS, Reader

#: Subcommands whose arguments the named module parses itself.
DELEGATED = {"bench": "qa.lab.bench", "compare-readers": "qa.lab.compare", "train-reader": "qa.lab.train",
             "calibrate-reader": "qa.lab.calibrate_reader", "report": "qa.lab.report"}

DATABASE_HELP = ("a PostgreSQL URL (postgresql://user@host/db, pgvector installed) to keep the index in, "
                 "shared with other qa processes; default: the QA_DATABASE_URL variable, else the local "
                 "index folder")
INDEX_DIR_HELP = f"index folder (default {DEFAULT_INDEX_DIR}; the QA_INDEX_DIR variable sets another)"


def _reader_args(p: argparse.ArgumentParser) -> None:
    """The reader's options."""
    p.add_argument("--reader", default=None, help="a Hugging Face QA model folder or hub id")
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="the reader's arithmetic (default auto: float32 through ONNX Runtime; int8 is faster "
                        "on CPUs with AVX512-VNNI, measure with `qa compare-readers`)")


def _floor_arg(p: argparse.ArgumentParser) -> None:
    """The similarity floor's option."""
    p.add_argument("--min-similarity", type=float, default=DEFAULT_MIN_SIMILARITY, metavar="COSINE",
                   help="abstain when the answer's passage is less similar to the question than this "
                        f"(default off; {MINILM_SIMILARITY_FLOOR} suits the bundled MiniLM, see README)")


def _reader_for(args: argparse.Namespace) -> Reader:
    """The reader the options ask for (not loaded yet)."""
    return Reader(model=args.reader or DEFAULT_READER, precision=args.precision,
                  log=lambda m: print(m, file=sys.stderr, flush=True))


def _private_urls_arg(p: argparse.ArgumentParser) -> None:
    """The option that lets web sources be loopback or private addresses."""
    p.add_argument("--allow-private-urls", action="store_true",
                   help="also fetch web addresses on this machine or its private network (localhost, "
                        "10.x, 192.168.x); off by default: never use it behind a public link")


def _corpus_args(p: argparse.ArgumentParser) -> None:
    """Options shared by the commands that open a corpus."""
    p.add_argument("--sources", nargs="+", default=None, metavar="PATH",
                   help="files or folders to answer from (default: the sources of the existing index, "
                        "else the bundled article)")
    p.add_argument("--index-dir", default=str(DEFAULT_INDEX_DIR), help=INDEX_DIR_HELP)
    p.add_argument("--database", default=os.environ.get("QA_DATABASE_URL") or None, metavar="URL",
                   help=DATABASE_HELP)
    _reader_args(p)
    p.add_argument("--top-k", type=int, default=DEFAULT_TOP_K, help="passages to read (default 3)")
    _floor_arg(p)
    p.add_argument("--mode", choices=MODES, default=DEFAULT_MODE, help="retrieval (default hybrid)")
    _private_urls_arg(p)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(prog="qa", description="Ask an article and get the exact answer.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("index", help="build or refresh the index")
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help="files or folders (default: the index's own sources, else the bundled article)")
    p.add_argument("--index-dir", default=str(DEFAULT_INDEX_DIR), help=INDEX_DIR_HELP)
    p.add_argument("--database", default=os.environ.get("QA_DATABASE_URL") or None, metavar="URL",
                   help=DATABASE_HELP)
    p.add_argument("--rebuild", action="store_true", help="re-embed everything")
    _private_urls_arg(p)

    p = sub.add_parser("ask", help="answer one question")
    p.add_argument("question")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    _corpus_args(p)

    p = sub.add_parser("chat", help="a conversation in the terminal (follow-ups, /sources, /clear)")
    _corpus_args(p)

    p = sub.add_parser("serve", help="start the Gradio chat app")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--share", action="store_true", help="ask Gradio for a public link")
    p.add_argument("--auth", default=None, metavar="USER:PASSWORD|@FILE",
                   help="require a login: @FILE reads USER:PASSWORD from a file, which keeps the password "
                        "out of the process list (or set QA_AUTH); strongly advised with --share")
    _corpus_args(p)

    p = sub.add_parser("eval", help="evaluate on a SQuAD v1.1/v2.0, conversations or CANARD-format JSON file")
    p.add_argument("file")
    p.add_argument("--reader-only", action="store_true", help="give each question its own context")
    p.add_argument("--calibration", type=int, default=0, metavar="N",
                   help="instead: a fixed sample of N questions, reader-only (a file without unanswerable "
                        "questions also pairs each with a random and a look-alike (BM25) paragraph of "
                        "another article as unanswerable); prints the threshold scan, the reliability "
                        "table and the expected calibration error")
    p.add_argument("--database", default=None, metavar="URL",
                   help="evaluate the whole pipeline with its index in this PostgreSQL database (a schema of "
                        "its own, dropped afterwards)")
    p.add_argument("--plot", default=None, metavar="PNG",
                   help="with --calibration: draw the reliability diagram into this PNG file")
    p.add_argument("--folds", type=int, default=None, metavar="K",
                   help="with --calibration: also cross-validate the abstention rule and the confidence map "
                        "with whole articles as K folds (mean and spread over the held-out folds)")
    p.add_argument("--top-k", type=int, default=DEFAULT_TOP_K)
    _reader_args(p)
    _floor_arg(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--report", default=None, metavar="MD",
                   help="also write the figures as a Markdown report (and a .json beside it; with "
                        "--calibration, the reliability diagram as a PNG), e.g. docs/eval-squad2.md")

    for name, module in DELEGATED.items():
        sub.add_parser(name, help=f"see `qa {name} --help` ({module})", add_help=False)
    return parser


def _sources_for(args: argparse.Namespace, given: list[str] | None = None) -> list[str] | None:
    """The sources to open: given ones, else those the index was built from, else the bundled article.

    Never swaps corpora behind the user's back: an index whose sources are gone, or a non-empty index
    folder without a readable manifest, is an error that says so, not a rebuild from the bundled article.
    """
    given = given if given is not None else getattr(args, "sources", None)
    if given:
        return list(given)
    if getattr(args, "database", None):
        return None  # the database's own corpus (the bundled article when it is empty)
    folder = Path(args.index_dir)
    from qa.index.store import recover_interrupted_swap, writer_lock

    say = lambda m: print(m, file=sys.stderr)  # noqa: E731
    if not folder.is_dir() and folder.parent.is_dir():  # an interrupted write may have left it aside
        with writer_lock(folder, say):
            recover_interrupted_swap(folder, say)
    if not folder.is_dir() or not any(folder.iterdir()):
        return None
    try:
        return _index_inputs(folder)
    except ValueError:
        if folder.resolve() == DEFAULT_INDEX_DIR.resolve():
            return None  # the default index is rebuilt from the bundled article
        raise


def _index_inputs(folder: Path) -> list[str]:
    """The files an index folder was built from; ValueError saying why when they cannot be used."""
    manifest = folder / "manifest.json"
    try:
        inputs = json.loads(manifest.read_text(encoding="utf-8")).get("inputs")
    except (OSError, ValueError, AttributeError) as err:
        raise ValueError(f"{folder} holds an index without a readable manifest.json ({err}); pass --sources "
                         f"to rebuild it from your documents, or use another --index-dir") from err
    if not isinstance(inputs, list) or not inputs:
        raise ValueError(f"{manifest} does not list the index's sources; pass --sources to rebuild it")
    missing = [str(p) for p in inputs if not is_url(p) and not Path(p).exists()]
    if missing:
        raise ValueError(f"the index in {folder} was built from files that are gone: {', '.join(missing)}; "
                         f"pass --sources to rebuild it from what you have")
    return [str(p) for p in inputs]


def _print_answer(answer: Any) -> None:
    """Human-readable answer with its passages."""
    from qa.chat.terminal import format_reply, format_sources

    print(format_reply(answer))
    print()
    print(format_sources(answer))


def run(args: argparse.Namespace) -> int:
    """Run one parsed subcommand; return the exit status."""
    if getattr(args, "database", None):
        require("psycopg", "pgvector")  # before any work: say which extra is missing
    if args.command == "index":
        bot = Chatbot(sources=_sources_for(args, args.paths), index_dir=args.index_dir, reader=_NoReader(),
                      database=args.database, allow_private_urls=args.allow_private_urls)
        bot.warm_up(progress=lambda m: print(m, file=sys.stderr), rebuild=args.rebuild, progress_bar=True)
        print(bot.describe())
        return 0
    if args.command == "ask":
        bot = Chatbot(sources=_sources_for(args), index_dir=args.index_dir, reader=_reader_for(args),
                      top_k=args.top_k, mode=args.mode, min_similarity=args.min_similarity,
                      database=args.database, allow_private_urls=args.allow_private_urls)
        bot.warm_up(progress_bar=True)  # a long build shows its progress on stderr
        answer = bot.ask(args.question)
        if args.json:
            print(json.dumps(answer.to_dict(), ensure_ascii=False))
        else:
            _print_answer(answer)
        return 0
    if args.command == "chat":
        from qa.chat.terminal import chat

        bot = Chatbot(sources=_sources_for(args), index_dir=args.index_dir, reader=_reader_for(args),
                      top_k=args.top_k, mode=args.mode, min_similarity=args.min_similarity,
                      database=args.database, allow_private_urls=args.allow_private_urls)
        bot.warm_up(progress_bar=True)
        return chat(bot)
    if args.command == "serve":
        from ui.app import PASSWORD_IN_ARGUMENTS, serve

        if args.auth and not args.auth.startswith("@"):
            print(PASSWORD_IN_ARGUMENTS, file=sys.stderr, flush=True)
        login = args.auth if args.auth is not None else os.environ.get("QA_AUTH")  # "" fails closed
        serve(host=args.host, port=args.port, share=args.share, auth=login, sources=_sources_for(args),
              index_dir=args.index_dir, reader=_reader_for(args), top_k=args.top_k, mode=args.mode,
              min_similarity=args.min_similarity, database=args.database,
              allow_private_urls=args.allow_private_urls)
        return 0
    if args.command == "eval":
        from qa.lab.conversations import evaluate_conversations, is_conversations_file
        from qa.lab.evaluate import calibration, evaluate
        from qa.lab.rewrites import evaluate_rewrites, is_rewrites_file
        from qa.lab.squad import load_squad, sample_questions

        if args.database and (args.reader_only or args.calibration):
            raise ValueError("--database evaluates the whole pipeline: leave out --reader-only and "
                             "--calibration")
        if args.report:
            from qa.lab.report import check_path

            check_path(args.report)
        if (args.plot or args.folds) and not args.calibration:
            raise ValueError("--plot and --folds go with --calibration N: add --calibration")
        if args.calibration:
            items = sample_questions(load_squad(args.file), args.calibration)
            result = calibration(items, _reader_for(args), progress=True, folds=args.folds)
            if args.plot:
                from qa.lab.calibrate import plot_reliability

                plot_reliability(result["reliability"], args.plot,
                                 title=f"{Path(args.file).name}, {result['questions']} questions")
        elif is_rewrites_file(args.file):
            if args.reader_only or args.database:
                raise ValueError("a rewrites file measures follow-up rewriting alone: leave out "
                                 "--reader-only and --database")
            result = evaluate_rewrites(args.file)
        elif is_conversations_file(args.file):
            if args.reader_only:
                raise ValueError("--reader-only does not apply to a conversations file: its turns are asked "
                                 "of the whole pipeline with the conversation so far")
            result = evaluate_conversations(args.file, top_k=args.top_k, reader=_reader_for(args),
                                            min_similarity=args.min_similarity)
        else:
            result = evaluate(args.file, reader_only=args.reader_only, top_k=args.top_k,
                              reader=_reader_for(args), min_similarity=args.min_similarity,
                              database=args.database)
        if args.json:
            print(json.dumps(result))
        else:
            for key, value in result.items():
                print(f"{key:>20}: {value}")
        if args.report:
            from qa.lab import report

            what = ("calibration" if args.calibration else "reader only" if args.reader_only
                    else "follow-up rewrites" if "rewrite_bleu" in result else "whole pipeline")
            title = f"{Path(args.file).name}, {what}"
            path = Path(args.report)
            path.parent.mkdir(parents=True, exist_ok=True)  # the reliability diagram is drawn first
            report.write(path, title=title, kind="eval", result=result,
                         sections=report.eval_sections(result, title, path),
                         command=["qa", *args.argv])
            print(f"report: {path}", file=sys.stderr)
        return 0
    raise ValueError(f"unknown command {args.command!r}")


class _NoReader:
    """Stands in for the reader when only the index is needed."""

    name = "none"
    threshold = 1.0

    def read(self, question: str, passages: Any) -> list:
        """Read nothing."""
        return []


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``qa`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv else ""
    try:
        if command in DELEGATED:
            import importlib

            return int(importlib.import_module(DELEGATED[command]).main(argv[1:]) or 0)
        args = build_parser().parse_args(argv)
        args.argv = argv  # the command line, for reports
        return run(args)
    except ImportError as exc:
        # an optional extra's module says which extra to install; any other is a broken install
        print(f"qa {command}: error: {missing_extra(exc) or _broken_install(exc)}", file=sys.stderr)
        return 2
    except (ValueError, TypeError, OSError, RuntimeError) as exc:
        print(f"qa {command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _broken_install(error: ImportError) -> str:
    """The message for a module that ``qa`` needs and cannot import."""
    return (f"{error.name or error} cannot be imported ({error}); "
            "reinstall qa with its dependencies (the README's quick start says how)")


if __name__ == "__main__":
    sys.exit(main())
