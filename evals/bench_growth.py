"""The cost curve to a million chunks: ``python -m evals.bench_growth [--json]``.

Synthetic collections (``evals.synthetic``: Zipf texts, clustered 384-d vectors, documents of
one to four chunks with ACLs and tenants) grow through the store exactly as an ingest writes
them (``Store.write_documents`` with the vectors already in the drafts, so no model runs; then
the indexes follow the commit and are saved), to each size in ``--sizes`` on the embedded
backend (SQLite + index files) and ``--pg-sizes`` on PostgreSQL (pgvector + BM25 in SQL, a
throwaway local server). At each size a fresh process (what a restarted API replica is) opens
the collection and measures, per ACL width (1%, 10% and 100% of chunks permitted for the
querying principal, the first two inside a tenant):

* the permitted set's build time, cold (SQL) and cached;
* search latency p50/p95 for bm25, dense and hybrid (top 10, query vector given, no rerank);
* recall@10 of dense search against the exact top 10 of the permitted chunks (a sample);
* its resident memory (RSS at the end, and the peak).

Beside them: build time (SQL writes, index updates, the save) and bytes on disk per chunk.
Then the durability run (``evals.crashes``): kill -9 real ingests into a copy of the 100k
collection and check, after each restart and without re-running the ingest, that every
committed document is whole in every index and nothing half-written shows.

Tables, then ONE final JSON line (only that line with ``--json``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from evals.beir import REPO_ROOT
from evals.report import Reporter
from evals.synthetic import BLOCK, Corpus, SyntheticDoc
from ragstack.domain import ChunkDraft, DocumentDraft
from ragstack.evaluation import percentile

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]
NAME = "growth"
OWNER = "user:bench"
MODES = ("bm25", "dense", "hybrid")
# the querying principal's scope at each width: (its principals, its tenant)
WIDTHS: dict[str, tuple[str, str | None]] = {
    "1%": ("group:one", "acme"),
    "10%": ("group:ten", "acme"),
    "100%": ("group:all", None),
}
WRITE_CHUNKS = 2000  # chunks per write transaction
K = 10


def parse_size(text: str) -> int:
    text = text.strip().lower()
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text.rstrip("km")) * scale)


def label(n: int) -> str:
    return f"{n // 1_000_000}m" if n % 1_000_000 == 0 else f"{n // 1000}k"


def permitted(doc: SyntheticDoc, width: str) -> bool:
    principal, tenant = WIDTHS[width]
    return principal in doc.principals and (tenant is None or doc.tenant == tenant)


class ExactTruth:
    """The exact top 10 (corpus positions) of a sample of queries within each width's
    permitted chunks, kept up to date block by block as the corpus grows."""

    def __init__(self, queries: F32) -> None:
        self.q = queries
        n = queries.shape[0]
        self.best = {w: (np.full((n, 0), -np.inf, np.float32), np.zeros((n, 0), np.int64))
                     for w in WIDTHS}  # fmt: skip

    def add(self, start: int, vectors: F32, docs: Sequence[SyntheticDoc]) -> None:
        for width in WIDTHS:
            mask = np.zeros(vectors.shape[0], dtype=bool)
            for d in docs:
                if permitted(d, width):
                    mask[d.first - start : d.first - start + d.size] = True
            pos = np.flatnonzero(mask) + start
            scores = self.q @ vectors[mask].T
            old_s, old_p = self.best[width]
            all_s = np.concatenate([old_s, scores], axis=1)
            all_p = np.concatenate([old_p, np.broadcast_to(pos, scores.shape)], axis=1)
            keep = np.argsort(-all_s, axis=1, kind="stable")[:, :K]
            self.best[width] = (
                np.take_along_axis(all_s, keep, axis=1),
                np.take_along_axis(all_p, keep, axis=1),
            )

    def positions(self) -> dict[str, list[list[int]]]:
        return {w: p.tolist() for w, (_s, p) in self.best.items()}


def drafts_for(corpus: Corpus, start: int, count: int) -> tuple[list[DocumentDraft], F32]:
    """The documents of chunks ``start .. start + count``, as an ingest hands them to the
    store, and their vectors."""
    texts = corpus.texts(start, count)
    vectors = corpus.vectors(start, count)
    out = []
    for doc in corpus.documents(start, count):
        chunks, pos = [], 0
        parts = texts[doc.first - start : doc.first - start + doc.size]
        for i, text in enumerate(parts):
            chunks.append(ChunkDraft(
                ordinal=i, text=text, text_hash=hashlib.sha256(text.encode()).hexdigest(),
                section="", page=None, char_start=pos, char_end=pos + len(text),
                token_count=text.count(" ") + 1, instruction_like=False,
                embedding=vectors[doc.first - start + i],
            ))  # fmt: skip
            pos += len(text) + 2
        body = "\n\n".join(parts)
        out.append(DocumentDraft(
            source="synthetic", uri=f"synthetic://doc/{doc.first}", version="1",
            title=f"synthetic document {doc.first}", mime="text/plain", meta={},
            tenant=doc.tenant, principals=doc.principals, text=body,
            size_bytes=len(body), pii_counts={}, chunks=chunks,
        ))  # fmt: skip
    return out, vectors


@dataclass
class Build:
    """Cumulative build figures of one collection."""

    chunks: int = 0
    documents: int = 0
    sql_s: float = 0.0
    index_s: float = 0.0
    save_s: float = 0.0
    ids: list[I64] = field(default_factory=list)

    @property
    def total_s(self) -> float:
        return self.sql_s + self.index_s + self.save_s


def grow(svc: Any, corpus: Corpus, build: Build, stop: int, truth: ExactTruth) -> None:
    """Write chunks ``build.chunks .. stop`` through the store and the indexes, as an ingest
    does (one transaction per batch, the index files following each commit), then save."""
    from ragstack.indexing import collection_lock

    info = svc.collection(NAME)
    root = svc.collection_dir(info)
    with collection_lock(svc.store, info, root):
        indexes, _ = svc.open_indexes(info)
        for start in range(build.chunks, stop, BLOCK):
            drafts, vectors = drafts_for(corpus, start, BLOCK)
            truth.add(start, vectors, corpus.documents(start, BLOCK))
            batch: list[DocumentDraft] = []
            for i, d in enumerate(drafts):
                batch.append(d)
                if sum(len(b.chunks) for b in batch) >= WRITE_CHUNKS or i == len(drafts) - 1:
                    t0 = time.perf_counter()
                    results = svc.store.write_documents(info.id, batch, index=indexes.sql_writer)
                    t1 = time.perf_counter()
                    added = np.concatenate([r.added for r in results])
                    if not indexes.transactional:
                        indexes.apply(
                            np.concatenate([r.removed for r in results]),
                            added,
                            np.stack([c.embedding for b in batch for c in b.chunks]),
                            [c.text for b in batch for c in b.chunks],
                        )
                    build.sql_s += t1 - t0
                    build.index_s += time.perf_counter() - t1
                    build.ids.append(added)
                    build.documents += len(batch)
                    batch = []
            build.chunks = start + BLOCK
        t0 = time.perf_counter()
        indexes.save()
        build.save_s += time.perf_counter() - t0


# -- measuring, in a fresh process ------------------------------------------------------------


def rss_mb() -> tuple[float, float]:
    """This process's ``(resident MB, peak resident MB)``."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


