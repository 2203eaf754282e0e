"""The passage index in PostgreSQL + pgvector: one database that every app replica shares.

Tables (in one schema, ``qa`` by default): ``meta`` (schema version, embedding model and size, chunk
settings), ``sources`` (name, SHA-256 of the text), ``passages`` (offsets, text and its SHA-256,
vector, a stored English ``tsvector``), ``sentences`` (a vector per sentence, with its text's SHA-256;
with the passages', the embedding cache), and BM25's ``postings`` (stem, passage, count, weight), ``terms``
(document frequencies) and ``stats``. Dense candidates come from an HNSW cosine index, lexical ones
are scored by BM25 from the postings (PostgreSQL's own ``ts_rank_cd`` is not BM25); one SQL statement
re-scores them with the best sentence and fuses them by reciprocal rank, and
``qa.index.retrieve.assemble_hits`` merges overlapping hits as the local index does. An update
(``qa.index.pgstore_write.sync``, which shares ``qa.index.pgschema`` with this module) is one
transaction under an advisory lock: a question sees the corpus before or after it, never half of it.
"""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING, Any

from qa.extras import missing_extra
from qa.index.build import normalise_chunk_settings
from qa.index.pgschema import SCHEMA_VERSION, TEXT_SEARCH
from qa.index.retrieve import (
    BM25_B,
    BM25_K1,
    CANDIDATE_EXTRA,
    CANDIDATE_FACTOR,
    DEFAULT_TOP_K,
    MERGE_OVERLAPS,
    RRF_K,
    SENTENCE_WEIGHT,
    assemble_hits,
    check_mode,
    check_query,
    check_top_k,
)
from qa.schema import Hit, Passage

if TYPE_CHECKING:
    from qa.index.embed import Embedder

DEFAULT_SCHEMA = "qa"
#: HNSW search breadth (pgvector's default; the build settings are in ``qa.index.pgstore_write``).
#: ``python scripts/pg_scale_check.py`` measures latency (100,000 passages: p50 19.5 ms with
#: ef_search 40 and ``POSTINGS_PER_TERM`` 200) and ``qa bench --recall --database URL`` recall
#: (squad-dev-40 recall@5 95.7).
HNSW_EF_SEARCH = 40
#: Lexical candidates: per query stem, the postings of highest BM25 weight read (then scored exactly
#: with the current corpus statistics). A stem in more passages than this is cut to its strongest ones,
#: which bounds the work per question at any corpus size (figures with ``HNSW_EF_SEARCH``).
POSTINGS_PER_TERM = 200


def _configure(conn: Any) -> None:
    """Session settings for retrieval: HNSW's search breadth, no JIT, a plan made for each question.

    The retrieval statement's estimated cost is high enough for PostgreSQL to JIT-compile it on every
    call, which costs milliseconds and saves nothing on a statement that runs for a few; and once
    psycopg prepares the repeated statement, a generic plan (blind to the mode and limits passed) is
    slower than one planned for the values (``python scripts/pg_scale_check.py`` times retrieval).
    """
    conn.execute(f"SET hnsw.ef_search = {HNSW_EF_SEARCH}")
    conn.execute("SET jit = off")
    conn.execute("SET plan_cache_mode = force_custom_plan")


class DatabaseError(RuntimeError):
    """A database that cannot be used: unreachable, without pgvector, or built for another model."""


