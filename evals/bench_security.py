"""Hostile use, end to end: ``python -m evals.bench_security [--json]``.

Against a live API server (uvicorn on loopback) per database backend (SQLite, then a
throwaway PostgreSQL 18 + pgvector):

* the leak fuzzer (``evals.leaks``): ``--cases`` seeded hostile requests per backend through
  every route that returns content; twin collections for score dependence; readers racing a
  writer who narrows, widens and deletes (stale responses after a change committed);
* uploads: files and failures through the API, then what is left on disk (staged originals
  must be gone once their job ends, and a crashed job's are swept at the next start);
* SSRF: hostile URLs (loopback, private, link-local, mapped and encoded forms, redirects,
  sitemaps) submitted through the API while a forbidden listener counts what reaches it
  (``evals.ssrf``, when present);
* the cost of answering only from what a caller may read: ``evals.bench_query``'s search at
  1%, 10% and 100% of chunks permitted, before and after (``evals.selectivity``).

Table, then ONE final JSON line: ``{"cases", "leaks", "ssrf_reached",
"revocation_stale_responses", "score_dependence", "id_gaps_revealed", "uploads_left_on_disk",
"search_p50_ratio_vs_before"}``; every count should be 0 and the ratio at most 1.15.
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time
from pathlib import Path
from typing import Any

from evals.leaks import Fuzzer, LiveServer, Report, Sizes, build_world
from evals.report import Cell, Reporter


def fuzz_backend(
    root: Path, database_url: str | None, cases: int, churn_s: float, sizes: Sizes
) -> tuple[Report, float]:
    from ragstack.api import create_app

    t0 = time.perf_counter()
    world = build_world(root, database_url=database_url, sizes=sizes)
    with LiveServer(create_app(world.svc)) as server:
        fuzzer = Fuzzer(world, server.url)
        try:
            fuzzer.compare_twins(queries=20)
            fuzzer.fuzz(cases)
            report = fuzzer.churn(seconds=churn_s)
        finally:
            fuzzer.close()
    world.svc.store.close()
    return report, time.perf_counter() - t0


def uploads_left(root: Path) -> tuple[int, int]:
    """Upload jobs through a live server (good files, a corrupt one, a refused sidecar) and a
    staged folder a crashed job left: ``(uploads made, files left under uploads/)``."""
    import httpx

    from ragstack.access import Keys
    from ragstack.api import create_app
    from ragstack.app import build
    from ragstack.config import Settings
    from ragstack.ingest.uploads import staging_dir

    settings = Settings(data_dir=root / "data", embedder="hashing", principal="user:root")
    svc = build(settings)
    svc.create_collection("kb", owner="user:root", public=True)
    _, secret = Keys(svc.store).create("user:w", role="writer")
    crashed = staging_dir(settings.data_dir, "0" * 32)  # a job row that never existed
    crashed.mkdir(parents=True)
    (crashed / "left.md").write_text("what a killed process left behind")
    made = 0
    headers = {"Authorization": f"Bearer {secret}"}
    with LiveServer(create_app(svc)) as server, httpx.Client(base_url=server.url) as client:
        sidecar = [("files", ("x.md.acl.json", b"{}", "application/json"))]
        for i in range(20):
            note = f"# Note {i}\n\nCall 555-01{i:02d}.".encode()
            files = [
                ("files", (f"note{i}.md", note, "text/markdown")),
                ("files", (f"broken{i}.pdf", b"%PDF-1.7 not a pdf", "application/pdf")),
            ]
            r = client.post("/v1/collections/kb/documents", files=files, headers=headers)
            made += 2 * (r.status_code == 202)
            client.post("/v1/collections/kb/documents", headers=headers, files=sidecar)
            job = r.json()["id"]
            for _ in range(600):
                if client.get(f"/v1/jobs/{job}", headers=headers).json()["status"] not in (
                    "queued", "running"):  # fmt: skip
                    break
                time.sleep(0.05)
    left = [p for p in (settings.data_dir / "uploads").rglob("*") if p.is_file()]
    svc.store.close()
    return made, len(left)


def ssrf_cases(root: Path) -> tuple[int, int | None]:
    """``(cases, connections the forbidden listener received)`` from ``evals.ssrf``, or
    ``(0, None)`` where that module does not exist yet."""
    if importlib.util.find_spec("evals.ssrf") is None:
        return 0, None
    from evals import ssrf

    cases, reached = ssrf.run(root)
    return int(cases), int(reached)


def selectivity() -> dict[str, dict[str, float]]:
    from evals.beir import load_beir, shared_data_dir
    from evals.bench_query import selectivity_costs
    from evals.collections import ensure_collection, eval_service

    data = shared_data_dir() / "scifact"
    svc = eval_service()
    name = ensure_collection(svc, data)
    queries = [t for _q, t in load_beir(data, "test").judged_queries()][:300]
    vectors = svc.c.embedder.embed(queries)
    return selectivity_costs(svc, name, queries, vectors, quiet=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000, help="fuzzer cases per backend")
    parser.add_argument("--churn", type=float, default=20.0, help="seconds of churn per backend")
    parser.add_argument("--big", type=int, default=6000, help="documents of the big collection")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--no-selectivity", action="store_true", help="skip the cost runs")
    parser.add_argument("--json", action="store_true", help="print only the final JSON line")
    args = parser.parse_args(argv)
    rep = Reporter(args.json)
    sizes = Sizes(corp=200, big=args.big, acme=50)
    total = Report()
    rows: list[list[Cell]] = []
    with tempfile.TemporaryDirectory(prefix="ragstack-security-") as tmp:
        root = Path(tmp)
        for backend in args.backends.split(","):
            if backend == "postgresql":
                from ragstack.store.pgserver import LocalPostgres

                with LocalPostgres() as pg:  # a throwaway cluster
                    report, seconds = fuzz_backend(root / backend, pg.url, args.cases,
                                                   args.churn, sizes)  # fmt: skip
            else:
                report, seconds = fuzz_backend(root / backend, None, args.cases, args.churn, sizes)
            total.merge(report)
            rows.append([backend, report.cases, len(report.leaks), report.id_gaps_revealed,
                         report.twin_comparisons, report.score_dependence, report.mutations,
                         report.churn_responses, report.stale, seconds])  # fmt: skip
            rep.say(f"{backend}: routes {dict(report.routes)}")
            for leak in report.leaks[:10]:
                rep.say(f"  LEAK {leak}")
        made, left = uploads_left(root / "uploads")
        ssrf_total, reached = ssrf_cases(root / "ssrf")
    acl = {} if args.no_selectivity else selectivity()
    rep.table(
        "Leak fuzzer against a live server",
        ["backend", "cases", "leaks", "int ids", "twin checks", "score diffs", "mutations",
         "churn reqs", "stale", "seconds"],
        rows,
    )  # fmt: skip
    rep.table("Uploads and fetches", ["check", "cases", "bad"],
              [["uploads left on disk", made, left],
               ["SSRF: forbidden listener reached", ssrf_total, reached]])  # fmt: skip
    if acl:
        rep.table(
            "Search p50 (ms), BM25 statistics over the permitted chunks vs the whole collection",
            ["permitted", "before", "after", "ratio"],
            [[w, c["before_p50_ms"], c["after_p50_ms"], c["ratio"]] for w, c in acl.items()],
        )
    worst: Any = max((c["ratio"] for c in acl.values()), default=None)
    rep.final({
        "cases": total.cases,
        "leaks": len(total.leaks),
        "ssrf_reached": reached,
        "ssrf_cases": ssrf_total,
        "revocation_stale_responses": total.stale,
        "score_dependence": total.score_dependence,
        "id_gaps_revealed": total.id_gaps_revealed,
        "uploads_left_on_disk": left,
        "search_p50_ratio_vs_before": round(worst, 4) if worst is not None else None,
        "search_p50_ratio_by_permitted": {w: round(c["ratio"], 4) for w, c in acl.items()},
        "twin_comparisons": total.twin_comparisons,
        "churn_responses": total.churn_responses,
        "mutations": total.mutations,
    })  # fmt: skip


if __name__ == "__main__":
    main()