def service_for(spec: dict[str, Any]) -> Any:
    from ragstack.app import build
    from ragstack.config import Settings

    url = spec.get("database_url")
    data_dir = Path(spec["data_dir"])
    settings = (
        Settings(data_dir=data_dir, principal=OWNER, database_url=url)
        if url
        else Settings(data_dir=data_dir, principal=OWNER)
    )
    return build(settings)


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    """Open the collection in this (fresh) process and time what the module docstring says."""
    from ragstack.search import Filters

    t0 = time.perf_counter()
    svc = service_for(spec)
    info = svc.collection(NAME)
    svc._reader(info)  # the indexes, loaded as a restarted reader loads them
    open_s = time.perf_counter() - t0
    corpus = Corpus()
    sample = max(len(t) for t in spec["truth"].values())  # the recall sample's queries
    texts, vectors = corpus.queries(max(spec["queries"], sample))
    timed = spec["queries"]
    ids = np.load(spec["ids"])
    out: dict[str, Any] = {"open_s": open_s, "widths": {}}
    for width, (principal, tenant) in WIDTHS.items():
        row: dict[str, Any] = {}
        svc.clear_permitted()
        t0 = time.perf_counter()
        allow = svc._permitted(info, [principal], tenant, Filters())
        row["permitted_cold_ms"] = (time.perf_counter() - t0) * 1000
        t0 = time.perf_counter()
        svc._permitted(info, [principal], tenant, Filters())
        row["permitted_cached_ms"] = (time.perf_counter() - t0) * 1000
        row["permitted"] = len(allow) if hasattr(allow, "__len__") else None

        def search(
            i: int, mode: str, k: int = K, p: str = principal, t: str | None = tenant
        ) -> Any:
            return svc.search(NAME, texts[i], principals=[p], tenant=t, mode=mode, top_k=k,
                              query_vector=vectors[i], rerank=False)  # fmt: skip

        t0 = time.perf_counter()
        search(0, "hybrid")
        row["first_search_ms"] = (time.perf_counter() - t0) * 1000
        for mode in MODES:
            for i in range(min(20, timed)):  # warm: caches a steady state has
                search(i, mode)
            lat, stages = [], []
            for i in range(timed):
                t0 = time.perf_counter()
                response = search(i, mode)
                lat.append((time.perf_counter() - t0) * 1000)
                stages.append(response.timings_ms)
            row[f"{mode}_p50_ms"] = statistics.median(lat)
            row[f"{mode}_p95_ms"] = percentile(lat, 95)
            # where the time goes: each stage's median (the profile of this cell)
            row[f"{mode}_stages_ms"] = {
                k: round(statistics.median(s.get(k, 0.0) for s in stages), 3)
                for k in stages[0]
                if k.endswith("_ms") and k != "total_ms"
            }
        truth = spec["truth"][width]
        hits = 0
        for i, want in enumerate(truth):
            got = [h.chunk_id for h in search(i, "dense").hits]
            hits += len(set(got) & {int(ids[p]) for p in want})
        row["recall_at_10"] = hits / max(1, sum(len(w) for w in truth))
        out["widths"][width] = row
    out["rss_mb"], out["peak_rss_mb"] = rss_mb()
    return out


