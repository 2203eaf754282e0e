"""Updates of a PostgreSQL store: one transaction under an advisory lock, only new texts embedded.

``sync`` makes a schema hold exactly the sources it is given: it chunks the added and changed ones,
takes their vectors from the stored ones by text SHA-256 (embedding only what is new), and in one
transaction deletes what went, writes passages, sentence vectors and BM25 postings, keeps the document
frequencies up and builds any missing index; then ``VACUUM (ANALYZE)`` readies the tables for queries.
"""

from __future__ import annotations

import json
import zlib
from typing import TYPE_CHECKING, Any

from qa.index.build import chunk_sources, normalise_chunk_settings
from qa.index.local import passage_sentences
from qa.index.pgschema import SCHEMA_VERSION, TEXT_SEARCH, Log, Store
from qa.index.retrieve import BM25_B, BM25_K1
from qa.index.vector_cache import VectorCache, text_key

if TYPE_CHECKING:
    import numpy as np

    from qa.index.embed import Embedder
    from qa.schema import Passage

#: HNSW build settings (pgvector's defaults); ``qa.index.pgstore.HNSW_EF_SEARCH`` is the search side.
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64
#: The passage length (stems) a posting's stored weight assumes: it only orders a stem's postings.
WEIGHT_REFERENCE_TERMS = 40
#: Rows per COPY batch when writing passages and sentences.
COPY_BATCH = 1000
#: Memory for building indexes (``SET LOCAL``, this transaction only): pgvector builds an HNSW graph
#: much faster while it fits in ``maintenance_work_mem`` (64 MB by default; 100,000 vectors of 384
#: floats are about 150 MB before the graph's links).
BUILD_MEMORY = "512MB"


def sync(index: Store, sources: dict[str, str], embedder: Embedder, *,
         chunk_settings: dict | None = None, rebuild: bool = False, progress: bool = False,
         log: Log | None = None, cache: dict[str, Any] | None = None) -> dict[str, int]:
    """Make the database hold exactly ``sources``: one transaction, only new texts embedded.

    ``cache``: more vectors by text SHA-256 (``qa bench`` passes its own). Returns how many sources
    were added, changed and removed, and how many texts were embedded.
    """
    settings = normalise_chunk_settings(chunk_settings)
    say = log or (lambda m: None)
    lock_key = zlib.crc32(f"qa-index:{index.schema}".encode())
    conn = index.connect()
    try:
        conn.execute("SELECT pg_advisory_lock(%s)", (lock_key,))  # one writer at a time
        try:
            return _sync_locked(index, conn, sources, embedder, settings, rebuild, progress, say,
                                cache or {})
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (lock_key,))
    finally:
        conn.close()


def _sync_locked(index: Store, conn: Any, sources: dict[str, str], embedder: Embedder,
                 settings: dict[str, int], rebuild: bool, progress: bool, say: Log,
                 cache: dict[str, Any]) -> dict[str, int]:
    """``sync`` holding the writer lock."""
    s = index.schema
    if rebuild:
        conn.execute(f"DROP SCHEMA IF EXISTS {s} CASCADE")
    index.check(embedder, settings)
    # the schema is made whole in one transaction, so its meta table stands for all of it
    exists = conn.execute("SELECT to_regclass(%s)", (f"{s}.meta",)).fetchone()[0] is not None
    have = dict(conn.execute(f"SELECT name, sha FROM {s}.sources").fetchall()) if exists else {}
    want = {name: text_key(text) for name, text in sources.items()}
    removed = sorted(set(have) - set(want))
    changed = sorted(n for n in want if have.get(n) != want[n])
    stats = {"added": sum(n not in have for n in changed), "changed": sum(n in have for n in changed),
             "removed": len(removed), "embedded": 0}
    if not removed and not changed:
        return stats
    passages = chunk_sources({n: sources[n] for n in changed}, settings) if changed else []
    units = [[p.text, *passage_sentences(p)] for p in passages]
    store = VectorCache(None, embedder)
    store.vectors.update(cache)
    if exists:
        store.vectors.update(_cached(conn, s, {text_key(t) for u in units for t in u}))
    vectors = store.get([t for u in units for t in u], progress=progress) if units else None
    stats["embedded"] = store.embedded
    say(f"Writing {len(passages):,} passages of {len(changed)} source(s) to the database "
        f"({stats['removed']} removed).")
    with conn.transaction():
        if not exists:
            _create(conn, s, embedder, settings)
        _delete(conn, s, removed + changed)
        with conn.cursor() as cur:
            cur.executemany(f"INSERT INTO {s}.sources VALUES (%s, %s)", [(n, want[n]) for n in changed])
        _write_passages(conn, s, passages, units, vectors)
        _create_indexes(conn, s)
        _write_term_stats(conn, s, changed)
    # fresh rows: give the planner their statistics and mark their pages all-visible, so that
    # the postings' index-only scans need no table reads (VACUUM cannot run in a transaction)
    for table in ("passages", "sentences", "postings", "terms", "sources"):
        conn.execute(f"VACUUM (ANALYZE) {s}.{table}")
    return stats


