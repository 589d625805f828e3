"""Durable at scale: kill -9 real ingests into a collection of ~100k chunks (``bench_growth``).

A copy of the benchmark's 100k collection takes new documents from a folder of Markdown files
through ``ragstack ingest`` (the real CLI: parse, redact, chunk, embed with the configured
model, commit, save the indexes every ``--crash-save-interval`` seconds). Each round starts an
ingest, waits until its run has begun, kills it with SIGKILL at a random moment, and notes
whether it died inside an index save (a save's new generation directory or temporary file is
left behind). Then a fresh process (the restart) opens the collection (the catch-up: load the
index files, bring them in step with SQL, save) and, without ingesting anything, compares
every chunk SQL holds with every index (``CollectionIndexes.audit``: ids both ways, vectors,
BM25 terms and frequencies, BM25's statistics) and searches a sample of chunks of committed
documents through the service. Between rounds the folder changes: new, edited and deleted
files, so later ingests replace and delete as well as add.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from evals.bench_growth import NAME, OWNER, run_child, service_for
from evals.report import Reporter
from evals.synthetic import Corpus


def write_doc(folder: Path, i: int, rng: random.Random, corpus: Corpus) -> None:
    """A Markdown file of a few paragraphs of the corpus's words."""
    paras = []
    for _ in range(rng.randint(2, 6)):
        tokens = corpus.tokens(np.random.default_rng(rng.getrandbits(32)), rng.randint(30, 120))
        paras.append(" ".join(corpus.words[t] for t in tokens.tolist()) + ".")
    body = "\n\n".join(paras)
    (folder / f"doc{i:05d}.md").write_text(f"# Note {i}\n\n## Body\n{body}\n", encoding="utf-8")


def counts(data: Path) -> tuple[int, int]:
    """``(ingest runs, document writes)`` the database has seen so far."""
    import sqlite3

    try:
        with sqlite3.connect(data / "ragstack.db", timeout=30) as db:
            runs = db.execute("SELECT count(*) FROM ingest_runs").fetchone()[0]
            writes = db.execute("SELECT max(generation) FROM collections").fetchone()[0]
            return int(runs), int(writes or 0)
    except sqlite3.Error:
        return 0, 0


def killed_in_save(collection_dir: Path) -> list[str]:
    """The indexes whose save a kill interrupted: a generation newer than the manifest's, or a
    manifest or segment being written."""
    hit = []
    for name in ("dense", "bm25"):
        root = collection_dir / name
        if not root.is_dir():
            continue
        try:
            current = json.loads((root / "manifest.json").read_text())["generation"]
        except (OSError, ValueError, KeyError):
            current = 0
        newer = any(
            int(p.name.removeprefix("gen-")) > current for p in root.glob("gen-*") if p.is_dir()
        )
        temp = any(root.glob("*.tmp")) or any((root / "shared").glob("*.tmp"))
        if newer or temp:
            hit.append(name)
    return hit


def crash_run(src: Path, work: Path, args: Any, rep: Reporter) -> dict[str, Any]:
    data = work / "crash"
    shutil.rmtree(data, ignore_errors=True)
    shutil.copytree(src, data)
    docs = work / "crash-docs"
    shutil.rmtree(docs, ignore_errors=True)
    docs.mkdir(parents=True)
    rng = random.Random(20261717)
    corpus = Corpus()
    next_id = 400
    for i in range(next_id):
        write_doc(docs, i, rng, corpus)
    env = {**os.environ, "RAGSTACK_DATA_DIR": str(data), "RAGSTACK_PRINCIPAL": OWNER,
           "RAGSTACK_INDEX_SAVE_INTERVAL_S": str(args.crash_save_interval),
           "HF_HUB_OFFLINE": "1"}  # fmt: skip
    cmd = [sys.executable, "-m", "ragstack", "ingest", str(docs), "-c", NAME, "--json"]
    collection_dir = next((data / "collections").iterdir())
    log = (work / "crash-ingest.log").open("ab")
    rounds: list[dict[str, Any]] = []
    kills = 0
    while kills < args.crash_kills and len(rounds) < 3 * args.crash_kills:
        runs, writes = counts(data)
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log)
        # kill at a random moment once the ingest commits, however long its start takes (a
        # loaded machine can take a minute to load the model)
        deadline = time.monotonic() + 600
        while counts(data)[1] == writes and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        delay = rng.uniform(0.0, 10.0)
        try:
            proc.wait(timeout=delay)
            killed = False
        except subprocess.TimeoutExpired:
            proc.kill()  # SIGKILL: no cleanup, no atexit, no finally
            proc.wait()
            killed = True
            kills += 1
        started = counts(data)[0] > runs
        in_save = killed_in_save(collection_dir) if killed else []
        checked = run_child("verify", {"data_dir": str(data), "sample": args.crash_sample}, work)
        rounds.append(
            {
                "killed": killed,
                "after_s": delay,
                "in_save": in_save,
                "run_started": started,
                **checked,
            }
        )
        for _ in range(rng.randint(10, 40)):
            write_doc(docs, next_id, rng, corpus)
            next_id += 1
        for path in rng.sample(sorted(docs.glob("*.md")), 12):
            if rng.random() < 0.4:
                path.unlink()
            else:
                write_doc(docs, int(path.stem[3:]), rng, corpus)
    killed_rounds = [r for r in rounds if r["killed"]]
    out = {
        "kills": kills,
        "completed_runs": len(rounds) - kills,
        "kills_in_save": sum(bool(r["in_save"]) for r in killed_rounds),
        "lost_committed_docs": sum(r["damaged_documents"] + r["unsearchable"] for r in rounds),
        "half_written_visible": sum(
            len(r["half_written_documents"]) + sum(r["extra"].values()) for r in rounds
        ),
        "dense_self_misses": sum(r["dense_self_misses"] for r in rounds),
        "probes": sum(r["probes"] for r in rounds),
        "reconcile_s_max": max((r["catch_up_s"] for r in rounds), default=None),
        "reconcile_s_median": float(np.median([r["catch_up_s"] for r in rounds]))
        if rounds
        else None,
        "chunks_at_end": rounds[-1]["chunks"] if rounds else None,
        "rounds": rounds,
    }
    rep.table(
        f"kill -9 during ingest into {rounds[0]['chunks'] if rounds else 0:,} chunks "
        f"(SQLite + index files); after each, a restart opens and audits without ingesting",
        ["round", "killed", "after s", "in save", "catch-up s", "load", "reconcile", "save",
         "added", "chunks", "damaged docs", "half-written", "unsearchable", "ANN self-miss"],
        [[i + 1, "yes" if r["killed"] else "finished", r["after_s"], ",".join(r["in_save"]) or "-",
          r["catch_up_s"], r["seconds"].get("load"), r["seconds"].get("reconcile"),
          r["seconds"].get("save"), r["added"], r["chunks"], r["damaged_documents"],
          len(r["half_written_documents"]) + sum(r["extra"].values()), r["unsearchable"],
          f"{r['dense_self_misses']}/{r['probes']}"]
         for i, r in enumerate(rounds)],
    )  # fmt: skip
    return out