def run_child(role: str, spec: dict[str, Any], work: Path) -> dict[str, Any]:
    """``python -m evals.bench_growth --child role`` with ``spec``; its one JSON line."""
    path = work / f"{role}-spec.json"
    path.write_text(json.dumps(spec), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "evals.bench_growth", "--child", role, "--spec", str(path)],
        capture_output=True, text=True, check=False, cwd=REPO_ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"{role} child failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def disk_bytes(svc: Any) -> int:
    if svc.store.dialect == "postgresql":
        with svc.store.engine.connect() as conn:
            size = conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar()
        return int(size or 0)
    data = svc.settings.data_dir
    return sum(p.stat().st_size for p in data.rglob("*") if p.is_file() and "models" not in p.parts)


# -- one backend's curve ------------------------------------------------------------------------


def curve(
    backend: str,
    sizes: Sequence[int],
    data_dir: Path,
    database_url: str | None,
    args: argparse.Namespace,
    rep: Reporter,
    on_size: Any = None,
) -> dict[str, Any]:
    from ragstack.app import build as build_service
    from ragstack.config import Settings

    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    settings = (
        Settings(data_dir=data_dir, principal=OWNER, database_url=database_url)
        if database_url
        else Settings(data_dir=data_dir, principal=OWNER)
    )
    svc = build_service(settings)
    svc.create_collection(NAME, owner=OWNER, vector_backend="hnsw")
    corpus = Corpus()
    truth = ExactTruth(corpus.queries(args.sample)[1])
    b = Build()
    out: dict[str, Any] = {}
    for size in sizes:
        grow(svc, corpus, b, size, truth)
        ids_path = args.work_dir / f"{backend}-ids.npy"
        np.save(ids_path, np.concatenate(b.ids))
        svc.store.close()  # the measuring process opens it afresh (and SQLite checkpoints)
        spec = {"data_dir": str(data_dir), "database_url": database_url, "ids": str(ids_path),
                "queries": args.queries, "truth": truth.positions()}  # fmt: skip
        measured = run_child("measure", spec, args.work_dir)
        svc = build_service(settings)
        row = {
            "chunks": b.chunks,
            "documents": b.documents,
            "build_s": b.total_s,
            "build_sql_s": b.sql_s,
            "build_index_s": b.index_s,
            "build_save_s": b.save_s,
            "disk_bytes_per_chunk": disk_bytes(svc) / b.chunks,
            **measured,
        }
        out[label(size)] = row
        report_size(rep, backend, row)
        if on_size is not None:
            on_size(size, svc)
    svc.store.close()
    return out