def _create(conn: Any, s: str, embedder: Embedder, settings: dict[str, int]) -> None:
    """Create the schema's tables and its meta row (in the caller's transaction)."""
    dim = int(embedder.dim)
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {s}")
    conn.execute(f"CREATE TABLE {s}.meta (key text PRIMARY KEY, value text NOT NULL)")
    conn.execute(f"CREATE TABLE {s}.sources (name text PRIMARY KEY, sha text NOT NULL)")
    conn.execute(
        f"CREATE TABLE {s}.passages (id bigserial PRIMARY KEY, pid text NOT NULL UNIQUE, "
        f"key text NOT NULL, "
        f"source text NOT NULL REFERENCES {s}.sources(name) ON DELETE CASCADE, "
        f"start_offset integer NOT NULL, end_offset integer NOT NULL, text text NOT NULL, "
        f"vec vector({dim}) NOT NULL, "
        f"tsv tsvector GENERATED ALWAYS AS (to_tsvector('{TEXT_SEARCH}', text)) STORED, "
        f"n_terms integer NOT NULL DEFAULT 0)")
    # BM25's statistics: each stem's document frequency, the passage count and mean length
    conn.execute(f"CREATE TABLE {s}.terms (lexeme text PRIMARY KEY, df integer NOT NULL)")
    conn.execute(f"CREATE TABLE {s}.stats (passages integer NOT NULL, "
                 f"mean_terms double precision NOT NULL)")
    # sentences and postings name their passage without a foreign key: checking one per row made
    # writing them several times slower; ``_delete`` removes them with their passages
    conn.execute(f"CREATE TABLE {s}.sentences (passage bigint NOT NULL, key text NOT NULL, "
                 f"vec vector({dim}) NOT NULL)")
    # BM25's postings: each stem of each passage with its count, for a lookup by stem
    conn.execute(f"CREATE TABLE {s}.postings (lexeme text NOT NULL, passage bigint NOT NULL, "
                 f"tf integer NOT NULL, "
                 f"n_terms integer NOT NULL, weight real NOT NULL)")
    meta = {"schema_version": SCHEMA_VERSION, "model": embedder.name, "dim": dim, "chunk": settings}
    with conn.cursor() as cur:
        cur.executemany(f"INSERT INTO {s}.meta VALUES (%s, %s)",
                        [(k, json.dumps(v)) for k, v in meta.items()])


def _create_indexes(conn: Any, s: str) -> None:
    """Create the secondary indexes that are missing (in the caller's transaction).

    Made once the first passages are in, which is faster than growing each index row by row; later
    updates keep them up. The names are those ``CREATE INDEX`` without a name gives.
    """
    conn.execute(f"SET LOCAL maintenance_work_mem = '{BUILD_MEMORY}'")
    conn.execute(f"CREATE INDEX IF NOT EXISTS passages_source_idx ON {s}.passages (source)")
    conn.execute(f"CREATE INDEX IF NOT EXISTS passages_key_idx ON {s}.passages (key)")
    conn.execute(f"CREATE INDEX IF NOT EXISTS sentences_passage_idx ON {s}.sentences (passage)")
    conn.execute(f"CREATE INDEX IF NOT EXISTS sentences_key_idx ON {s}.sentences (key)")
    conn.execute(f"CREATE INDEX IF NOT EXISTS postings_lexeme_weight_passage_tf_n_terms_idx "
                 f"ON {s}.postings (lexeme, weight DESC) INCLUDE (passage, tf, n_terms)")
    conn.execute(f"CREATE INDEX IF NOT EXISTS postings_passage_idx ON {s}.postings (passage)")
    conn.execute(f"CREATE INDEX IF NOT EXISTS passages_vec_hnsw ON {s}.passages USING hnsw "
                 f"(vec vector_cosine_ops) WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION})")


def _passages_of(s: str) -> str:
    """SQL for the ids of the passages of the sources in the statement's one parameter (a list)."""
    return f"(SELECT id FROM {s}.passages WHERE source = ANY(%s))"


