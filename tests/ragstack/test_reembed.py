"""Live embedder migration (``ragstack reembed``), on SQLite and PostgreSQL: the switch moves
embedder, vectors, dense index, generations and caches together; searches running through
the swap never fail and never mix models; an ingest during the migration writes both
models' vectors; a migration killed with SIGKILL resumes where SQL says it stopped (a real
subprocess, the real int8 MiniLM); a model with a smaller window gets the collection's
documents re-chunked for it first (exact spans, ACLs kept, resumable)."""

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


# -- re-chunking for a model with a smaller window ----------------------------------------------

WINDOW = 24  # words: the small-window model's input window (the collection chunks at 64)


def small_window(svc: Ragstack, model_id: str = "hashing-512") -> None:
    """``model_id`` as a hashing embedder with a window of ``WINDOW`` words (its chunker
    bounded by it, as ``make_model`` bounds a real model's); other models as configured."""
    from ragstack.answering import MemoEmbed
    from ragstack.app import make_model
    from ragstack.embedders import Model, Models
    from ragstack.ingest.chunking import Chunker, WordCounter

    def load(wanted: str) -> Model:
        if wanted != model_id:
            return make_model(svc.settings, wanted)
        e = HashingEmbedder(int(model_id.split("-")[1]))
        chunker = Chunker(WordCounter(), max_tokens=WINDOW, overlap_tokens=4)
        return Model(e, chunker, MemoEmbed(e), WINDOW)

    svc.c.models = Models(svc.c.models.default_id, load)