def report_size(rep: Reporter, backend: str, row: dict[str, Any]) -> None:
    rep.table(
        f"{backend}, {row['chunks']:,} chunks ({row['documents']:,} documents): build "
        f"{row['build_s']:.0f} s (SQL {row['build_sql_s']:.0f}, indexes {row['build_index_s']:.0f}"
        f", save {row['build_save_s']:.0f}), {row['disk_bytes_per_chunk']:,.0f} B/chunk on disk, "
        f"open {row['open_s']:.1f} s, RSS {row['rss_mb']:,.0f} MB (peak {row['peak_rss_mb']:,.0f})",
        ["permitted", "chunks", "set cold ms", "cached ms", "first ms", "bm25 p50", "p95",
         "dense p50", "p95", "hybrid p50", "p95", "recall@10"],
        [[w, r["permitted"], r["permitted_cold_ms"], r["permitted_cached_ms"],
          r["first_search_ms"], r["bm25_p50_ms"], r["bm25_p95_ms"], r["dense_p50_ms"],
          r["dense_p95_ms"], r["hybrid_p50_ms"], r["hybrid_p95_ms"], r["recall_at_10"]]
         for w, r in row["widths"].items()],
    )  # fmt: skip
    stages = sorted({k for r in row["widths"].values() for m in MODES
                     for k in r.get(f"{m}_stages_ms", {})})  # fmt: skip
    rep.table(
        f"{backend}, {row['chunks']:,} chunks: where a search's time goes (median ms per stage)",
        ["permitted", "mode", *[k.removesuffix("_ms") for k in stages]],
        [[w, m, *[r[f"{m}_stages_ms"].get(k, 0.0) for k in stages]]
         for w, r in row["widths"].items() for m in MODES if f"{m}_stages_ms" in r],
    )  # fmt: skip


def worst(row: dict[str, Any], key: str, pick: Any = max) -> float:
    return float(pick(r[key] for r in row["widths"].values()))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10k,100k,1m", help="embedded sizes (chunks)")
    parser.add_argument("--pg-sizes", default="10k,100k", help="PostgreSQL sizes ('' for none)")
    parser.add_argument("--queries", type=int, default=200, help="timed queries per cell")
    parser.add_argument("--sample", type=int, default=100, help="queries of the recall sample")
    parser.add_argument("--crash-kills", type=int, default=12, help="0: no durability run")
    parser.add_argument("--crash-size", default="100k")
    parser.add_argument(
        "--crash-save-interval",
        type=float,
        default=2.0,
        help="RAGSTACK_INDEX_SAVE_INTERVAL_S of the killed ingests",
    )
    parser.add_argument(
        "--crash-sample", type=int, default=100, help="chunks searched after each restart"
    )
    parser.add_argument("--work-dir", type=Path, default=REPO_ROOT / ".cache" / "bench_growth")
    parser.add_argument("--json", action="store_true", help="print only the final JSON line")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--spec", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        spec = json.loads(args.spec.read_text(encoding="utf-8"))
        if args.child == "measure":
            child = measure(spec)
        else:
            from evals.crashes import verify

            child = verify(spec)
        print(json.dumps(child))
        return
    rep = Reporter(args.json)
    started = time.perf_counter()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    pg_sizes = [parse_size(s) for s in args.pg_sizes.split(",") if s.strip()]
    crash_size = parse_size(args.crash_size)
    crash: dict[str, Any] = {}

    def at_size(size: int, svc: Any) -> None:
        if size == crash_size and args.crash_kills:
            from evals.crashes import crash_run

            svc.store.close()
            crash.update(crash_run(args.work_dir / "embedded", args.work_dir, args, rep))

    embedded = curve("embedded", sizes, args.work_dir / "embedded", None, args, rep, at_size)
    postgres: dict[str, Any] = {}
    if pg_sizes:
        from ragstack.store.pgserver import LocalPostgres

        with LocalPostgres() as pg:
            postgres = curve("postgres", pg_sizes, args.work_dir / "postgres", pg.url, args, rep)

    def at(result: dict[str, Any], size: str) -> dict[str, Any] | None:
        return result.get(size)

    e1m, e100k, p100k = at(embedded, "1m"), at(embedded, "100k"), at(postgres, "100k")
    result: dict[str, Any] = {
        "embedded": embedded,
        "postgres": postgres,
        "crash": crash,
        "embedded_1m_hybrid_p50_ms": worst(e1m, "hybrid_p50_ms") if e1m else None,
        "embedded_1m_rss_mb": e1m["peak_rss_mb"] if e1m else None,
        "embedded_1m_recall_at_10": worst(e1m, "recall_at_10", min) if e1m else None,
        "growth_p50_100k_to_1m": (
            max(
                e1m["widths"][w]["hybrid_p50_ms"] / e100k["widths"][w]["hybrid_p50_ms"]
                for w in WIDTHS
            )
            if e1m and e100k
            else None
        ),
        "postgres_100k_hybrid_p50_ms": worst(p100k, "hybrid_p50_ms") if p100k else None,
        "crash_kills": crash.get("kills"),
        "crash_lost_committed_docs": crash.get("lost_committed_docs"),
        "crash_reconcile_s_max": crash.get("reconcile_s_max"),
        "seconds": time.perf_counter() - started,
    }
    rep.say(f"\ntotal {result['seconds']:.0f} s")
    rep.final(result)


if __name__ == "__main__":
    main()
