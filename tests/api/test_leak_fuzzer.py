"""The leak fuzzer (``evals.leaks``), a CI-sized sample on SQLite and on PostgreSQL: a live
API server over collections and tenants with random ACLs; nothing a reader gets may come from
or depend on a document it may not read, before, during and after permission changes.
``python -m evals.bench_security`` runs the full size (at least 20,000 cases)."""

from __future__ import annotations

from pathlib import Path

import pytest

from evals.leaks import READERS, Fuzzer, LiveServer, Sizes, build_world
from ragstack.api import create_app
from tests.conftest import fresh_postgres_database


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest) -> str | None:
    if request.param == "sqlite":
        return None
    return fresh_postgres_database(request.getfixturevalue("postgres_server"))


def test_no_response_depends_on_a_hidden_document(tmp_path: Path, database: str | None) -> None:
    world = build_world(tmp_path, database_url=database, sizes=Sizes(corp=120, big=4600, acme=30))
    crowd = next(r for r in READERS if r.name == "crowd")
    permitted = sum(1 for d in world.docs if d.collection == "big" and crowd.reads(d.acl, d.tenant))
    assert permitted > 4096, "the HNSW over-fetch path (over its exact-scan limit) must run"
    with LiveServer(create_app(world.svc)) as server:
        fuzzer = Fuzzer(world, server.url)
        try:
            report = fuzzer.compare_twins(queries=6)
            report = fuzzer.fuzz(900)
            report = fuzzer.churn(seconds=6.0)
        finally:
            fuzzer.close()
    assert report.leaks == [], report.leaks[:10]
    assert report.score_dependence == 0 and report.twin_comparisons >= 100
    assert report.id_gaps_revealed == 0
    assert report.mutations >= 5 and report.churn_responses >= 20
    assert report.stale == 0
    assert min(report.routes.values()) >= 10, report.routes
