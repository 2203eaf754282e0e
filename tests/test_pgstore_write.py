"""Tests for qa.index.pgstore_write on a real PostgreSQL + pgvector (pgserver): incremental, whole updates."""

from __future__ import annotations

import threading

import pytest
from conftest import TOWN_DOCS as DOCS
from conftest import FakeEmbedder

import qa.index.pgstore_write as pgstore_write
from qa.index.build import chunk_sources, normalise_chunk_settings
from qa.index.pgstore import PgIndex, PgRetriever


def test_sync_is_incremental_and_hits_point_into_the_sources(pg_url: str) -> None:
    store, emb = PgIndex(url=pg_url), FakeEmbedder(dim=32)
    stats = pgstore_write.sync(store, DOCS, emb)
    assert stats["added"] == 2 and stats["embedded"] == emb.encoded > 0
    hits = PgRetriever(store=store, embedder=emb, top_k=3).retrieve("Who built the mill?")
    assert hits and hits[0].source == "mill.txt"
    for h in hits:
        assert DOCS[h.source][h.start:h.end] == h.text
    before = emb.encoded
    assert pgstore_write.sync(store, DOCS, emb) == {"added": 0, "changed": 0, "removed": 0, "embedded": 0}
    changed = {**DOCS, "bridge.txt": DOCS["bridge.txt"] + "\n\nA new lamp was fitted in 2020."}
    stats = pgstore_write.sync(store, changed, emb)
    assert stats["changed"] == 1 and 0 < emb.encoded - before <= 4, "only the new texts are embedded"
    assert pgstore_write.sync(store, {"mill.txt": DOCS["mill.txt"]}, emb)["removed"] == 1
    names, passages = store.summary()
    expected = chunk_sources({"mill.txt": DOCS["mill.txt"]}, normalise_chunk_settings(None))
    assert names == ["mill.txt"] and passages == len(expected)
    assert all(h.source == "mill.txt" for h in PgRetriever(store=store, embedder=emb).retrieve("bridge"))
    conn = store.connect()
    recount = conn.execute("SELECT word, ndoc FROM ts_stat('SELECT tsv FROM qa.passages') ORDER BY word")
    assert conn.execute("SELECT lexeme, df FROM qa.terms ORDER BY lexeme").fetchall() == recount.fetchall(), (
        "document frequencies kept up by each update are those of the corpus")
    for table in ("sentences", "postings"):
        orphans = conn.execute(f"SELECT count(*) FROM qa.{table} WHERE passage NOT IN "
                               f"(SELECT id FROM qa.passages)").fetchone()[0]
        assert orphans == 0, f"{table} of removed passages are removed with them"
    conn.close()


def test_an_update_leaves_its_tables_vacuumed_and_analysed(pg_url: str) -> None:
    store = PgIndex(url=pg_url, schema="vacuumed")
    pgstore_write.sync(store, DOCS, FakeEmbedder(dim=32))
    conn = store.connect()
    rows = conn.execute("SELECT relname FROM pg_stat_user_tables WHERE schemaname = 'vacuumed' "
                        "AND last_vacuum IS NOT NULL AND last_analyze IS NOT NULL").fetchall()
    assert {"passages", "sentences", "postings", "terms"} <= {r[0] for r in rows}
    # every page all-visible: the postings' index-only scans read no table pages
    pages = conn.execute("SELECT relpages, relallvisible FROM pg_class "
                         "WHERE oid = 'vacuumed.postings'::regclass").fetchone()
    assert pages[0] > 0 and pages[1] == pages[0]
    conn.close()
    store.drop()


def test_a_failed_update_changes_nothing(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    store, emb = PgIndex(url=pg_url), FakeEmbedder(dim=32)
    pgstore_write.sync(store, DOCS, emb)
    before = store.summary()

    def boom(conn, schema, names) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(pgstore_write, "_write_term_stats", boom)  # fails after the passages were written
    with pytest.raises(RuntimeError, match="disk full"):
        pgstore_write.sync(store, {"other.txt": "Something else entirely. Gamma one."}, emb)
    assert store.summary() == before


def test_two_writers_at_once_leave_one_whole_corpus(pg_url: str) -> None:
    corpora = [DOCS, {"other.txt": "Gamma one. Gamma two.\n\nGamma three is here."}]
    errors: list[BaseException] = []

    def write(docs: dict) -> None:
        try:
            pgstore_write.sync(PgIndex(url=pg_url), docs, FakeEmbedder(dim=32))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=write, args=(c,)) for c in corpora for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    names, passages = PgIndex(url=pg_url).summary()
    winner = next(c for c in corpora if sorted(c) == names)
    assert passages == len(chunk_sources(winner, normalise_chunk_settings(None)))