def _delete(conn: Any, s: str, names: list[str]) -> None:
    """Remove these sources with their passages, sentences and postings (in the caller's transaction)."""
    if not names:
        return
    # their stems' document frequencies first, while their postings are there to count
    conn.execute(f"UPDATE {s}.terms t SET df = t.df - gone.n FROM (SELECT lexeme, count(*) AS n "
                 f"FROM {s}.postings WHERE passage IN {_passages_of(s)} "
                 f"GROUP BY lexeme) gone WHERE t.lexeme = gone.lexeme", (names,))
    conn.execute(f"DELETE FROM {s}.terms WHERE df <= 0")
    for table in ("sentences", "postings"):
        conn.execute(f"DELETE FROM {s}.{table} WHERE passage IN {_passages_of(s)}", (names,))
    conn.execute(f"DELETE FROM {s}.sources WHERE name = ANY(%s)", (names,))  # cascades to passages


def _write_term_stats(conn: Any, s: str, names: list[str]) -> None:
    """Add the postings of these sources to the document frequencies; recount passages and mean length.

    Counting only what changed keeps a small update small at any corpus size (in the caller's
    transaction; ``_delete`` has taken off what was removed).
    """
    conn.execute(f"INSERT INTO {s}.terms SELECT lexeme, count(*) FROM {s}.postings "
                 f"WHERE passage IN {_passages_of(s)} GROUP BY lexeme "
                 f"ON CONFLICT (lexeme) DO UPDATE SET df = {s}.terms.df + excluded.df", (names,))
    conn.execute(f"DELETE FROM {s}.stats")
    conn.execute(f"INSERT INTO {s}.stats SELECT count(*), greatest(avg(n_terms), 1) FROM {s}.passages")


def _cached(conn: Any, s: str, keys: set[str]) -> dict[str, Any]:
    """Stored vectors of passages and sentences whose text has one of these keys (the cache)."""
    import numpy as np

    if not keys:
        return {}
    wanted = sorted(keys)
    with conn.cursor(binary=True) as cur:
        rows = cur.execute(f"SELECT key, vec FROM {s}.passages WHERE key = ANY(%s) UNION ALL "
                           f"SELECT key, vec FROM {s}.sentences WHERE key = ANY(%s)",
                           (wanted, wanted)).fetchall()
    # pgvector's adapter gives a Vector (0.4 and later) or an array (before): always float32 arrays
    return {key: np.asarray(vec.to_numpy() if hasattr(vec, "to_numpy") else vec, dtype=np.float32)
            for key, vec in rows}


def _write_passages(conn: Any, s: str, passages: list[Passage], units: list[list[str]],
                    vectors: np.ndarray | None) -> None:
    """Insert passages, their sentences' vectors and BM25 postings (in the caller's transaction).

    ``units[i]`` is passage i's text then its sentences; their vectors follow one another in
    ``vectors``.
    """
    firsts, row = [], 0
    for unit in units:
        firsts.append(row)
        row += len(unit)
    with conn.cursor() as cur:
        for b in range(0, len(passages), COPY_BATCH):
            batch = range(b, min(b + COPY_BATCH, len(passages)))
            cur.executemany(
                f"INSERT INTO {s}.passages (pid, key, source, start_offset, end_offset, text, vec) "
                f"VALUES (%s, %s, %s, %s, %s, %s, %b) RETURNING id",
                [(p.id, text_key(p.text), p.source, p.start, p.end, p.text, vectors[firsts[i]])
                 for i, p in zip(batch, passages[batch.start:batch.stop], strict=True)], returning=True)
            ids = []
            while True:
                ids.append(cur.fetchone()[0])
                if not cur.nextset():
                    break
            with cur.copy(f"COPY {s}.sentences (passage, key, vec) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["bigint", "text", "vector"])
                for p_id, i in zip(ids, batch, strict=True):
                    for j in range(1, len(units[i])):
                        copy.write_row((p_id, text_key(units[i][j]), vectors[firsts[i] + j]))
            # BM25's length and postings of the new passages
            cur.execute(f"UPDATE {s}.passages SET n_terms = coalesce((SELECT sum(array_length(positions, "
                        f"1)) FROM unnest(tsv)), 0) WHERE id = ANY(%s)", (ids,))
            # weight: BM25's term-frequency part at a reference length, to read a stem's best first
            cur.execute(f"INSERT INTO {s}.postings "
                        f"SELECT u.lexeme, p.id, u.tf, p.n_terms, u.tf * (%(k1)s::real + 1) / (u.tf "
                        f"+ %(k1)s::real * (1 - %(b)s::real + %(b)s::real * p.n_terms / %(ref)s::real)) "
                        f"FROM {s}.passages p, LATERAL (SELECT lexeme, array_length(positions, 1) AS tf "
                        f"FROM unnest(p.tsv)) u WHERE p.id = ANY(%(ids)s)",
                        {"ids": ids, "k1": BM25_K1, "b": BM25_B, "ref": WEIGHT_REFERENCE_TERMS})
