"""Tests for qa.index.local, .build and .store: building, saving, reusing and rebuilding the passage index."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import FakeEmbedder

import qa.index.local as qindex
from qa.index import build as index_build
from qa.index import store as index_store
from qa.index.local import EXACT_MAX, Index, passage_sentences, sentence_units
from qa.index.store import FORMAT_VERSION, IndexMismatchError

WORD = re.compile(r"\w+")


def CountingEmbedder(name: str = "fake-embedder", dim: int = 32) -> FakeEmbedder:  # noqa: N802
    """The shared fake embedder, counting its work, under this module's name and size."""
    return FakeEmbedder(name=name, dim=dim)


DOCS = {
    "a.txt": "Alpha one. Alpha two. Alpha three.\n\nAlpha four is here. Alpha five.",
    "b.txt": "Beta one. Beta two.\n\nBeta three.",
}


@pytest.fixture
def logs() -> list[str]:
    return []


def build(tmp_path: Path, embedder: CountingEmbedder, logs: list[str], sources: dict | None = None,
          **kw) -> Index:
    return index_build.build_or_load(sources or DOCS, tmp_path / "idx", embedder, log=logs.append, **kw)


def siblings(folder: Path) -> list[str]:
    """The names in ``folder`` but the writer's lock file (it stays: removing lock files races)."""
    return sorted(p.name for p in folder.iterdir() if p.name != ".idx.lock")


def texts_of(index: Index) -> set[str]:
    """Every text an index embeds: its passages and their sentences."""
    return {p.text for p in index.passages} | set(sentence_units(index.passages)[0])


def test_constants() -> None:
    assert FORMAT_VERSION == 2 and EXACT_MAX == 20_000
    assert issubclass(IndexMismatchError, RuntimeError)


def test_build_writes_the_folder(tmp_path: Path, logs: list[str]) -> None:
    emb = CountingEmbedder()
    index = build(tmp_path, emb, logs)
    folder = tmp_path / "idx"
    names = {p.name for p in folder.iterdir()}
    assert names >= {"manifest.json", "passages.jsonl", "vectors.npy", "faiss.index",
                     "sentence_vectors.npy", "sentence_rows.npy"}
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["format_version"] == 2
    assert manifest["embedding"] == {"model": "fake-embedder", "dim": 32}
    assert manifest["chunk"] == {"sentences": 4, "overlap": 1, "max_chars": 1000}
    assert manifest["index_type"] == "flat-ip"
    assert manifest["sources"] == {n: hashlib.sha256(t.encode()).hexdigest() for n, t in DOCS.items()}
    assert manifest["passages"] == len(index.passages) == index.vectors.shape[0] == index.faiss.ntotal
    for p in index.passages:
        assert DOCS[p.source][p.start:p.end] == p.text
    assert index.vectors.dtype == np.float32 and index.vectors.shape[1] == 32
    assert len(emb.texts) == len(texts_of(index)) and set(emb.texts) == texts_of(index)
    # one vector per sentence of each passage, passage by passage
    rows = index.sentence_rows
    assert rows[0] == 0 and rows[-1] == len(index.sentence_vectors) and len(rows) == len(index.passages) + 1
    for i, p in enumerate(index.passages):
        sents = passage_sentences(p)
        assert all(t in p.text for t in sents) and rows[i + 1] - rows[i] == len(sents)
        assert np.allclose(index.sentence_vectors[rows[i]:rows[i + 1]], emb.encode(sents))
    assert siblings(tmp_path) == ["idx"], "no temporary folder left behind"


def test_search_returns_rows_and_inner_products(tmp_path: Path, logs: list[str]) -> None:
    emb = CountingEmbedder()
    index = build(tmp_path, emb, logs)
    q = emb.encode(["beta three"])
    (hits,) = index.search(q, 3)
    assert len(hits) == 3
    assert index.passages[hits[0][0]].text == "Beta three."
    assert hits[0][1] == pytest.approx(float(index.vectors[hits[0][0]] @ q[0]), abs=1e-5)
    assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
    assert len(index.search(q[0], 100)[0]) == len(index.passages)  # 1-D query, k capped
    with pytest.raises(ValueError):
        index.search(np.zeros((1, 5), dtype=np.float32), 3)
    with pytest.raises(ValueError):
        index.search(q, 0)


