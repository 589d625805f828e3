"""kill -9 at random points of real ingest processes: nothing lost, nothing duplicated, on
SQLite (indexes in files) and on PostgreSQL (indexes in the database)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

WORDS = [
    "policy",
    "travel",
    "budget",
    "laptop",
    "security",
    "review",
    "incident",
    "customer",
    "invoice",
    "meeting",
    "roadmap",
    "release",
    "backup",
    "network",
    "storage",
]


def write_doc(folder: Path, i: int, rng: random.Random) -> None:
    paras = [
        " ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 60))) + "."
        for _ in range(rng.randint(2, 6))
    ]
    body = "\n\n".join(paras)
    (folder / f"doc{i:04d}.md").write_text(f"# Document {i}\n\n## Body\n{body}\n", encoding="utf-8")


def run_cli(args: list[str], env: dict[str, str], timeout: float = 120) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "ragstack", *args],
        env=env,
        timeout=timeout,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def env_for(data: Path, database_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "RAGSTACK_DATA_DIR": str(data),
            "RAGSTACK_DATABASE_URL": database_url,
            "RAGSTACK_EMBEDDER": "hashing",
            "RAGSTACK_PRINCIPAL": "user:alice",
            "RAGSTACK_INDEX_SAVE_INTERVAL_S": "0.05",
            "RAGSTACK_CHUNK_MAX_TOKENS": "48",
            "RAGSTACK_CHUNK_OVERLAP_TOKENS": "8",
            "RAGSTACK_EMBED_BATCH_SIZE": "4",
        }
    )
    return env


def snapshot(database_url: str) -> tuple[dict[str, str], int, list[tuple[str, int, int]]]:
    from sqlalchemy import text

    from ragstack.store import make_engine

    engine = make_engine(database_url)
    try:
        with engine.connect() as con:
            docs = {u: v for u, v in con.execute(text("SELECT uri, version FROM documents"))}
            chunks = con.execute(text("SELECT COUNT(*) FROM chunks")).scalar_one()
            per_doc = [
                (u, int(n), int(m))
                for u, n, m in con.execute(
                    text(
                        "SELECT d.uri, d.chunk_count, COUNT(c.id) FROM documents d "
                        "LEFT JOIN chunks c ON c.document_id = d.id GROUP BY d.id, d.uri, "
                        "d.chunk_count ORDER BY d.uri"
                    )
                )
            ]
    finally:
        engine.dispose()
    return docs, int(chunks), per_doc


def reference_database(database_url: str, tmp_path: Path, server: object) -> str:
    """A second, empty database of the same kind."""
    if database_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'ref.db'}"
    from tests.conftest import fresh_postgres_database

    return fresh_postgres_database(server)


def run_counter(database_url: str) -> Callable[[], int]:
    """How many ingest runs the database has seen (0 before its schema exists)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError, ProgrammingError

    from ragstack.store.engine import database_url as driver_url

    engine = create_engine(driver_url(database_url))

    def count() -> int:
        try:
            with engine.connect() as conn:
                return int(conn.execute(text("SELECT count(*) FROM ingest_runs")).scalar() or 0)
        except (OperationalError, ProgrammingError):
            return 0

    return count


@pytest.mark.slow
def test_kill_9_during_ingest(
    tmp_path: Path, database_url: str, request: pytest.FixtureRequest
) -> None:
    rng = random.Random(20261123)
    docs = tmp_path / "docs"
    docs.mkdir()
    next_id = 600
    for i in range(next_id):
        write_doc(docs, i, rng)
    data = tmp_path / "data"
    env = env_for(data, database_url)
    cmd = [sys.executable, "-m", "ragstack", "ingest", str(docs), "-c", "crash", "--json"]
    kills = completed = 0
    runs = run_counter(database_url)
    while kills < 20:
        started = runs()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # kill at a random point of the ingest itself, however long the process takes to
        # start (a loaded machine can take seconds to import the models)
        deadline = time.monotonic() + 120
        while runs() == started and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        try:
            proc.wait(timeout=rng.uniform(0.0, 2.5))
            completed += 1
        except subprocess.TimeoutExpired:
            proc.kill()  # SIGKILL: no cleanup, no atexit, no finally
            proc.wait()
            kills += 1
        # every round, the source changes: new, edited and deleted files
        for _ in range(rng.randint(5, 25)):
            write_doc(docs, next_id, rng)
            next_id += 1
        for path in rng.sample(sorted(docs.glob("*.md")), 10):
            if rng.random() < 0.5:
                path.unlink()
            else:
                write_doc(docs, int(path.stem[3:]), rng)
    assert kills >= 20
    check = json.loads(run_cli(["index", "check", "--json"], env))
    assert check[0]["ok"], check
    time.sleep(0.1)
    final = json.loads(run_cli(cmd[3:], env, timeout=300))
    assert final["failed"] == 0
    no_repair = json.loads(run_cli(["index", "check", "--no-repair", "--json"], env))
    assert no_repair[0]["ok"], "a completed run leaves indexes in step without any repair"

    # the same folder ingested once, cleanly, into a fresh data dir is the reference
    server = request.getfixturevalue("postgres_server") if "postgresql" in database_url else None
    ref_url = reference_database(database_url, tmp_path, server)
    run_cli(cmd[3:], env_for(tmp_path / "ref", ref_url), timeout=300)
    got_docs, got_chunks, got_per_doc = snapshot(database_url)
    ref_docs, ref_chunks, ref_per_doc = snapshot(ref_url)
    on_disk = {p.absolute().as_uri() for p in docs.glob("*.md")}
    assert set(got_docs) == on_disk, "every file present, every deleted file gone"
    assert got_docs == ref_docs, "every document at its current version"
    assert got_chunks == ref_chunks and got_per_doc == ref_per_doc, "no chunk lost or duplicated"
    assert all(n == m for _uri, n, m in got_per_doc)
    print(f"kills={kills} completed_runs={completed} docs={len(got_docs)} chunks={got_chunks}")
