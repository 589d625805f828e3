"""The PostgreSQL indexes against the embedded ones on the same data: BM25 scores equal to
the numpy engine's, vector search equal to exact search, filters applied inside SQL, writes
that commit with the caller's transaction."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine

from indexes import Bm25Index, ExactIndex, IdFilter
from ragstack.store import Store
from ragstack.store.pgindex import PgBm25Index, PgVectorIndex, create_collection_tables
from tests.conftest import fresh_postgres_database

TEXTS = [
    "The vacation policy gives twenty days of paid leave",
    "Expense reports are due monthly, expenses over limits need approval",
    "Deploys run canary releases before the full rollout",
    "The deploy pipeline rolls back a failed canary automatically",
    "Salary bands are reviewed every year",
    "Parental leave is sixteen weeks, paid",
    "",  # no indexable term: still a document
    "leave leave leave the building when the alarm sounds",
]


@pytest.fixture
def engine(postgres_server: object) -> Engine:
    store = Store(fresh_postgres_database(postgres_server))
    store.create_schema()  # the vector extension
    return store.engine


def both(engine: Engine, dim: int, backend: str = "hnsw") -> tuple[PgVectorIndex, PgBm25Index]:
    dense, lexical = PgVectorIndex(engine, 7, dim, backend), PgBm25Index(engine, 7)
    create_collection_tables(engine, dense, lexical)
    return dense, lexical


def test_bm25_scores_equal_the_embedded_engine(engine: Engine) -> None:
    _, pg = both(engine, 4)
    ref = Bm25Index()
    ids = np.arange(10, 10 + len(TEXTS))
    pg.add(ids, TEXTS)
    ref.add(ids, TEXTS)
    assert pg.ids().tolist() == ids.tolist() and len(pg) == len(TEXTS)
    for query in ("paid leave", "deploy canary", "expenses", "leave leave", "nothing here"):
        got, want = pg.search(query, 5), ref.search(query, 5)
        assert got.ids.tolist() == want.ids.tolist(), query
        np.testing.assert_allclose(got.scores, want.scores, rtol=1e-5)
    # removal keeps df, document count and average length exact
    pg.remove([11, 13, 999])
    ref.remove([11, 13])
    for query in ("paid leave", "deploy canary", "expenses"):
        got, want = pg.search(query, 5), ref.search(query, 5)
        assert got.ids.tolist() == want.ids.tolist(), query
        np.testing.assert_allclose(got.scores, want.scores, rtol=1e-5)
    allow = IdFilter([15, 17])
    got, want = pg.search("leave", 5, allow), ref.search("leave", 5, allow)
    assert got.ids.tolist() == want.ids.tolist() == [17, 15]
    np.testing.assert_allclose(got.scores, want.scores, rtol=1e-5)
    # permitted-set statistics, both ways of naming the set: a twin holding only them agrees
    from sqlalchemy import literal_column, select

    from ragstack.store.pgindex import SqlAllow

    twin = Bm25Index()
    for chosen in ([10, 12, 14, 17], [12], [10, 12, 14, 15, 16, 17]):
        twin = Bm25Index()
        twin.add(np.array(chosen), [TEXTS[i - 10] for i in chosen])
        ids_sql: Any = select(literal_column("x")).select_from(
            select(literal_column(f"unnest(ARRAY[{','.join(map(str, chosen))}]::bigint[])")
                   .label("x")).subquery()
        )  # fmt: skip
        for allow_ in (IdFilter(chosen), SqlAllow(ids_sql, key=("t", tuple(chosen)))):
            for query in ("paid leave", "deploy canary", "leave the alarm", "expenses"):
                got, want = pg.search(query, 5, allow_), twin.search(query, 5)
                assert got.ids.tolist() == want.ids.tolist(), (chosen, query)
                np.testing.assert_allclose(got.scores, want.scores, rtol=1e-5)


@pytest.mark.parametrize("backend", ["hnsw", "exact"])
def test_vector_search_equals_exact_search_with_filters(engine: Engine, backend: str) -> None:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((600, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = np.arange(1, 601)
    pg, _ = both(engine, 16, backend)
    from sqlalchemy import text

    with engine.connect() as conn:
        made = conn.execute(text("SELECT indexdef FROM pg_indexes WHERE indexname = "
                                 "'rs_dense_7_hnsw'")).scalar()  # fmt: skip
    assert (made is not None) == (backend == "hnsw")
    assert made is None or ("hnsw" in made and "vector_ip_ops" in made and "m='16'" in made)
    ref = ExactIndex(16)
    pg.add(ids, vectors)
    ref.add(ids, vectors)
    queries = vectors[:5] + 0.1 * rng.standard_normal((5, 16)).astype(np.float32)
    for allow in (None, IdFilter(ids[::7]), IdFilter([3, 5])):
        got, want = pg.search(queries, 10, allow), ref.search(queries, 10, allow)
        for row in range(5):
            # HNSW is approximate: nearly all of the exact top 10, with exact scores
            exact = dict(want.hits(row))
            overlap = [(i, s) for i, s in got.hits(row) if i in exact]
            assert len(overlap) >= (10 if backend == "exact" or allow else 8) * len(exact) // 10
            assert all(abs(s - exact[i]) < 1e-4 for i, s in overlap)
            assert {i for i, _ in got.hits(row)} <= set((allow or IdFilter(ids)).ids.tolist())
            n = len(want.hits(row))
            assert len(got.hits(row)) == n, "k permitted results come back when k exist"
    assert pg.remove([1, 2, 2000]) == 2 and len(pg) == 598 and 1 not in pg and 3 in pg


def test_writes_commit_or_roll_back_with_the_callers_transaction(engine: Engine) -> None:
    dense, lexical = both(engine, 4)
    vec = np.eye(4, dtype=np.float32)
    with pytest.raises(RuntimeError), engine.begin() as conn:
        dense.add_in(conn, [1, 2], vec[:2])
        lexical.add_in(conn, [1, 2], TEXTS[:2])
        raise RuntimeError("the SQL write failed")
    assert len(dense) == 0 and len(lexical) == 0 and lexical.search("vacation", 3).ids.size == 0
    with engine.begin() as conn:
        dense.add_in(conn, [1, 2], vec[:2])
        lexical.add_in(conn, [1, 2], TEXTS[:2])
    assert dense.ids().tolist() == lexical.ids().tolist() == [1, 2]


def test_ivf_collections_build_their_lists_once_trained(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ivfpq`` collections on PostgreSQL: exact until enough rows, then an IVFFlat index
    (trained on the rows present) whose filtered searches still return k permitted hits."""
    from sqlalchemy import text

    monkeypatch.setattr(PgVectorIndex, "IVF_MIN_ROWS", 500)
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((800, 8)).astype(np.float32)
    pg, _ = both(engine, 8, "ivfpq")
    ref = ExactIndex(8)

    def ivf_built() -> bool:
        with engine.connect() as conn:
            q = text("SELECT 1 FROM pg_indexes WHERE indexname = 'rs_dense_7_ivf'")
            return conn.execute(q).first() is not None

    pg.add(np.arange(1, 301), vectors[:300])
    pg.save()
    assert not ivf_built(), "300 rows are too few to train lists on"
    pg.add(np.arange(301, 801), vectors[300:])
    ref.add(np.arange(1, 801), vectors)
    pg.save()
    assert ivf_built()
    allow = IdFilter(np.arange(1, 801, 3))
    got, want = pg.search(vectors[:4], 10, allow), ref.search(vectors[:4], 10, allow)
    for row in range(4):
        assert len(got.hits(row)) == 10
        assert {i for i, _ in got.hits(row)} <= set(allow.ids.tolist())
        exact = {i for i, _ in want.hits(row)}
        assert len(exact & {i for i, _ in got.hits(row)}) >= 7