def test_reuse_without_reembedding(tmp_path: Path, logs: list[str]) -> None:
    build(tmp_path, CountingEmbedder(), logs)
    emb = CountingEmbedder()
    index = build(tmp_path, emb, logs)
    assert emb.calls == 0 and index.embedded == 0
    assert logs == []


def test_changed_source_is_stale_and_only_new_passages_are_embedded(tmp_path: Path, logs: list[str]) -> None:
    first = build(tmp_path, CountingEmbedder(), logs)
    changed = {**DOCS, "b.txt": "Beta one. Beta two.\n\nBeta three has changed."}
    emb = CountingEmbedder()
    index = build(tmp_path, emb, logs, changed)
    assert len(logs) == 1 and "changed b.txt" in logs[0] and "\n" not in logs[0]
    old_texts = {p.text for p in first.passages}
    new_texts = {p.text for p in index.passages} - old_texts
    assert set(emb.texts) == new_texts and len(emb.texts) == len(new_texts)
    assert new_texts == {"Beta three has changed."}
    # adding a document embeds only its passages (and their sentences)
    emb2 = CountingEmbedder()
    added = {**changed, "c.txt": "Gamma one. Gamma two."}
    build(tmp_path, emb2, logs, added)
    assert set(emb2.texts) == {"Gamma one. Gamma two.", "Gamma one.", "Gamma two."}
    assert "added c.txt" in logs[-1]


def test_removed_source_disappears(tmp_path: Path, logs: list[str]) -> None:
    build(tmp_path, CountingEmbedder(), logs)
    emb = CountingEmbedder()
    index = build(tmp_path, emb, logs, {"a.txt": DOCS["a.txt"]})
    assert emb.calls == 0
    assert {p.source for p in index.passages} == {"a.txt"}
    assert "removed b.txt" in logs[-1]
    reloaded = index_store.load(tmp_path / "idx")
    assert {p.source for p in reloaded.passages} == {"a.txt"}
    assert reloaded.vectors.shape[0] == len(reloaded.passages)


def test_model_or_settings_change_is_stale(tmp_path: Path, logs: list[str]) -> None:
    build(tmp_path, CountingEmbedder(), logs)
    emb = CountingEmbedder()
    build(tmp_path, emb, logs, chunk_settings={"sentences": 1, "overlap": 0})
    # rebuilt, and from the cache alone: each one-sentence passage was embedded before as a sentence
    assert "chunked with" in logs[-1] and emb.calls == 0
    build(tmp_path, emb, logs, chunk_settings={"sentences": 5, "overlap": 0})
    assert "chunked with" in logs[-1] and emb.calls > 0
    emb = CountingEmbedder(name="other-model")
    index = build(tmp_path, emb, logs, chunk_settings={"sentences": 1, "overlap": 0})
    assert "embedded with" in logs[-1]
    assert len(emb.texts) == len(texts_of(index)), "another model re-embeds everything"
    with pytest.raises(ValueError, match="unknown chunk settings"):
        build(tmp_path, emb, logs, chunk_settings={"size": 3})


@pytest.mark.parametrize(
    ("damage", "reembeds"),
    [
        (lambda f: (f / "faiss.index").write_bytes(b"garbage"), False),
        (lambda f: (f / "faiss.index").unlink(), False),
        (lambda f: (f / "manifest.json").write_text("{not json"), False),
        (lambda f: (f / "passages.jsonl").write_text('{"id": 1}\n'), False),
        (lambda f: (f / "passages.jsonl").unlink(), False),
        (lambda f: np.save(f / "vectors.npy", np.zeros((2, 32), dtype=np.float32)), True),
        (lambda f: (f / "vectors.npy").write_bytes(b"\x93NUMPY broken"), True),
        (lambda f: (f / "sentence_vectors.npy").unlink(), True),
        (lambda f: np.save(f / "sentence_rows.npy", np.zeros(3, dtype=np.int64)), False),
        (lambda f: np.save(f / "sentence_rows.npy", np.arange(100, dtype=np.int64)[::-1][-9:]), False),
        (lambda f: np.save(f / "sentence_vectors.npy", np.zeros((1, 32), dtype=np.float32)), True),
    ],
)
def test_damaged_index_is_rebuilt(tmp_path: Path, logs: list[str], damage, reembeds: bool) -> None:
    built = build(tmp_path, CountingEmbedder(), logs)
    damage(tmp_path / "idx")
    emb = CountingEmbedder()
    index = build(tmp_path, emb, logs)
    assert "rebuilding" in logs[0]
    # an unreadable cache says so (everything is embedded again); nothing else is said
    assert all("embedding cache" in m and "unusable" in m for m in logs[1:]) and len(logs) <= 2
    assert (emb.calls > 0) == reembeds
    assert index.passages == built.passages
    assert np.allclose(index.vectors, built.vectors)
    assert np.allclose(index.sentence_vectors, built.sentence_vectors)
    assert (index.sentence_rows == built.sentence_rows).all()
    emb = CountingEmbedder()
    said = len(logs)
    build(tmp_path, emb, logs)
    assert emb.calls == 0 and len(logs) == said, "the rebuilt index is reused"


