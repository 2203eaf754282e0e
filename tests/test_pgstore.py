"""Tests for qa.index.pgstore on a real PostgreSQL + pgvector (pgserver): schema checks, search, replicas."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import TOWN_DOCS as DOCS
from conftest import FakeEmbedder, FakeReader, free_port

import qa.index.pgschema as pgschema
import qa.index.pgstore as pgstore
from qa.chat.chatbot import Chatbot
from qa.index.pgstore import DatabaseError, PgIndex
from qa.index.pgstore_write import sync


def test_a_database_of_another_model_is_a_clear_error(pg_url: str) -> None:
    sync(PgIndex(url=pg_url), DOCS, FakeEmbedder(name="model-a", dim=32))
    with pytest.raises(DatabaseError, match="model"):
        sync(PgIndex(url=pg_url), DOCS, FakeEmbedder(name="model-b", dim=32))
    with pytest.raises(ValueError, match="postgresql://"):
        PgIndex(url="mysql://x")
    with pytest.raises(DatabaseError, match="cannot connect"):
        PgIndex(url="postgresql://nobody@127.0.0.1:9/none?connect_timeout=2").meta()


def test_two_replicas_answer_alike_and_see_new_documents_without_a_restart(pg_url: str, tmp_path: Path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "mill.txt").write_text(DOCS["mill.txt"], encoding="utf-8")
    emb = FakeEmbedder(dim=32)
    writer = Chatbot(sources=[docs], database=pg_url, embedder=emb, reader=FakeReader(), log=lambda m: None)
    replica = Chatbot(database=pg_url, embedder=emb, reader=FakeReader(), log=lambda m: None)
    question = "Who built the mill?"
    assert "Anna Berg" in writer.ask(question).text
    assert replica.ask(question).to_dict() == writer.ask(question).to_dict()
    assert "1 source(s) (docs/mill.txt)" in replica.describe() or "mill.txt" in replica.describe()
    (docs / "bridge.txt").write_text(DOCS["bridge.txt"], encoding="utf-8")
    Chatbot(sources=[docs], database=pg_url, embedder=emb, reader=FakeReader(), log=lambda m: None).warm_up()
    answer = replica.ask("When did the bridge open after the debate?")  # no restart
    assert answer.source.endswith("bridge.txt") and "2001" in answer.context


@pytest.mark.slow
def test_cli_index_and_ask_through_the_database_answer_as_the_local_index_does(pg_url: str, tmp_path: Path):
    import json
    import os
    import subprocess
    import sys

    repo = Path(__file__).resolve().parent.parent
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    question = "Why does Turkey want Ukrainian engines?"

    def qa(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "qa.cli", *args], cwd=repo, env=env, capture_output=True,
                              text=True, timeout=300)

    done = qa("index", "seeds", "--database", pg_url)
    assert done.returncode == 0, done.stderr
    through_db = qa("ask", question, "--database", pg_url, "--json")
    local = qa("ask", question, "--sources", "seeds", "--index-dir", str(tmp_path / "idx"), "--json")
    assert through_db.returncode == 0 and local.returncode == 0, through_db.stderr + local.stderr
    db_answer, local_answer = json.loads(through_db.stdout), json.loads(local.stdout)
    assert db_answer["answer"] and (db_answer["answer"], db_answer["start"], db_answer["source"]) == \
        (local_answer["answer"], local_answer["start"], local_answer["source"])


@pytest.mark.slow
def test_cli_reindexing_a_changed_document_with_the_real_embedder_answers_from_the_new_text(pg_url: str,
                                                                                          tmp_path: Path):
    """``qa index`` twice, a document edited in between: stored vectors are reused, new sentences embedded."""
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    docs = tmp_path / "notes"
    docs.mkdir()
    for name, text in DOCS.items():
        (docs / name).write_text(text, encoding="utf-8")

    def qa(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "qa.cli", *args, "--database", pg_url], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=300)

    assert (done := qa("index", str(docs))).returncode == 0, done.stderr
    added = " A brass lamp was fitted on the bridge by Jonas Weber in 2020."
    with (docs / "bridge.txt").open("a", encoding="utf-8") as f:
        f.write(added)
    done = qa("index", str(docs))
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    asked = qa("ask", "Who fitted the brass lamp on the bridge?", "--json")
    assert asked.returncode == 0, asked.stderr
    answer = json.loads(asked.stdout)
    new_text = (docs / "bridge.txt").read_text(encoding="utf-8")
    assert answer["answer"] and "Jonas Weber" in answer["answer"]
    assert answer["source"].endswith("bridge.txt")
    assert new_text[answer["start"]:answer["end"]] == answer["answer"]
    assert answer["start"] >= len(DOCS["bridge.txt"]), "the answer stands in the appended sentence"


def test_module_constants() -> None:
    assert pgschema.SCHEMA_VERSION >= 1 and pgschema.TEXT_SEARCH == "english"


def test_eval_through_the_database_uses_a_schema_of_its_own_and_drops_it(pg_url: str, tmp_path: Path) -> None:
    import functools
    import json

    import psycopg

    from qa.lab.evaluate import evaluate

    gold = {"text": "Anna Berg", "answer_start": DOCS["mill.txt"].index("Anna Berg")}
    squad = {"version": "1.1", "data": [{"title": "Mill", "paragraphs": [{
        "context": DOCS["mill.txt"],
        "qas": [{"id": "1", "question": "Who built the old mill on the river?", "answers": [gold]}]}]}]}
    path = tmp_path / "mill.json"
    path.write_text(json.dumps(squad), encoding="utf-8")
    sync(PgIndex(url=pg_url), DOCS, FakeEmbedder(dim=32))  # the user's own corpus, in schema "qa"
    factory = functools.partial(Chatbot, embedder=FakeEmbedder(dim=32), log=lambda m: None)
    result = evaluate(path, reader_only=False, reader=FakeReader(), chatbot_factory=factory, progress=False,
                      database=pg_url)
    assert result["questions"] == 1 and result["recall_at_k"] == 100.0
    with psycopg.connect(pg_url) as conn:
        schemas = {r[0] for r in conn.execute("SELECT schema_name FROM information_schema.schemata")}
    assert "qa" in schemas and not any(s.startswith("qa_eval_") for s in schemas)
    assert PgIndex(url=pg_url).summary()[0] == sorted(DOCS), "the user's corpus is untouched"


@pytest.mark.slow
def test_two_qa_serve_processes_on_one_database_answer_alike_and_see_new_documents(pg_url: str,
                                                                                   tmp_path: Path) -> None:
    import os
    import subprocess
    import sys
    import time

    from gradio_client import Client

    repo = Path(__file__).resolve().parent.parent
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    env.pop("QA_AUTH", None)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "mill.txt").write_text(DOCS["mill.txt"], encoding="utf-8")
    cli = [sys.executable, "-m", "qa.cli"]
    done = subprocess.run([*cli, "index", str(docs), "--database", pg_url], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    servers, urls = [], []
    for _ in range(2):
        port = free_port()
        servers.append(subprocess.Popen([*cli, "serve", "--port", str(port), "--database", pg_url], cwd=repo,
                                        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        urls.append(f"http://127.0.0.1:{port}/")
    try:
        for server in servers:
            deadline = time.monotonic() + 300
            for line in server.stdout:
                if line.startswith("Serving at") or time.monotonic() > deadline:
                    break
            assert server.poll() is None, "a replica exited during startup"
        clients = [Client(u, verbose=False, download_files=False) for u in urls]
        question = "Who built the old mill on the river?"
        first, second = (c.predict(question, api_name="/ask") for c in clients)
        assert "Anna Berg" in first["answer"] and first == second
        (docs / "bridge.txt").write_text(DOCS["bridge.txt"], encoding="utf-8")
        done = subprocess.run([*cli, "index", str(docs), "--database", pg_url], cwd=repo, env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        answer = clients[1].predict("How much did the bridge cost?", api_name="/ask")  # no restart
        assert answer["source"].endswith("bridge.txt") and "four million euros" in answer["answer"]
    finally:
        for server in servers:
            server.terminate()
            server.wait(30)


def test_a_common_stem_is_read_best_postings_first(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    docs = {f"d{i}.txt": f"The wheat {'and wheat ' * i}grows in the field by the river." for i in range(6)}
    store, emb = PgIndex(url=pg_url), FakeEmbedder(dim=32)
    sync(store, docs, emb)
    qvec = emb.encode(["wheat"])[0]

    def lexical() -> list[str]:
        return [row[0].source for row in store.candidates(qvec, "wheat", 6, mode="lexical")]

    exact = lexical()
    assert exact == [f"d{i}.txt" for i in range(5, -1, -1)]  # most mentions first
    monkeypatch.setattr(pgstore, "POSTINGS_PER_TERM", 2)
    assert lexical() == exact[:2]  # only the two strongest postings are read, in the same order


@pytest.mark.slow
def test_with_postgres_runs_a_command_beside_a_server_of_its_own() -> None:
    import os
    import subprocess
    import sys

    repo = Path(__file__).resolve().parent.parent
    probe = ("import os, sys, psycopg; url = sys.argv[1]; assert url == os.environ['QA_DATABASE_URL']; "
             "c = psycopg.connect(url); print(c.execute('SELECT 40 + 2').fetchone()[0]); sys.exit(3)")
    done = subprocess.run([sys.executable, "scripts/with_postgres.py", sys.executable, "-c", probe, "{url}"],
                          cwd=repo, env={**os.environ}, capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "42", done.stderr
    assert done.returncode == 3, "the command's exit status is passed on"