def _bm25_twins(engine: Engine, ids: Any, texts: list[str]) -> tuple[PgBm25Index, Bm25Index]:
    """The same rows in a PostgreSQL BM25 index and in the embedded engine."""
    _, pg = both(engine, 4)
    ref = Bm25Index()
    pg.add(ids, texts)
    ref.add(ids, texts)
    return pg, ref


def _spy_pruning(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """How each BM25 query is scored from now on: ``full`` (every posting), ``share`` (the
    pruned statement, stopword-like terms left out) or ``guessed`` (pruned past the
    stopword share, by the guessed threshold)."""
    from ragstack.store.pgindex import scoring

    real = scoring.Scoring.pruned
    outcomes: list[str] = []

    def spy(self: Any, conn: Any, weights: Any, df: Any = None) -> Any:
        found = real(self, conn, weights, df)
        ws = [w for _, w in weights]
        share = min(ws) <= 0.05 * max(ws)  # the stopword rule alone would cut
        outcomes.append("full" if found is None else "share" if share else "guessed")
        return found

    monkeypatch.setattr(scoring.Scoring, "pruned", spy)
    return outcomes


def test_bm25_pruning_keeps_the_exact_top_k_of_a_restricted_set(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Queries with a term in nearly every row take the MaxScore path (the common term's
    postings are not read, only looked up for candidates): the hits and scores are still
    the embedded engine's, with the permitted set's own statistics, at small and large k."""

    rng = np.random.default_rng(3)
    words = [f"w{i}" for i in range(40)]
    texts = []
    for i in range(400):
        body = list(rng.choice(words, size=int(rng.integers(3, 12)), p=None))
        if i % 50:  # "common" in all rows but every 50th
            body += ["common"] * int(rng.integers(1, 4))
        texts.append(" ".join(body))
    ids = np.arange(1000, 1400)
    pg, ref = _bm25_twins(engine, ids, texts)
    outcomes = _spy_pruning(monkeypatch)
    for allow in (None, IdFilter(ids[rng.random(400) < 0.3]), IdFilter(ids[::9])):
        for query in ("common w3", "w7 common common", "common w1 w2", "w5 w6", "common"):
            for k in (3, 10, 60):
                got, want = pg.search(query, k, allow), ref.search(query, k, allow)
                assert got.ids.tolist() == want.ids.tolist(), (query, k)
                np.testing.assert_allclose(got.scores, want.scores, rtol=1e-5)
                if allow is not None:
                    assert set(got.ids.tolist()) <= set(allow.ids.tolist())
    assert any(o != "full" for o in outcomes), "no query took the pruned path"
    assert "full" in outcomes, "no query fell back to scoring every posting"
    # pruned with one essential term ("common w3") and with several ("common w1 w2")
    assert {kind for kind, _ in pg._scoring} == {"full", "pruned", "pruned1"}


def _zipf_texts(rng: np.random.Generator, words: int, rows: int) -> tuple[Any, Any, list[str]]:
    """A vocabulary of ``words``, its Zipf law (exponent 1.1) and ``rows`` texts of 8 to 40
    words drawn from it."""
    vocab = np.array([f"z{i}" for i in range(words)])
    p = 1.0 / np.arange(1, words + 1) ** 1.1
    p /= p.sum()
    texts = [" ".join(rng.choice(vocab, size=int(rng.integers(8, 40)), p=p)) for _ in range(rows)]
    return vocab, p, texts


def test_bm25_guessed_cuts_keep_the_exact_top_k_on_zipf_text(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Zipf text, where a query's common terms are not stopwords (weights of a fifth to a
    half of the rarest's): the cut guessed from the terms' frequencies skips their postings
    for many queries and falls back for some, and every answer is the embedded engine's."""

    rng = np.random.default_rng(11)
    vocab, p, texts = _zipf_texts(rng, 3000, 6000)
    ids = np.arange(1, 6001)
    pg, ref = _bm25_twins(engine, ids, texts)
    outcomes = _spy_pruning(monkeypatch)
    head = p[:400] / p[:400].sum()
    queries = [" ".join(rng.choice(vocab[:400], size=int(rng.integers(2, 5)), p=head))
               for _ in range(60)]  # fmt: skip
    for allow in (None, IdFilter(ids[rng.random(6000) < 0.6])):
        for query in queries:
            for k in (10, 100):
                got, want = pg.search(query, k, allow), ref.search(query, k, allow)
                assert got.ids.tolist() == want.ids.tolist(), (query, k)
                np.testing.assert_allclose(got.scores, want.scores, rtol=1e-5)
    assert outcomes.count("guessed") >= 10, outcomes
    assert "full" in outcomes


def test_bm25_pruning_threshold_is_a_full_score_of_a_permitted_row(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pruned statement's threshold (theta) is the k-th best *full* score among the
    rows with the best partial scores, not the k-th best partial: never above the true k-th
    best score (else a row that ranks could be cut), and equal to it for most queries, where
    the best partials hold the top k. The k-th best partial fell below it whenever a common
    term added to the top rows, and let through nearly every row as a candidate (a 100k-chunk
    query probed 68k rows: 225 ms, now 143)."""
    from ragstack.store.pgindex import scoring

    rng = np.random.default_rng(5)
    vocab, p, texts = _zipf_texts(rng, 2000, 4000)
    ids = np.arange(1, 4001)
    pg, ref = _bm25_twins(engine, ids, texts)
    thetas: list[float] = []
    real = scoring.Scoring.pruned

    def spy(self: Any, conn: Any, weights: Any, df: Any = None) -> Any:
        found = real(self, conn, weights, df)
        if found:
            thetas.append(float(found[0].theta))
        return found

    monkeypatch.setattr(scoring.Scoring, "pruned", spy)
    head = p[:300] / p[:300].sum()
    exact = 0
    pruned = 0
    allow = IdFilter(ids[rng.random(4000) < 0.7])
    for _ in range(60):
        query = " ".join(rng.choice(vocab[:300], size=int(rng.integers(2, 5)), p=head))
        for k in (10, 50):
            thetas.clear()
            got, want = pg.search(query, k, allow), ref.search(query, k, allow)
            assert got.ids.tolist() == want.ids.tolist(), (query, k)
            if thetas and len(want.scores) == k:
                pruned += 1
                kth = float(want.scores[k - 1])
                assert thetas[0] <= kth * (1 + 1e-5) + 1e-6, (query, k, thetas[0], kth)
                exact += abs(thetas[0] - kth) <= 1e-5 * kth
    assert pruned >= 20, pruned
    assert exact >= 0.8 * pruned, (exact, pruned)


def _scoring_plan(engine: Engine, pg: PgBm25Index, query: str) -> str:
    """EXPLAIN of the statement ``pg.search(query)`` scores with."""
    from sqlalchemy import event

    seen: list[tuple[str, Any]] = []

    def grab(_c: Any, _cur: Any, statement: str, params: Any, _ctx: Any, _many: bool) -> None:
        if "sum(" in statement:
            seen.append((statement, params))

    event.listen(engine, "before_cursor_execute", grab)
    try:
        assert pg.search(query, 10).ids.size
    finally:
        event.remove(engine, "before_cursor_execute", grab)
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("EXPLAIN " + seen[-1][0], seen[-1][1])
        return "\n".join(row[0] for row in cur.fetchall())
    finally:
        raw.close()


def test_bm25_reads_only_the_query_terms_postings_before_and_after_tending(
    engine: Engine,
) -> None:
    """Postings of 10,000 chunks never analysed (a bulk ingest ahead of autovacuum, or its
    counters lost at an unclean stop): the planner knows nothing, and the scoring statement
    must still read the query terms' postings through the index, never the whole table.
    ``save()`` then vacuums and analyses the tables, once, and the plan stays on the index."""
    _, pg = both(engine, 4)
    rng = np.random.default_rng(3)
    words = [f"w{i}" for i in range(2000)]
    texts = [" ".join(rng.choice(words, 60)) for _ in range(10_000)]
    pg.add(np.arange(1, 10_001), texts)
    with engine.connect() as conn:
        tuples = conn.exec_driver_sql(
            "SELECT reltuples FROM pg_class WHERE relname = %s", (pg.post.name,)
        ).scalar_one()
    assert tuples < 0  # never analysed
    plan = _scoring_plan(engine, pg, "w1 w2 w3")
    assert "Seq Scan on " + pg.post.name not in plan and pg.post.name in plan, plan
    from ragstack.store.pgindex import tend

    pg.save()
    names = [pg.post.name, pg.docs.name, pg.term_df.name]
    assert tend(engine, names) == []  # tended by save(): nothing left to do
    with engine.connect() as conn:
        analysed = conn.exec_driver_sql(
            "SELECT count(*) FROM pg_stat_user_tables WHERE relname = ANY(%s)"
            " AND last_vacuum IS NOT NULL AND last_analyze IS NOT NULL",
            (names,),
        ).scalar_one()
    assert analysed == 3
    plan = _scoring_plan(engine, pg, "w1 w2 w3")
    assert "Seq Scan on " + pg.post.name not in plan, plan
    ref = Bm25Index()
    ref.add(np.arange(1, 10_001), texts)
    got, want = pg.search("w1 w2 w3", 10), ref.search("w1 w2 w3", 10)
    assert got.ids.tolist() == want.ids.tolist()


@pytest.mark.parametrize("spacing", [1, 100])
def test_long_permitted_sets_as_bitmaps_or_lists_give_the_exact_results(
    engine: Engine, spacing: int
) -> None:
    """Permitted sets whose list to send is long (over 3,000 ids, included or excluded) go
    as a bitmap when the ids are dense (``spacing`` 1) and as the list when they are sparse
    (100): either way BM25 (scores, with the set's own statistics) equals the embedded engine
    over exactly the permitted rows, and dense search returns only permitted rows, exactly
    on the exact backend -- including the set's first and last ids."""
    from ragstack.store.pgindex.permits import as_bitmap

    rng = np.random.default_rng(5)
    n = 8000
    ids = np.arange(1, n + 1) * spacing
    words = [f"w{i}" for i in range(400)]
    texts = [" ".join(rng.choice(words, 12)) for _ in range(n)]
    vectors = rng.standard_normal((n, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    dense, pg = both(engine, 8, "exact")
    graph = PgVectorIndex(engine, 8, 8, "hnsw")
    create_collection_tables(engine, graph, PgBm25Index(engine, 8))
    pg.add(ids, texts)
    dense.add(ids, vectors)
    graph.add(ids, vectors)
    exact = ExactIndex(8)
    exact.add(ids, vectors)
    shapes = {
        "half": ids[rng.random(n) < 0.5],  # ~4,000 listed either way
        "wide": ids[rng.random(n) < 0.58],  # ~3,400 excluded
        "most": [*ids[rng.random(n) < 0.9][:-1].tolist(), int(ids[-1])],  # 800 excluded
        "edges": ids[(np.arange(n) < 2000) | (np.arange(n) >= n - 2000)],
    }
    for shape, chosen in shapes.items():
        chosen = np.asarray(chosen, dtype=np.int64)
        allow = IdFilter(chosen)
        listed = min(chosen.size, n - chosen.size)
        assert (as_bitmap(chosen, listed) is not None) == (spacing == 1 and listed > 3000)
        twin = Bm25Index()
        twin.add(chosen, [texts[int(i) // spacing - 1] for i in chosen])
        for query in ("w1 w2", "w7 w300 w13", "w399"):
            got, want = pg.search(query, 20, allow), twin.search(query, 20)
            assert got.ids.tolist() == want.ids.tolist(), (shape, query)
            np.testing.assert_allclose(got.scores, want.scores, rtol=1e-5)
        queries = np.vstack([vectors[0], vectors[-1], vectors[n // 2]])
        got_d, want_d = dense.search(queries, 10, allow), exact.search(queries, 10, allow)
        assert got_d.ids.tolist() == want_d.ids.tolist(), shape
        approx = graph.search(queries, 10, allow)
        for row in range(len(queries)):
            found = [i for i, _ in approx.hits(row)]
            assert len(found) == 10 and set(found) <= set(chosen.tolist()), shape
            assert len(set(found) & set(want_d.ids[row].tolist())) >= 8, shape


def test_query_vectors_are_sent_exactly(engine: Engine) -> None:
    """The text a query vector is bound as parses back, in PostgreSQL, to the same float32s
    (tiny, huge and ordinary values alike)."""
    from ragstack.store.pgindex.dense import vector_text

    rng = np.random.default_rng(9)
    vecs = rng.standard_normal((50, 16)).astype(np.float32)
    vecs[0] = np.float32(1e-38) * np.arange(16)
    vecs[1] = np.float32(3e38) * (rng.random(16).astype(np.float32) - 0.5)
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        for vec in vecs:
            cur.execute("SELECT (%s::vector)::real[]", (vector_text(vec),))
            row = cur.fetchone()
            assert row is not None
            back = np.array(row[0], dtype=np.float32)
            assert np.array_equal(back, vec)
    finally:
        raw.close()


def test_pooled_connections_are_pinged_only_after_sitting_idle(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection reused at once is not pinged (a round trip per request for nothing); one
    that sat idle past PG_PING_IDLE_S is, and so is one whose socket the server closed (a
    restart, a terminated backend): a dead one is replaced before any statement sees it."""
    import time

    from sqlalchemy import text

    from ragstack.store import engine as engine_module

    def backend_pid() -> int:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())

    first = backend_pid()
    pinged = []
    real_ping = engine.dialect.do_ping

    def counting_ping(dbapi_conn: Any) -> bool:
        pinged.append(1)
        return bool(real_ping(dbapi_conn))

    monkeypatch.setattr(engine.dialect, "do_ping", counting_ping)
    for _ in range(5):
        assert backend_pid() == first  # the same pooled connection, reused at once
    assert pinged == []

    admin = Store(engine.url.set(database="postgres").render_as_string(False)).engine

    def kill(pid: int) -> None:  # as a server restart would, and wait until it is gone
        with admin.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            while conn.execute(
                text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
            ).scalar_one():
                time.sleep(0.01)

    # killed a moment after its last use: the closed socket is seen, pinged, replaced
    kill(first)
    second = backend_pid()  # no error
    assert len(pinged) == 1 and second != first
    assert backend_pid() == second and len(pinged) == 1  # reused at once: no ping

    # idle past the limit: pinged even though nothing arrived
    monkeypatch.setattr(engine_module, "PG_PING_IDLE_S", 0.0)
    assert backend_pid() == second and len(pinged) == 2
    kill(second)
    third = backend_pid()
    assert third not in (first, second)
    admin.dispose()


def test_a_bitmap_permitted_graph_scan_is_planned_on_the_graph_index(engine: Engine) -> None:
    """The statement a graph search runs for a bitmap-permitted set is planned, with its own
    values (a custom plan, as each new connection's first executions are), as a scan of the
    graph index: estimated as rare, the bitmap test made PostgreSQL scan the table whole."""
    from sqlalchemy import event

    from ragstack.store.pgindex.permits import as_bitmap

    rng = np.random.default_rng(3)
    n = 8000
    ids = np.arange(1, n + 1)
    vectors = rng.standard_normal((n, 8)).astype(np.float32)
    graph = PgVectorIndex(engine, 9, 8, "hnsw")
    create_collection_tables(engine, graph, PgBm25Index(engine, 9))
    graph.add(ids, vectors)
    chosen = ids[rng.random(n) < 0.5]
    assert as_bitmap(chosen, min(chosen.size, n - chosen.size)) is not None
    seen: list[tuple[str, Any]] = []

    def spy(_c: Any, _cur: Any, statement: str, params: Any, *_rest: Any) -> None:
        if "<#>" in statement:
            seen.append((statement, params))

    event.listen(engine, "before_cursor_execute", spy)
    try:
        found = graph.search(vectors[:1], 10, IdFilter(chosen)).hits(0)
    finally:
        event.remove(engine, "before_cursor_execute", spy)
    assert len(found) == 10 and {i for i, _ in found} <= set(chosen.tolist())
    statement, params = seen[0]
    assert "get_bit" in statement
    with engine.connect() as conn:
        plan = "\n".join(row[0] for row in conn.exec_driver_sql("EXPLAIN " + statement, params))
    assert "Index Scan using" in plan and "hnsw" in plan, plan
    assert "Seq Scan" not in plan, plan