def test_rebuild_flag_reembeds_everything(tmp_path: Path, logs: list[str]) -> None:
    index = build(tmp_path, CountingEmbedder(), logs)
    emb = CountingEmbedder()
    build(tmp_path, emb, logs, rebuild=True)
    assert len(emb.texts) == len(texts_of(index))


def test_crash_while_writing_keeps_the_old_index(tmp_path: Path, logs: list[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    build(tmp_path, CountingEmbedder(), logs)
    before = {p.name: p.read_bytes() for p in (tmp_path / "idx").iterdir()}

    def boom(index: Index, folder: Path) -> None:
        (folder / "manifest.json").write_text("half-written")
        raise OSError("disk full")

    monkeypatch.setattr(index_store, "write_files", boom)
    with pytest.raises(OSError, match="disk full"):
        build(tmp_path, CountingEmbedder(), logs, {"a.txt": "Something else entirely."})
    assert {p.name: p.read_bytes() for p in (tmp_path / "idx").iterdir()} == before
    assert siblings(tmp_path) == [".idx.partial", "idx"], "no temporary folder; the vectors kept for a retry"
    monkeypatch.undo()
    emb = CountingEmbedder()
    build(tmp_path, emb, [])
    assert emb.calls == 0


def test_other_files_in_the_folder_are_kept(tmp_path: Path, logs: list[str]) -> None:
    folder = tmp_path / "idx"
    folder.mkdir()
    (folder / "README.md").write_text("keep me")
    build(tmp_path, CountingEmbedder(), logs)
    build(tmp_path, CountingEmbedder(), logs, {"a.txt": "Changed."})
    assert (folder / "README.md").read_text() == "keep me"


def test_refuses_a_folder_of_unrelated_files(tmp_path: Path, logs: list[str]) -> None:
    folder = tmp_path / "idx"
    (folder / "sub").mkdir(parents=True)
    with pytest.raises(ValueError, match="not an index"):
        build(tmp_path, CountingEmbedder(), logs)
    assert (folder / "sub").is_dir()


def test_hnsw_above_exact_max(tmp_path: Path, logs: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(qindex, "EXACT_MAX", 3)
    emb = CountingEmbedder()
    sources = {f"d{i}.txt": f"Document {i} talks about topic{i}." for i in range(20)}
    index = build(tmp_path, emb, logs, sources)
    assert index.index_type == "hnsw-ip" and index.manifest["index_type"] == "hnsw-ip"
    (hits,) = index.search(emb.encode(["topic7"]), 5)
    assert index.passages[hits[0][0]].source == "d7.txt"
    reused = build(tmp_path, CountingEmbedder(), logs, sources)
    assert reused.index_type == "hnsw-ip" and logs == []


def test_bad_arguments(tmp_path: Path) -> None:
    emb = CountingEmbedder()
    with pytest.raises(ValueError):
        index_build.build_or_load({}, tmp_path / "i", emb)
    with pytest.raises(TypeError):
        index_build.build_or_load({"a": 3}, tmp_path / "i", emb)  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="no text"):
        index_build.build_or_load({"a": "  \n "}, tmp_path / "i", emb)
    with pytest.raises(TypeError):
        index_build.build_or_load(DOCS, tmp_path / "i", object())  # type: ignore[arg-type]


def test_progress_bar_on_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    index_build.build_or_load(DOCS, tmp_path / "idx", CountingEmbedder(), progress=True, log=lambda m: None)
    captured = capsys.readouterr()
    assert "Embedding" in captured.err and captured.out == ""


def test_default_log_prints_one_line_to_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    index_build.build_or_load(DOCS, tmp_path / "idx", CountingEmbedder())
    (tmp_path / "idx" / "faiss.index").write_bytes(b"x")
    capsys.readouterr()
    index_build.build_or_load(DOCS, tmp_path / "idx", CountingEmbedder())
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "rebuilding" in err


def test_sentence_similarity_is_the_best_sentence(tmp_path: Path, logs: list[str]) -> None:
    emb = CountingEmbedder()
    index = build(tmp_path, emb, logs)
    q = emb.encode(["alpha four"])[0]
    rows = list(range(len(index.passages)))
    got = index.sentence_similarity(rows, q)
    for r in rows:
        want = max(float(v @ q) for v in emb.encode(passage_sentences(index.passages[r])))
        assert got[r] == pytest.approx(want, abs=1e-5)
    assert index.sentence_similarity([], q).shape == (0,)
    assert list(index.sentence_similarity([2, 0], q)) == pytest.approx([got[2], got[0]])


def test_passage_sentences() -> None:
    from qa.schema import Passage

    p = Passage("x#0", "x", 0, 24, "One here. Two there too.")
    assert passage_sentences(p) == ["One here.", "Two there too."]
    single = Passage("x#1", "x", 0, 9, "One here.")
    assert passage_sentences(single) == ["One here."]
    texts, rows = sentence_units([p, single])
    assert texts == ["One here.", "Two there too.", "One here."] and rows.tolist() == [0, 2, 3]


KILL_AT_SWAP = """
import os, signal, sys
sys.path.insert(0, {tests!r})
import qa.index.build as build
import qa.index.store as store
from conftest import FakeEmbedder
real_rename = os.rename
def rename(src, dst):
    real_rename(src, dst)
    if ".old-" in str(dst):  # the first rename of the swap is done: die before the second
        os.kill(os.getpid(), signal.SIGKILL)
store.os.rename = rename
build.build_or_load({{"a.txt": "Something else entirely. Gamma one."}}, {idx!r},
                    FakeEmbedder(name="fake-embedder", dim=32), log=lambda m: None)
"""


def test_a_process_killed_between_the_swap_renames_loses_nothing(tmp_path: Path, logs: list[str]) -> None:
    import signal
    import subprocess
    import sys

    build(tmp_path, CountingEmbedder(), logs)
    script = KILL_AT_SWAP.format(tests=str(Path(__file__).parent), idx=str(tmp_path / "idx"))
    proc = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parent.parent, timeout=120)
    assert proc.returncode == -signal.SIGKILL
    names = sorted(p.name for p in tmp_path.iterdir())
    assert "idx" not in names and any(".idx.old-" in n for n in names)
    assert any(".idx.tmp-" in n for n in names)
    # the next start finishes the swap: the finished new index is put in place, the leftovers go
    emb = CountingEmbedder()
    index = build(tmp_path, emb, logs, {"a.txt": "Something else entirely. Gamma one."})
    assert emb.calls == 0, "the finished index was recovered, not re-embedded"
    assert any("Recovered the index" in m for m in logs)
    assert siblings(tmp_path) == ["idx"]
    assert {p.source for p in index.passages} == {"a.txt"}


def test_an_interrupted_swap_without_a_finished_index_puts_the_old_one_back(tmp_path: Path,
                                                                            logs: list[str]) -> None:
    build(tmp_path, CountingEmbedder(), logs)
    (tmp_path / "idx").rename(tmp_path / ".idx.old-12345678")
    (tmp_path / ".idx.tmp-abc").mkdir()  # a write that died early: not a complete index
    assert index_store.recover_interrupted_swap(tmp_path / "idx", logs.append)
    emb = CountingEmbedder()
    build(tmp_path, emb, logs)
    assert emb.calls == 0 and siblings(tmp_path) == ["idx"]


def test_a_second_writer_waits_for_the_first_and_says_so(tmp_path: Path, logs: list[str]) -> None:
    import threading

    build(tmp_path, CountingEmbedder(), logs)
    holding = threading.Event()
    release = threading.Event()

    def first_writer() -> None:
        with index_store.writer_lock(tmp_path / "idx", logs.append):
            holding.set()
            release.wait(30)

    t = threading.Thread(target=first_writer)
    t.start()
    holding.wait(30)
    done: list[Index] = []
    second = threading.Thread(target=lambda: done.append(build(tmp_path, CountingEmbedder(), logs,
                                                                 {"a.txt": "Changed text."})))
    second.start()
    second.join(1.0)
    assert second.is_alive() and not done, "the second writer waits while the lock is held"
    assert any("Waiting for another qa process" in m for m in logs)
    release.set()
    t.join(30)
    second.join(30)
    assert done and {p.text for p in done[0].passages} == {"Changed text."}


def test_a_damaged_cache_is_said_and_an_unreadable_manifest_is_not_called_bad_json(
        tmp_path: Path, logs: list[str]) -> None:
    build(tmp_path, CountingEmbedder(), logs)
    folder = tmp_path / "idx"
    (folder / "vector_keys.json").write_text("{broken")
    logs.clear()
    assert index_store.read_cache(folder, CountingEmbedder(), logs.append) == {}
    assert len(logs) == 1 and "vector_keys.json" in logs[0] and "unusable" in logs[0]
    assert index_store.read_cache(tmp_path / "nothing", CountingEmbedder(), logs.append) == {}  # no cache
    assert len(logs) == 1
    real_read = Path.read_text

    def denied(self: Path, *args, **kwargs) -> str:
        if self.name == "manifest.json":
            raise PermissionError(13, "Permission denied", str(self))
        return real_read(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Path, "read_text", denied)
        with pytest.raises(IndexMismatchError, match="cannot be read .*Permission denied"):
            index_store.load(folder)


MANY = {"many.txt": "\n\n".join(f"Paragraph {i} says a thing. It has a second sentence {i}."
                                  for i in range(40))}

KILL_MIDWAY = """
import os, signal, sys
sys.path.insert(0, {tests!r})
from conftest import FakeEmbedder
import qa.index.build as build

class DiesOnThirdCall(FakeEmbedder):
    def encode(self, texts):
        if self.calls == 2:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().encode(texts)

build.EMBED_CHUNK = 8
build.build_or_load({docs!r}, {idx!r}, DiesOnThirdCall(name="fake-embedder", dim=32),
                    log=lambda m: None)
"""


def test_a_build_killed_midway_resumes_from_the_vectors_it_embedded(tmp_path: Path, logs: list[str],
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import signal
    import subprocess
    import sys

    script = KILL_MIDWAY.format(tests=str(Path(__file__).parent), docs=MANY, idx=str(tmp_path / "idx"))
    proc = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parent.parent, timeout=120)
    assert proc.returncode == -signal.SIGKILL
    assert not (tmp_path / "idx").exists() and (tmp_path / ".idx.partial").is_dir()
    monkeypatch.setattr(index_build, "EMBED_CHUNK", 8)
    emb = CountingEmbedder()
    index = build(tmp_path, emb, logs, MANY)
    total = len(texts_of(index))
    assert emb.encoded == total - 16, "the two finished steps (2 x 8 texts) are not embedded again"
    assert any("Resuming an interrupted build: 16 texts" in m for m in logs)
    assert siblings(tmp_path) == ["idx"], "the partial vectors are removed once the index is written"
    fresh = index_build.build(MANY, CountingEmbedder())
    np.testing.assert_array_equal(index.vectors, fresh.vectors)
    np.testing.assert_array_equal(index.sentence_vectors, fresh.sentence_vectors)


def test_ctrl_c_keeps_the_work_and_says_so_and_rebuild_starts_afresh(tmp_path: Path, logs: list[str],
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    class Interrupted(FakeEmbedder):
        def encode(self, texts):
            if self.calls == 1:
                raise KeyboardInterrupt
            return super().encode(texts)

    monkeypatch.setattr(index_build, "EMBED_CHUNK", 8)
    with pytest.raises(KeyboardInterrupt):
        build(tmp_path, Interrupted(name="fake-embedder", dim=32), logs, MANY)
    assert any("Interrupted: the 8 texts embedded so far are kept" in m for m in logs)
    emb = CountingEmbedder()
    with pytest.raises(KeyboardInterrupt):  # a second interruption keeps both runs' work
        build(tmp_path, Interrupted(name="fake-embedder", dim=32), logs, MANY)
    build(tmp_path, emb, logs, MANY, rebuild=True)
    assert emb.encoded == len(texts_of(index_build.build(MANY, CountingEmbedder()))), "--rebuild embeds all"
    assert siblings(tmp_path) == ["idx"]