class PgIndex:
    """Passages, vectors and full-text search in one PostgreSQL schema."""

    def __init__(self, *, url: str, schema: str = DEFAULT_SCHEMA) -> None:
        if not isinstance(url, str) or not url.startswith(("postgresql://", "postgres://")):
            raise ValueError(f"the database must be a URL such as postgresql://user@host/db, got {url!r}")
        if not isinstance(schema, str) or not schema.isidentifier():
            raise ValueError(f"schema must be a plain identifier such as 'qa', got {schema!r}")
        self.url = url
        self.schema = schema
        self._conn: Any = None
        self._lock = threading.Lock()

    # --- connection and schema ---------------------------------------------------------------

    def connect(self) -> Any:
        """A new autocommit connection (psycopg 3) with pgvector ready."""
        try:
            import psycopg
            from pgvector.psycopg import register_vector
        except ImportError as e:
            raise DatabaseError(str(missing_extra(e) or e)) from e

        try:
            conn = psycopg.connect(self.url, autocommit=True)
        except psycopg.Error as e:
            raise DatabaseError(f"cannot connect to the database ({str(e).strip()[:200]})") from e
        try:
            if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone() is None:
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        except psycopg.Error as e:
            # another process may have created it at the same moment
            if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone() is not None:
                register_vector(conn)
                _configure(conn)
                return conn
            conn.close()
            raise DatabaseError("the database has no pgvector extension (CREATE EXTENSION vector failed: "
                                f"{str(e).strip()[:160]}); install pgvector") from e
        register_vector(conn)  # numpy arrays in and out, in pgvector's binary form
        _configure(conn)
        return conn

    def _shared(self) -> Any:
        """The connection that queries share (made on first use)."""
        if self._conn is None or self._conn.closed:
            self._conn = self.connect()
        return self._conn

    def close(self) -> None:
        """Close the shared connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def meta(self) -> dict[str, Any] | None:
        """The schema's ``meta`` row as a dict, None when the schema does not exist yet."""
        with self._lock:
            conn = self._shared()
            exists = conn.execute("SELECT to_regclass(%s)", (f"{self.schema}.meta",)).fetchone()[0]
            if exists is None:
                return None
            rows = conn.execute(f"SELECT key, value FROM {self.schema}.meta").fetchall()
        return {k: json.loads(v) for k, v in rows}

    def check(self, embedder: Embedder, chunk_settings: dict[str, int] | None = None) -> None:
        """Raise DatabaseError when the schema was built with another format, model or chunking."""
        meta = self.meta()
        if meta is None:
            return
        expected = {"schema_version": SCHEMA_VERSION, "model": embedder.name, "dim": int(embedder.dim)}
        if chunk_settings is not None:
            expected["chunk"] = normalise_chunk_settings(chunk_settings)
        for key, value in expected.items():
            if meta.get(key) != value:
                raise DatabaseError(
                    f"the database schema {self.schema!r} was built with {key} {meta.get(key)!r}, not "
                    f"{value!r}: use another schema, or rebuild it (qa index --rebuild)")

    def drop(self) -> None:
        """Delete the schema and everything in it."""
        with self._lock:
            self._shared().execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")

    # --- reading ---------------------------------------------------------------------------------

    def summary(self) -> tuple[list[str], int]:
        """The source names and the number of passages."""
        if self.meta() is None:
            return [], 0
        with self._lock:
            conn = self._shared()
            names = [r[0] for r in conn.execute(f"SELECT name FROM {self.schema}.sources ORDER BY name")]
            n = conn.execute(f"SELECT count(*) FROM {self.schema}.passages").fetchone()[0]
        return names, int(n)

    def candidates(self, qvec: Any, query: str, n: int, *, sentence_weight: float = SENTENCE_WEIGHT,
                   mode: str = "hybrid") -> list[tuple[Any, ...]]:
        """Dense and lexical candidates, re-scored and fused by reciprocal rank in one statement.

        Rows: (passage, cosine, dense rank or None, lexical rank or None), best fused first; dense ranks
        count the re-scored candidates (passage and best-sentence cosine) and stop at ``n``.
        """
        import numpy as np

        s = self.schema
        sql = f"""
        WITH q AS (SELECT %(v)b::vector AS v, to_tsvector('{TEXT_SEARCH}', %(t)s) AS words),
        dense AS (SELECT p.id FROM {s}.passages p WHERE %(dense)s
                  ORDER BY p.vec <=> (SELECT v FROM q) LIMIT %(n)s),
        stems AS MATERIALIZED (SELECT w.lexeme, (SELECT df FROM {s}.terms t WHERE t.lexeme = w.lexeme) AS df
                  FROM (SELECT DISTINCT unnest(tsvector_to_array(q.words)) AS lexeme FROM q
                        WHERE %(lexical)s) w),
        hits AS (SELECT w.df, po.passage, po.tf, po.n_terms FROM stems w
                 CROSS JOIN LATERAL (SELECT passage, tf, n_terms FROM {s}.postings
                                     WHERE lexeme = w.lexeme ORDER BY weight DESC LIMIT %(m)s) po),
        lex AS (SELECT h.passage AS id,
                       sum(ln(1 + (c.passages - h.df + 0.5::float8) / (h.df + 0.5::float8)) * h.tf
                           * (%(k1)s::float8 + 1) / (h.tf + %(k1)s::float8 * (1 - %(b)s::float8
                           + %(b)s::float8 * h.n_terms / c.mean_terms))) AS r
                FROM hits h CROSS JOIN {s}.stats c
                GROUP BY h.passage ORDER BY r DESC, h.passage LIMIT %(n)s),
        cand AS (SELECT id FROM dense UNION SELECT id FROM lex),
        scored AS (
            SELECT p.id, 1 - (p.vec <=> q.v) AS cos,
                   (1 - %(w)s) * (1 - (p.vec <=> q.v))
                   + %(w)s * coalesce((SELECT max(1 - (x.vec <=> q.v)) FROM {s}.sentences x
                                       WHERE x.passage = p.id), 1 - (p.vec <=> q.v)) AS mixed
            FROM cand c JOIN {s}.passages p ON p.id = c.id CROSS JOIN q),
        dr AS (SELECT id, row_number() OVER (ORDER BY mixed DESC, id) AS rk FROM scored WHERE %(dense)s),
        lr AS (SELECT id, row_number() OVER (ORDER BY r DESC, id) AS rk FROM lex)
        SELECT p.pid, p.source, p.start_offset, p.end_offset, p.text, sc.cos,
               CASE WHEN dr.rk <= %(n)s THEN dr.rk END AS drank, lr.rk AS lrank
        FROM scored sc JOIN {s}.passages p ON p.id = sc.id
             LEFT JOIN dr ON dr.id = sc.id LEFT JOIN lr ON lr.id = sc.id
        ORDER BY coalesce(CASE WHEN dr.rk <= %(n)s THEN 1.0::float8 / (%(rrf)s + dr.rk) END, 0)
                 + coalesce(1.0::float8 / (%(rrf)s + lr.rk), 0) DESC,
                 least(coalesce(dr.rk, 1e9), coalesce(lr.rk, 1e9)), p.id
        """
        params = {"v": np.asarray(qvec, dtype=np.float32), "t": query, "n": n, "w": sentence_weight,
                  "rrf": RRF_K, "k1": BM25_K1, "b": BM25_B, "m": POSTINGS_PER_TERM,
                  "dense": mode != "lexical", "lexical": mode != "dense"}
        with self._lock:
            rows = self._shared().execute(sql, params).fetchall()
        out = []
        for pid, source, start, end, text, cos, drank, lrank in rows:
            if drank is None and lrank is None:
                continue
            out.append((Passage(pid, source, start, end, text), float(cos), drank, lrank))
        return out