def verify(spec: dict[str, Any]) -> dict[str, Any]:
    """The restart: open the collection (catch-up, timed), audit it, search a sample."""
    from dataclasses import asdict

    svc = service_for(spec)
    info = svc.collection(NAME)
    t0 = time.perf_counter()
    indexes, report = svc.open_indexes(info)  # what the first reader or writer does
    catch_up = time.perf_counter() - t0
    audit = indexes.audit(svc.store)
    # committed documents are searchable through the service: each sampled chunk, searched
    # for with its own vector inside its own document (a filter on its URI: an exact scan, so
    # it must come back first) by a principal that may read it. The same search over the
    # whole collection is an HNSW walk, approximate (on these near-orthogonal synthetic
    # vectors ~0.1% of the rows are not reached from the entry point at ef 64): a miss there
    # is counted apart, as the index's recall, not as a lost chunk.
    rng = random.Random(len(spec["data_dir"]) + audit.chunks)
    ids = indexes.dense.ids()
    newest = ids[-spec["sample"] :].tolist()
    sample = sorted(
        set(newest[: spec["sample"] // 2]) | set(rng.sample(ids.tolist(), spec["sample"] // 2))
    )
    unsearchable = dense_self_misses = 0
    from sqlalchemy import select

    from ragstack.search import Filters
    from ragstack.store.models import AclRow, ChunkRow, DocumentRow

    a, c = AclRow.__table__, ChunkRow.__table__  # type: ignore[attr-defined]
    d = DocumentRow.__table__  # type: ignore[attr-defined]
    with svc.store.engine.connect() as conn:
        who = dict(conn.execute(
            select(c.c.id, a.c.principal).join(a, a.c.document_id == c.c.document_id)
            .where(c.c.id.in_(sample))
        ).all())  # fmt: skip
        uri = dict(conn.execute(
            select(c.c.id, d.c.uri).join(d, d.c.id == c.c.document_id)
            .where(c.c.id.in_(sample))
        ).all())  # fmt: skip
    vectors = indexes.dense.vectors(np.array(sample, dtype=np.int64))
    for cid, vec in zip(sample, vectors, strict=True):
        found = svc.search(NAME, "probe", principals=[who[cid]], mode="dense", top_k=1,
                           query_vector=vec, filters=Filters(uri_prefix=uri[cid]),
                           rerank=False).hits  # fmt: skip
        unsearchable += [h.chunk_id for h in found] != [cid]
        hits = svc.search(NAME, "probe", principals=[who[cid]], mode="dense", top_k=10,
                          query_vector=vec, rerank=False).hits  # fmt: skip
        dense_self_misses += cid not in {h.chunk_id for h in hits}
    return {
        "catch_up_s": catch_up,
        "seconds": report.seconds,
        "added": report.dense_added + report.lexical_added,
        "removed": report.dense_removed + report.lexical_removed,
        "rebuilt": report.rebuilt,
        "unsearchable": unsearchable,
        "dense_self_misses": dense_self_misses,
        "probes": len(sample),
        **{k: v for k, v in asdict(audit).items() if k != "collection"},
    }
