"""Live embedder migration (``ragstack reembed``), on SQLite and PostgreSQL: the switch moves
embedder, vectors, dense index, generations and caches together; searches running through
the swap never fail and never mix models; an ingest during the migration writes both
models' vectors; a migration killed with SIGKILL resumes where SQL says it stopped (a real
subprocess, the real int8 MiniLM)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select, text
from sqlmodel import col

from ragstack.embedding import HashingEmbedder
from ragstack.errors import InputError
from ragstack.indexing import in_database
from ragstack.service import IngestRequest, Ragstack, SourceSpec
from ragstack.store import index_text
from ragstack.store.models import ChunkRow, ChunkVectorRow, ReembedRow
from tests.ragstack.conftest import HANDBOOK, Factory

BOTH_BACKENDS = True
ALICE = ["user:alice"]
QUERIES = ["vacation days", "laptop security", "expense reports", "remote work",
           "parental leave", "password rules", "travel booking", "onboarding"]  # fmt: skip


def corpus(folder: Path, docs: int = 40) -> Path:
    """``docs`` small distinct markdown files (a few chunks each)."""
    folder.mkdir(parents=True, exist_ok=True)
    words = "leave policy laptop travel expense password remote office budget review salary"
    words += " holiday security onboarding training badge printer vpn benefits"
    vocabulary = words.split()
    rng = np.random.default_rng(7)
    for i in range(docs):
        paragraphs = [
            " ".join(rng.choice(vocabulary, size=40).tolist()) + f" document {i} part {p}."
            for p in range(3)
        ]
        (folder / f"doc{i:03d}.md").write_text(f"# Doc {i}\n\n" + "\n\n".join(paragraphs))
    return folder


def ingest(svc: Ragstack, *paths: Path) -> None:
    svc.ingest(IngestRequest("kb", [SourceSpec(str(p)) for p in paths]), principal="user:alice")


def results(svc: Ragstack, mode: str) -> dict[str, tuple[tuple[int, float], ...]]:
    return {q: _key(svc, q, mode) for q in QUERIES}


def _key(svc: Ragstack, q: str, mode: str) -> tuple[tuple[int, float], ...]:
    hits = svc.search("kb", q, principals=ALICE, mode=mode, top_k=5).hits  # type: ignore[arg-type]
    return tuple((h.chunk_id, round(h.score, 4)) for h in hits)


def stored_vectors(svc: Ragstack) -> tuple[list[str], np.ndarray]:
    with svc.store.session() as s:
        rows = s.execute(
            select(col(ChunkRow.section), col(ChunkRow.text), col(ChunkRow.embedding)).order_by(
                col(ChunkRow.id)
            )
        ).all()
    texts = [index_text(sec, t) for sec, t, _ in rows]
    return texts, np.stack([np.frombuffer(e, dtype=np.float32) for _, _, e in rows])


def count(svc: Ragstack, model: type[object]) -> int:
    with svc.store.session() as s:
        return int(s.execute(select(func.count()).select_from(model)).scalar_one())


def test_reembed_switches_embedder_vectors_index_and_caches(
    make_service: Factory, tmp_path: Path
) -> None:
    from ragstack.answering import AnswerRequest

    svc = make_service(reembed_grace_s=0.0)
    ingest(svc, HANDBOOK)
    before = svc.collection("kb")
    ask = AnswerRequest(
        collection="kb", question="how many vacation days", principals=("user:alice",)
    )
    svc.ask(ask)
    assert svc.ask(ask).cached and svc.cache_stats("kb")["stores"] == 1
    with pytest.raises(InputError, match="already uses"):
        svc.reembed("kb", "hashing")  # hashing-64: what it has
    seen: list[tuple[int, int]] = []
    run = svc.reembed("kb", "hashing-32", progress=lambda d, t: seen.append((d, t)))
    after = svc.collection("kb")
    assert run.status == "completed" and run.report["ok"] and run.report["recall_at_10"] == 1.0
    assert (after.embedder_id, after.dim, after.dense_name) == ("hashing-32", 32, f"dense-{run.id}")
    assert after.generation > before.generation
    assert after.index_generation > before.index_generation
    assert seen[-1][0] == seen[-1][1] == run.total > 0 and run.embedded + run.reused == run.total
    # SQL holds the new model's vectors; the shadow rows and the old dense index are gone
    texts, vectors = stored_vectors(svc)
    assert np.allclose(vectors, HashingEmbedder(32).embed(texts), atol=1e-6)
    assert count(svc, ChunkVectorRow) == 0
    if in_database(svc.store):
        with svc.store.engine.connect() as conn:
            tables = conn.execute(text("SELECT tablename FROM pg_tables WHERE tablename LIKE "
                                       "'rs\\_dense\\_%'")).scalars().all()  # fmt: skip
        assert tables == [f"rs_dense_{after.id}_{run.id}"]
    else:
        root = svc.collection_dir(after)
        assert sorted(p.name for p in root.glob("dense*")) == [f"dense-{run.id}"]
    report = svc.check_index("kb", repair=False)
    assert report.ok and report.dense_count == run.total
    # the answer cache died with the switch; answers and searches run on the new model
    assert not svc.ask(ask).cached
    top = svc.search("kb", "vacation days", principals=ALICE, mode="dense", top_k=3).hits
    exact = np.argsort(-(vectors @ HashingEmbedder(32).embed(["vacation days"])[0]))
    assert top[0].chunk_id == int(svc.store.live_chunk_ids(after.id)[exact[0]])
    # a fresh process sees the same
    other = make_service()
    assert other.collection("kb").embedder_id == "hashing-32"
    assert [h.chunk_id for h in other.search("kb", "vacation days", principals=ALICE).hits] == [
        h.chunk_id for h in svc.search("kb", "vacation days", principals=ALICE).hits
    ]


@pytest.mark.parametrize("mode", ["hybrid", "dense"])
def test_searches_through_the_swap_are_wholly_old_or_wholly_new(
    make_service: Factory, tmp_path: Path, mode: str
) -> None:
    svc = make_service(reembed_grace_s=0.3, reembed_batch=16)
    ingest(svc, HANDBOOK, corpus(tmp_path / "docs", 30))
    old = results(svc, mode)
    responses: list[tuple[str, tuple[tuple[int, float], ...]]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def search_forever(offset: int) -> None:
        i = offset
        while not stop.is_set():
            q = QUERIES[i % len(QUERIES)]
            try:
                responses.append((q, _key(svc, q, mode)))
            except BaseException as exc:
                errors.append(exc)
            i += 1

    threads = [threading.Thread(target=search_forever, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.2)
        run = svc.reembed("kb", "hashing-32")
        time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join()
    new = results(svc, mode)
    assert run.status == "completed"
    assert errors == []
    assert sum(old[q] != new[q] for q in QUERIES) >= len(QUERIES) // 2  # the models differ
    mixed = [(q, r) for q, r in responses if r not in (old[q], new[q])]
    assert mixed == []
    kinds = {"old" if r == old[q] else "new" for q, r in responses if old[q] != new[q]}
    assert kinds == {"old", "new"}, f"{len(responses)} responses"


def test_ingest_and_deletes_during_the_migration_write_both(
    make_service: Factory, tmp_path: Path
) -> None:
    svc = make_service(reembed_grace_s=0.0, reembed_batch=8)
    ingest(svc, corpus(tmp_path / "docs", 20))
    late = tmp_path / "late"
    late.mkdir()
    (late / "late.md").write_text("# Late\n\nA document that arrives while the collection moves.")
    during: dict[str, int] = {}

    def meanwhile(done: int, total: int) -> None:
        if done == 0 or during:
            return
        during["at"] = done
        ingest(svc, late)  # the writer lock is free: the bulk pass holds none
        doc = next(d for d in svc.documents("kb", limit=500) if d.uri.endswith("late.md"))
        ids = [c.id for c in svc.store.list_chunks(doc.id)]
        with svc.store.session() as s:  # committed with its chunks, under the new model
            during["late_shadow"] = int(s.execute(select(func.count()).select_from(ChunkVectorRow)
                .where(col(ChunkVectorRow.chunk_id).in_(ids),
                       col(ChunkVectorRow.model_id) == "hashing-32"))
                .scalar_one())  # fmt: skip
        during["late_chunks"] = len(ids)
        first = svc.documents("kb", limit=1)[0]
        svc.delete_document("kb", first.id)
        during["searched"] = len(svc.search("kb", "late document", principals=ALICE).hits)

    run = svc.reembed("kb", "hashing-32", progress=meanwhile)
    assert during["late_shadow"] == during["late_chunks"] > 0 and during["searched"] > 0
    assert run.status == "completed" and run.report["ok"], run.report
    texts, vectors = stored_vectors(svc)
    assert any("arrives while the collection moves" in t for t in texts)
    assert np.allclose(vectors, HashingEmbedder(32).embed(texts), atol=1e-6)
    assert svc.check_index("kb", repair=False).ok
    hits = svc.search("kb", "arrives while the collection moves", principals=ALICE).hits
    assert hits[0].uri.endswith("late.md")


def test_a_migration_killed_with_sigkill_resumes(make_service: Factory, tmp_path: Path) -> None:
    """The CLI's re-embed to the real int8 MiniLM, killed (SIGKILL) midway: the collection
    still serves its old model; run again, it picks up where SQL says it stopped, never
    embedding a chunk twice, and the vectors are the model's own."""
    from ragstack.embedding import BertOnnxEmbedder

    svc = make_service(reembed_grace_s=0.0)
    ingest(svc, corpus(tmp_path / "docs", 60))
    info = svc.collection("kb")
    total = len(svc.store.live_chunk_ids(info.id))
    env = {**os.environ, "RAGSTACK_DATA_DIR": str(svc.settings.data_dir),
           "RAGSTACK_EMBEDDER": "hashing", "RAGSTACK_REEMBED_BATCH": "8",
           "RAGSTACK_DATABASE_URL": svc.settings.resolved_database_url}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "ragstack", "reembed", "-c", "kb", "--embedder", "int8", "--json"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    done = 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        with svc.store.session() as s:
            done = int(s.execute(select(func.coalesce(func.max(ReembedRow.done), 0))).scalar_one())
        if done >= 24:
            break
        time.sleep(0.01)
    assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 24 <= done < total
    # killed: still on the old model, searching as before
    assert svc.collection("kb").embedder_id == "hashing-64"
    assert svc.search("kb", "laptop travel", principals=ALICE).hits
    stopped = svc.reembed_status("kb")
    assert stopped is not None and stopped.status == "running" and stopped.done >= 24
    run = svc.reembed("kb", "int8")
    assert (run.id, run.status) == (stopped.id, "completed") and run.report["ok"], run.report
    assert run.embedded + run.reused == run.total == total  # every chunk embedded once
    assert run.embedded - stopped.embedded < total  # the resumed part only
    info = svc.collection("kb")
    assert info.embedder_id == "sentence-transformers/all-MiniLM-L6-v2+int8" and info.dim == 384
    texts, vectors = stored_vectors(svc)
    assert np.allclose(vectors, BertOnnxEmbedder().embed(texts), atol=1e-4)
    assert svc.check_index("kb", repair=False).ok
    hits = svc.search("kb", "document 7 part 1", principals=ALICE, mode="dense").hits
    assert hits and "document 7" in hits[0].text