class PgRetriever:
    """``qa.index.retrieve.Retriever``'s interface over a :class:`PgIndex`."""

    def __init__(self, *, store: PgIndex, embedder: Embedder, mode: str = "hybrid",
                 top_k: int = DEFAULT_TOP_K, merge: bool = MERGE_OVERLAPS,
                 sentence_weight: float = SENTENCE_WEIGHT) -> None:
        self.index = store
        self.embedder = embedder
        self.mode = check_mode(mode)
        self.top_k = check_top_k(top_k)
        self.merge = merge
        self.sentence_weight = float(sentence_weight)

    def warm_up(self) -> None:
        """Load the embedder."""
        if hasattr(self.embedder, "warm_up"):
            self.embedder.warm_up()

    def retrieve(self, query: str, *, top_k: int | None = None) -> list[Hit]:
        """The ``top_k`` hits for ``query``, as ``qa.index.retrieve.Retriever.retrieve`` gives them."""
        import numpy as np

        check_query(query)
        k = self.top_k if top_k is None else check_top_k(top_k)
        n = CANDIDATE_FACTOR * k + CANDIDATE_EXTRA
        qvec = np.asarray(self.embedder.encode([query]), dtype=np.float32)[0]
        rows = self.index.candidates(qvec, query, n, sentence_weight=self.sentence_weight, mode=self.mode)
        passages = {p.id: p for p, _, _, _ in rows}
        cosines = {p.id: cos for p, cos, _, _ in rows}
        dense = [p.id for p, _, d, _ in sorted((r for r in rows if r[2] is not None), key=lambda r: r[2])]
        lexical = [p.id for p, _, _, lx in sorted((r for r in rows if r[3] is not None), key=lambda r: r[3])]
        order = dense if self.mode == "dense" else lexical if self.mode == "lexical" else list(passages)
        return assemble_hits(order, dense, lexical, passages, cosines, k, merge=self.merge)
