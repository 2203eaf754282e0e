"""Tests for qa.index.retrieve: reciprocal rank fusion and dense/lexical/hybrid retrieval."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import FakeEmbedder

from qa.index.build import build_or_load
from qa.index.embed import Embedder
from qa.index.local import Index
from qa.index.retrieve import (
    DEFAULT_TOP_K,
    MERGE_OVERLAPS,
    MODES,
    RRF_K,
    Retriever,
    group_overlapping,
    merge_passages,
    reciprocal_rank_fusion,
)
from qa.ingest.chunk import chunk_text
from qa.ingest.sources import read_source
from qa.schema import Passage

SEED = Path(__file__).resolve().parent.parent / "seeds" / "article.txt"
WORD = re.compile(r"\w+")


def HashEmbedder() -> FakeEmbedder:  # noqa: N802
    """The shared fake embedder at 64 dimensions."""
    return FakeEmbedder(name="hash-embedder", dim=64)


# A small synthetic corpus: many passages on one theme, one rare word in exactly one passage.
CORPUS = {
    "fleet.txt": "\n\n".join([
        "The ministry signed a contract for new naval frigates with a domestic shipyard.",
        "Officials said the army would receive armoured vehicles from a national manufacturer.",
        "The air force is negotiating the purchase of fighter aircraft from a European consortium.",
        "Defence spending rose sharply this year as the government modernised its armed forces.",
        "A procurement agreement for transport aircraft collapsed after months of talks.",
        "The navy announced plans to upgrade its submarines with modern sonar systems.",
        "Analysts expect more military cooperation agreements between the two neighbours.",
        "A planned sale of zeppelin airships to the coast guard fell through over export rules.",
        "The defence minister praised the industry for delivering equipment on schedule.",
        "Parliament approved a budget increase for military research and development.",
        "Training centres for pilots will be built near the capital under the new plan.",
        "The arms exporter reported record orders from customers in Asia and Africa.",
    ]),
}


def test_rrf_maths() -> None:
    fused = reciprocal_rank_fusion([[1, 2, 3], [3, 1, 4]], k=60)
    scores = dict(fused)
    assert scores[1] == pytest.approx(1 / 61 + 1 / 62)
    assert scores[3] == pytest.approx(1 / 63 + 1 / 61)
    assert scores[2] == pytest.approx(1 / 62) and scores[4] == pytest.approx(1 / 63)
    assert [i for i, _ in fused] == [1, 3, 2, 4]
    default = dict(reciprocal_rank_fusion([[1, 2, 3], [3, 1, 4]]))
    assert default[1] == pytest.approx(1 / (RRF_K + 1) + 1 / (RRF_K + 2))


def test_rrf_options_and_ties() -> None:
    tied = reciprocal_rank_fusion([[7, 8], [8, 7]], k=1)
    assert tied == [(7, pytest.approx(5 / 6)), (8, pytest.approx(5 / 6))]
    # ties go to the item seen first (rank, then ranking order): deterministic
    assert [i for i, _ in reciprocal_rank_fusion([[5], [6]])] == [5, 6]
    assert [i for i, _ in reciprocal_rank_fusion([[6], [5]])] == [6, 5]
    weighted = dict(reciprocal_rank_fusion([[1], [2]], k=0, weights=[1.0, 3.0]))
    assert weighted == {1: pytest.approx(1.0), 2: pytest.approx(3.0)}
    assert dict(reciprocal_rank_fusion([[1, 1, 2]], k=0)) == {1: pytest.approx(1.0), 2: pytest.approx(0.5)}
    assert reciprocal_rank_fusion([]) == [] and reciprocal_rank_fusion([[], []]) == []
    with pytest.raises(ValueError):
        reciprocal_rank_fusion([[1]], weights=[1, 2])
    with pytest.raises(ValueError):
        reciprocal_rank_fusion([[1]], k=-1)
    with pytest.raises(ValueError):
        reciprocal_rank_fusion([[1]], weights=[float("nan")])
    with pytest.raises(TypeError):
        reciprocal_rank_fusion("12")  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def fake_index(tmp_path_factory: pytest.TempPathFactory) -> Index:
    return build_or_load(CORPUS, tmp_path_factory.mktemp("r") / "idx", HashEmbedder(),
                               log=lambda m: None)


def test_modes_and_hit_fields(fake_index: Index) -> None:
    assert MODES == ("hybrid", "dense", "lexical") and DEFAULT_TOP_K == 3
    emb = HashEmbedder()
    for mode in MODES:
        r = Retriever(index=fake_index, embedder=emb, mode=mode, merge=False)
        r.warm_up()
        hits = r.retrieve("zeppelin airships for the coast guard")
        assert 1 <= len(hits) <= 3
        assert "zeppelin" in hits[0].text
        q = emb.encode(["zeppelin airships for the coast guard"])[0]
        for h in hits:
            assert -1.0 <= h.score <= 1.0
            row = fake_index.passages.index(h.passage)
            assert h.score == pytest.approx(float(fake_index.vectors[row] @ q), abs=1e-5)
        if mode == "dense":
            assert all(h.dense_rank is not None and h.lexical_rank is None for h in hits)
            assert [h.dense_rank for h in hits] == [1, 2, 3]
        elif mode == "lexical":
            assert all(h.lexical_rank is not None and h.dense_rank is None for h in hits)
        else:
            assert hits[0].dense_rank is not None and hits[0].lexical_rank is not None
    r = Retriever(index=fake_index, embedder=emb, top_k=5)
    assert len(r.retrieve("military aircraft")) == 5
    assert len(r.retrieve("military aircraft", top_k=2)) == 2
    assert len(r.retrieve("military aircraft", top_k=500)) == len(fake_index.passages)


# --- merging overlapping hits ---------------------------------------------------------------------

# One paragraph of eight sentences: three-sentence passages sharing one sentence overlap pairwise.
LONG = " ".join(f"Sentence number {w} talks about the {w} topic at some length." for w in
                ["first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth"])


def test_merge_passages_slices_the_source() -> None:
    parts = chunk_text(LONG, "long.txt", sentences=3, overlap=1)
    assert len(parts) == 4 and parts[0].end > parts[1].start  # consecutive passages overlap
    for group in (parts[:2], parts[1:3], parts, [parts[2], parts[0], parts[1]]):
        merged = merge_passages(group)
        assert LONG[merged.start:merged.end] == merged.text
        assert merged.start == min(p.start for p in group) and merged.end == max(p.end for p in group)
        assert merged.source == "long.txt" and merged.id.count("+") == len(group) - 1
    assert merge_passages([parts[1]]) is parts[1]
    inner = Passage("long.txt#x", "long.txt", parts[0].start + 5, parts[0].end - 5,
                    LONG[parts[0].start + 5:parts[0].end - 5])
    assert merge_passages([parts[0], inner]).text == parts[0].text  # one inside another
    with pytest.raises(ValueError, match="gap"):
        merge_passages([parts[0], parts[2]])
    with pytest.raises(ValueError, match="one source"):
        merge_passages([parts[0], Passage("o#0", "other.txt", 0, 3, "abc")])
    with pytest.raises(ValueError, match="empty"):
        merge_passages([])


def test_group_overlapping_keeps_rank_order_and_k() -> None:
    a = chunk_text(LONG, "a.txt", sentences=3, overlap=1)
    b = chunk_text(LONG, "b.txt", sentences=3, overlap=1)
    # ranked: a0, b0, a1 (overlaps a0), a3, b2, a2 (bridges a0+a1 and a3: one group at a0's place)
    ranked = [a[0], b[0], a[1], a[3], b[2], a[2]]
    assert group_overlapping(ranked, 5) == [[0, 2, 3, 5], [1], [4]]
    assert group_overlapping(ranked, 4) == [[0, 2, 3, 5], [1], [4]]
    assert group_overlapping(ranked, 2) == [[0, 2], [1]]  # stops at the first passage needing a third
    assert group_overlapping(ranked, 1) == [[0]]
    assert group_overlapping([], 3) == []
    same_text_other_source = [a[0], b[0]]
    assert group_overlapping(same_text_other_source, 2) == [[0], [1]]


def test_retriever_merges_overlapping_hits(tmp_path: Path) -> None:
    emb = HashEmbedder()
    corpus = {"long.txt": LONG, **CORPUS}
    index = build_or_load(corpus, tmp_path / "idx", emb, log=lambda m: None)
    assert MERGE_OVERLAPS is True
    for mode in MODES:
        merged = Retriever(index=index, embedder=emb, mode=mode).retrieve("sentence topic length", top_k=3)
        plain = Retriever(index=index, embedder=emb, mode=mode, merge=False).retrieve(
            "sentence topic length", top_k=3)
        assert len(plain) == 3 and all("+" not in h.id for h in plain)
        assert 1 <= len(merged) <= 3
        q = emb.encode(["sentence topic length"])[0]
        for h in merged:
            assert corpus[h.source][h.start:h.end] == h.text
            parts = h.id.split("+")
            rows = [r for r, p in enumerate(index.passages) if p.id in parts]
            assert len(rows) == len(parts)
            assert h.score == pytest.approx(max(float(index.vectors[r] @ q) for r in rows), abs=1e-5)
        for i, x in enumerate(merged):  # no two hits share text
            for y in merged[i + 1:]:
                assert x.source != y.source or x.end <= y.start or y.end <= x.start
        # every passage of the plain top hit is inside some merged hit
        assert any(h.source == plain[0].source and h.start <= plain[0].start and plain[0].end <= h.end
                   for h in merged)
    everything = Retriever(index=index, embedder=emb).retrieve("sentence topic length", top_k=500)
    assert sum(len(h.id.split("+")) for h in everything) == len(index.passages)
    assert any("+" in h.id for h in everything)
    with pytest.raises(TypeError, match="merge"):
        Retriever(index=index, embedder=emb, merge="yes")  # type: ignore[arg-type]


def test_lexical_matches_other_forms_of_a_word(fake_index: Index) -> None:
    # "zeppelins" and "sold" stand in the corpus as "zeppelin" and "sale": the stemmer joins the first
    r = Retriever(index=fake_index, embedder=HashEmbedder(), mode="lexical")
    hits = r.retrieve("zeppelins")
    assert hits and "zeppelin airships" in hits[0].text
    assert r.retrieve("submarine")[0].text.startswith("The navy announced")


def test_lexical_with_no_known_words_returns_nothing_and_hybrid_falls_back(fake_index: Index) -> None:
    emb = HashEmbedder()
    assert Retriever(index=fake_index, embedder=emb, mode="lexical").retrieve("the of and") == []
    assert Retriever(index=fake_index, embedder=emb, mode="lexical").retrieve("qwertyuiop") == []
    hits = Retriever(index=fake_index, embedder=emb, mode="hybrid").retrieve("qwertyuiop")
    assert len(hits) == 3 and all(h.lexical_rank is None for h in hits)


def test_bad_arguments(fake_index: Index) -> None:
    emb = HashEmbedder()
    with pytest.raises(ValueError):
        Retriever(index=fake_index, embedder=emb, mode="sparse")
    with pytest.raises(ValueError):
        Retriever(index=fake_index, embedder=emb, top_k=0)
    with pytest.raises(TypeError):
        Retriever(index=object(), embedder=emb)  # type: ignore[arg-type]
    r = Retriever(index=fake_index, embedder=emb)
    for blank in ("", "   \n\t"):
        with pytest.raises(ValueError, match="empty"):
            r.retrieve(blank)
    with pytest.raises(TypeError):
        r.retrieve(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        r.retrieve("x", top_k=-1)


def test_stopword_only_corpus(tmp_path: Path) -> None:
    index = build_or_load({"s.txt": "The and of. It is a."}, tmp_path / "i", HashEmbedder(),
                                log=lambda m: None)
    r = Retriever(index=index, embedder=HashEmbedder())
    assert len(r.retrieve("anything at all")) >= 1


# --- with the real MiniLM -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm() -> Embedder:
    e = Embedder()
    e.warm_up()
    return e


@pytest.mark.slow
def test_rare_word_found_by_hybrid_on_synthetic_corpus(minilm: Embedder, tmp_path: Path) -> None:
    index = build_or_load(CORPUS, tmp_path / "idx", minilm, log=lambda m: None)
    r = Retriever(index=index, embedder=minilm, mode="hybrid")
    r.warm_up()
    hits = r.retrieve("zeppelin deal")
    assert any("zeppelin" in h.text for h in hits)
    lexical = Retriever(index=index, embedder=minilm, mode="lexical").retrieve("zeppelin deal")
    assert "zeppelin" in lexical[0].text


@pytest.mark.slow
def test_seed_article_with_minilm(minilm: Embedder, tmp_path: Path) -> None:
    text = read_source(SEED)
    index = build_or_load({"seeds/article.txt": text}, tmp_path / "idx", minilm, log=lambda m: None)
    # pick the word that occurs in exactly one passage and use it as a two-word query with a common word
    counts: dict[str, int] = {}
    for p in index.passages:
        for w in {w.lower() for w in WORD.findall(p.text) if len(w) > 6 and w.isalpha()}:
            counts[w] = counts.get(w, 0) + 1
    rare = sorted(w for w, c in counts.items() if c == 1)
    assert rare
    for mode in MODES:
        r = Retriever(index=index, embedder=minilm, mode=mode)
        for word in rare[:5]:
            hits = r.retrieve(f"{word} deal")
            if mode != "dense":
                assert any(word in h.text.lower() for h in hits), (mode, word)
            assert all(-1.0 <= h.score <= 1.0 for h in hits)
            assert all(text[h.start:h.end] == h.text for h in hits)
    # the first paragraph (a short byline-style line) is its own passage and retrievable by its words
    first = index.passages[0]
    hits = Retriever(index=index, embedder=minilm).retrieve(first.text)
    assert hits[0].passage == first


# --- qa.lab.bench, bench_corpus and bench_timing: a smoke test (tiny sizes; no timing assertions) ---------


def _tiny_squad(path: Path) -> None:
    import json

    ctx1 = "The zeppelin landed in Lakehurst. It was large. Crowds watched it arrive."
    ctx2 = "Bananas grow in warm places. They are rich in potassium."
    def para(ctx: str, qid: str, question: str, answer: str) -> dict:
        return {"context": ctx, "qas": [{"id": qid, "question": question,
                                         "answers": [{"text": answer, "answer_start": ctx.index(answer)}]}]}

    data = {"version": "1.1", "data": [{"title": "t", "paragraphs": [
        para(ctx1, "1", "Where did the zeppelin land?", "Lakehurst"),
        para(ctx2, "2", "What are bananas rich in?", "potassium"),
    ]}]}
    path.write_text(json.dumps(data), encoding="utf-8")


def test_bench_helpers(tmp_path: Path) -> None:
    from qa.lab.bench import _parse_sizes
    from qa.lab.bench_corpus import load_contexts, passage_pool
    from qa.lab.bench_timing import _percentile

    assert _parse_sizes("1000,10k") == [1000, 10_000] and _parse_sizes("") == []
    assert _percentile([1.0, 2.0, 3.0, 4.0], 50) == pytest.approx(2.5)
    (tmp_path / "d").mkdir()
    _tiny_squad(tmp_path / "d" / "a.json")
    contexts = load_contexts(tmp_path / "d")
    assert len(contexts) == 2
    pool = passage_pool(contexts, 6)
    assert len(pool) == 6 and len({p.text for p in pool}) == 6  # windows topped up with single sentences
    texts = dict(contexts)
    for p in pool:
        name = p.source.removesuffix("/sentence")
        assert texts[name][p.start:p.end] == p.text


@pytest.mark.slow
def test_bench_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from qa.lab.bench import main

    (tmp_path / "d").mkdir()
    _tiny_squad(tmp_path / "d" / "a.json")
    argv = ["--sizes", "3,5", "--queries", "2", "--data-dir", str(tmp_path / "d"), "--recall",
            "--recall-file", str(tmp_path / "d" / "a.json"), "--cache-dir", str(tmp_path / "cache"),
            "--quiet", "--json"]
    assert main([*argv, "--answers", "2", "--cold-runs", "1"]) == 0
    result = json.loads(capsys.readouterr().out)
    answers = result["seed_answers"]
    assert answers["questions"] == 2
    assert answers["end_to_end"]["p50_ms"] >= answers["retrieval_part"]["p50_ms"]
    assert len(answers["cold_start_to_first_answer_s"]["runs"]) == 1
    assert set(result["sizes"]) == {"3", "5"}
    for size in result["sizes"].values():
        assert size["index_type"] == "flat-ip" and set(size["modes"]) == set(MODES)
    assert set(result["recall"]["modes"]) == {*MODES, "hybrid (overlaps not merged)"}
    assert result["recall"]["questions"] == 2
    assert result["seed_article"]["passages"] > 0 and result["peak_memory_mib"] > 0
    # a rerun embeds nothing new: the bench cache is keyed by text hash
    assert main([*argv, "--answers", "0", "--cold-runs", "0"]) == 0
    rerun = json.loads(capsys.readouterr().out)
    assert rerun["embedded_this_run"] == 0 and "seed_answers" not in rerun


def test_split_check_setup_splits_by_article_and_takes_a_reader(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    import qa.lab.bench_corpus
    import qa.lab.train_data
    from qa.lab.bench_corpus import split_check_setup
    from qa.reader.read import DEFAULT_READER

    titles = ["Tay", "Avon", "Exe", "Ure", "Wye", "Cam", "Dee", "Fal"]  # held out: Exe, Wye
    arts = [{"title": t, "paragraphs": [{"context": f"The {t} flows.", "qas": [
        {"id": t, "question": f" Where does the {t} flow? ", "answers": [{"text": t, "answer_start": 4}]}]}]}
        for t in titles]
    squad = tmp_path / "data" / qa.lab.train_data.SQUAD_FILE
    squad.parent.mkdir(parents=True)
    squad.write_text(json.dumps({"version": "1.1", "data": arts}), encoding="utf-8")
    monkeypatch.setattr(qa.lab.train_data, "DATA_DIR", tmp_path / "data")
    monkeypatch.setattr(qa.lab.bench_corpus, "DEFAULT_RECALL_FILE", squad)
    args, data, split = split_check_setup(["--reader", "some/folder", "--sample", "5"], description="d",
                                          sample=700, sample_help="questions")
    assert args.reader == "some/folder" and args.sample == 5 and args.top_k == 3
    assert data["data"] == arts
    assert split["validation"] == [("Where does the Exe flow?", ["Exe"], 2),
                                   ("Where does the Wye flow?", ["Wye"], 4)]
    assert sorted(q for q, _, _ in split["training"]) == sorted(
        f"Where does the {t} flow?" for t in titles if t not in ("Exe", "Wye"))
    default = split_check_setup([], description="d", sample=700, sample_help="q")[0]
    assert default.reader == str(DEFAULT_READER) and default.sample == 700