def long_docs(folder: Path, docs: int = 6) -> Path:
    """Documents whose sections are one 64-word chunk each (words unique to their sentence),
    a table that is chunked by rows, and one document only ``group:hr`` may read."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(docs):
        parts = []
        for part in "AB":
            sentences = [f"Alpha{i}{part}{s} bravo{i}{part}{s} charlie{i}{part}{s} delta "
                         f"echo{i}{part}{s} foxtrot{i}{part}{s}." for s in range(9)]  # fmt: skip
            parts.append(f"## Part {part}\n" + " ".join(sentences))
        (folder / f"long{i}.md").write_text(f"# Topic {i}\n\n" + "\n\n".join(parts))
    rows = "".join(f"<tr><td>key{r}</td><td>value{r} of row {r}</td></tr>" for r in range(30))
    (folder / "table.html").write_text(
        "<html><body><h1>Prices</h1><p>Intro to the prices.</p><table><tr><th>key</th>"
        f"<th>value</th></tr>{rows}</table><p>After the table.</p></body></html>"
    )
    (folder / "secret.md").write_text(
        "# Secret\n\n"
        + " ".join(f"Hotel{s} india{s} juliet{s} kilo lima{s} mike{s}." for s in range(12))
    )
    (folder / "secret.md.acl.json").write_text('{"allow": ["group:hr"]}')
    return folder


def chunk_rows(svc: Ragstack, collection: str) -> dict[str, list[tuple[object, ...]]]:
    """uri -> its chunks as ``(ordinal, section, page, start, end, text, ocr, hash)``."""
    out: dict[str, list[tuple[object, ...]]] = {}
    for doc in svc.documents(collection, limit=500):
        out[doc.uri] = [
            (c.ordinal, c.section, c.page, c.char_start, c.char_end, c.text, c.ocr)
            for c in svc.store.list_chunks(doc.id)
        ]
    return out


def doc_texts(svc: Ragstack, collection: str) -> dict[str, tuple[int, str, str, str]]:
    """uri -> ``(id, version, text, acl)``."""
    from ragstack.store.models import DocumentRow

    info = svc.collection(collection)
    acl = {uri: sorted(s.principals) for uri, s in svc.store.document_versions(info.id).items()}
    with svc.store.session() as s:
        rows = s.execute(
            select(col(DocumentRow.uri), col(DocumentRow.id), col(DocumentRow.version),
                   col(DocumentRow.text)).where(col(DocumentRow.collection_id) == info.id)
        ).all()  # fmt: skip
    return {u: (int(i), v, t, ",".join(acl[u])) for u, i, v, t in rows}


def test_reembed_rechunks_documents_the_new_window_would_cut(
    make_service: Factory, tmp_path: Path
) -> None:
    from ragstack.ingest.chunking import WordCounter
    from ragstack.rechunking import CHUNK_SETTING

    svc = make_service(reembed_grace_s=0.0, reembed_batch=8)
    small_window(svc)
    ingest(svc, long_docs(tmp_path / "docs"))
    before_docs, before = doc_texts(svc, "kb"), chunk_rows(svc, "kb")
    assert max(WordCounter().count([index_text(str(c[1]), str(c[5])) for cs in before.values()
                                    for c in cs])) > WINDOW  # fmt: skip
    late = tmp_path / "late"
    late.mkdir()
    (late / "late.md").write_text(
        "# Late\n\n" + " ".join(f"Nova{s} orbit{s} pulsar{s} quasar{s}." for s in range(30))
    )
    ingested: list[int] = []

    def meanwhile(done: int, total: int) -> None:
        if done and not ingested:  # the shadow pass: the writer lock is free
            svc.ingest(IngestRequest("kb", [SourceSpec(str(late))]), principal="user:alice")
            ingested.append(done)

    run = svc.reembed("kb", "hashing-512", progress=meanwhile)
    assert run.status == "completed" and run.report["ok"], run.report
    assert ingested and run.report["over_window"] == 0
    rechunked = run.report["rechunk"]
    assert rechunked["documents"] == len(before_docs)  # each had a section over 24 words
    assert rechunked["chunks_before"] == sum(len(c) for c in before.values())
    assert rechunked["chunks_after"] > rechunked["chunks_before"]
    assert svc.store.get_setting(svc.collection("kb").id, CHUNK_SETTING) == str(WINDOW)
    # the same documents (rows, versions, text, ACLs); every chunk fits the new window and
    # points at its own text in the document (citations stay exact)
    after_docs, after = doc_texts(svc, "kb"), chunk_rows(svc, "kb")
    assert {u: d for u, d in after_docs.items() if not u.endswith("late.md")} == before_docs
    for uri, chunks in after.items():
        text = after_docs[uri][2]
        assert [c[0] for c in chunks] == list(range(len(chunks)))
        for _, section, _, start, end, body, _ in chunks:
            assert isinstance(start, int) and isinstance(end, int)
            assert text[start:end] == body
            assert WordCounter().count([index_text(str(section), str(body))])[0] <= WINDOW
    table = next(cs for u, cs in after.items() if u.endswith("table.html"))
    assert sum("\n| key | value |" in str(c[1]) for c in table) >= 3  # pieces carry the header
    # the vectors are the new model's; the indexes agree with SQL
    texts, vectors = stored_vectors(svc)
    assert np.allclose(vectors, HashingEmbedder(512).embed(texts), atol=1e-6)
    assert svc.check_index("kb", repair=False).ok
    # every document is found by a phrase from its middle and its end, lexically and densely;
    # the one only group:hr may read stays hidden from alice
    for uri, (_, _, _, acl) in after_docs.items():
        middle, end = (
            str(after[uri][len(after[uri]) // 2][5]).split(),
            str(after[uri][-1][5]).split(),
        )
        reader = ["group:hr"] if "group:hr" in acl else ALICE
        for phrase in (" ".join(middle[len(middle) // 2 :][:3]), " ".join(end[-3:])):
            for mode in ("bm25", "dense"):
                hits = svc.search("kb", phrase, principals=reader, mode=mode, top_k=3).hits
                assert hits and hits[0].uri == uri, (uri, phrase, mode)
                assert phrase in hits[0].text, (uri, phrase, mode)
                if reader != ALICE:
                    seen = svc.search("kb", phrase, principals=ALICE, mode=mode, top_k=50).hits
                    assert all(h.uri != uri for h in seen)


def test_chunks_too_long_that_an_ingest_writes_during_the_move_are_rechunked_first(
    make_service: Factory, tmp_path: Path
) -> None:
    """An ingest that chunks without the bound (one that began before the re-embed set it;
    here: the bound taken away) writes chunks the new window would cut while the shadow pass
    runs: they wait for the re-chunk under the writer lock, before the switch, and the bound
    is back."""
    from ragstack.ingest.chunking import WordCounter
    from ragstack.rechunking import CHUNK_SETTING

    svc = make_service(reembed_grace_s=0.0, reembed_batch=8)
    small_window(svc)
    ingest(svc, long_docs(tmp_path / "docs"))
    late = tmp_path / "late"
    late.mkdir()
    (late / "late.md").write_text("# Late\n\n" + " ".join(f"Nova{s} orbit{s}." for s in range(40)))
    cid = svc.collection("kb").id
    wrote: list[int] = []

    def meanwhile(done: int, total: int) -> None:
        if done and not wrote:
            svc.store.set_setting(cid, CHUNK_SETTING, "")  # an ingest with a stale bound
            svc.ingest(IngestRequest("kb", [SourceSpec(str(late))]), principal="user:alice")
            doc = next(d for d in svc.documents("kb") if d.uri.endswith("late.md"))
            wrote.append(max(c.token_count for c in svc.store.list_chunks(doc.id)))

    run = svc.reembed("kb", "hashing-512", progress=meanwhile)
    assert wrote and wrote[0] > WINDOW
    assert run.status == "completed" and run.report["ok"], run.report
    assert run.report["over_window"] == 0
    assert run.report["rechunk"]["documents"] == 6 + 2 + 1  # long docs, table, secret, late
    assert svc.store.get_setting(cid, CHUNK_SETTING) == str(WINDOW)
    for chunks in chunk_rows(svc, "kb").values():
        for _, section, _, _, _, body, _ in chunks:
            assert WordCounter().count([index_text(str(section), str(body))])[0] <= WINDOW
    assert svc.check_index("kb", repair=False).ok


def test_reembed_to_the_int8_minilm_rechunks_in_its_own_tokens(
    make_service: Factory, tmp_path: Path
) -> None:
    """From word chunks of up to 1000 to the real int8 MiniLM (256 word pieces, special
    tokens included): every chunk is re-chunked to fit, counted by its tokenizer."""
    from ragstack.embedding import BertOnnxEmbedder

    svc = make_service(reembed_grace_s=0.0, chunk_max_tokens=1000, chunk_overlap_tokens=16)
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(3):
        body = " ".join(f"Rule {i}-{s} covers the reimbursement of travelling expenditures."
                        for s in range(60))  # fmt: skip
        (docs / f"d{i}.md").write_text(f"# Doc {i}\n\n## Travel\n{body}")
    ingest(svc, docs)
    run = svc.reembed("kb", "int8")
    assert run.status == "completed" and run.report["ok"], run.report
    assert run.report["rechunk"]["documents"] == 3 and run.report["over_window"] == 0
    model = svc.c.models.get(svc.collection("kb").embedder_id)
    texts, vectors = stored_vectors(svc)
    assert max(model.chunker.counter.count(texts)) + 2 <= model.max_tokens == 256
    assert np.allclose(vectors, BertOnnxEmbedder().embed(texts), atol=1e-4)
    assert svc.check_index("kb", repair=False).ok


class KilledError(Exception):
    """What stops a re-embed midway here (as a kill would: between two commits)."""


def test_a_rechunk_killed_midway_resumes_to_the_same_state(
    make_service: Factory, tmp_path: Path
) -> None:
    svc = make_service(reembed_grace_s=0.0, reembed_batch=8)
    small_window(svc)
    docs = long_docs(tmp_path / "docs")
    for name in ("whole", "killed"):
        svc.ingest(IngestRequest(name, [SourceSpec(str(docs))]), principal="user:alice")
    whole = svc.reembed("whole", "hashing-512")

    def kill(done: int, total: int) -> None:
        status = svc.reembed_status("killed")
        if status is not None and status.report.get("rechunk", {}).get("documents", 0) >= 2:
            raise KilledError

    with pytest.raises(KilledError):
        svc.reembed("killed", "hashing-512", progress=kill)
    stopped = svc.reembed_status("killed")
    assert stopped is not None and stopped.status == "running"
    assert 2 <= stopped.report["rechunk"]["documents"] < whole.report["rechunk"]["documents"]
    assert svc.collection("killed").embedder_id == "hashing-64"  # still serving the old model
    assert svc.check_index("killed", repair=False).ok
    run = svc.reembed("killed", "hashing-512")
    assert (run.id, run.status) == (stopped.id, "completed") and run.report["ok"], run.report
    assert run.report["rechunk"] == whole.report["rechunk"]
    assert chunk_rows(svc, "killed") == chunk_rows(svc, "whole")
    assert svc.check_index("killed", repair=False).ok
    again = svc.reembed("killed", "hashing-64")  # and back: these chunks fit; nothing to do
    assert again.status == "completed" and again.report["rechunk"]["documents"] == 0


def test_rechunking_with_the_ingest_chunker_changes_nothing(
    make_service: Factory, tmp_path: Path
) -> None:
    """The blocks rebuilt from SQL are the ones ingest chunked: re-chunking a document with
    the chunker that made its chunks gives the same chunks (headings, tables, sections)."""
    from ragstack.rechunking import Rechunker

    svc = make_service()
    ingest(svc, HANDBOOK, long_docs(tmp_path / "docs"))
    info = svc.collection("kb")
    chunker = svc.c.models.get(info.embedder_id).chunker
    rechunker = Rechunker(svc.store, info, lambda: svc.c.embedder, chunker, 0)
    indexes, _ = svc.open_indexes(info)
    docs = svc.documents("kb", limit=100)
    assert len(docs) == 18
    assert rechunker.rechunk([d.id for d in docs], indexes).documents == 0
