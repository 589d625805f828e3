"""API load test: ``python -m evals.bench_api [--json]``.

Starts ``ragstack serve``'s app under uvicorn (``--workers`` processes, one per core by
default) in a child process on a loopback port, over the
SciFact collection the evals ingest into ``.cache/evals`` (the configured embedder), with a
reader key. Then ``--clients`` threads send ``POST /v1/search`` (hybrid, top 10, no rerank)
for ``--seconds`` after ``--warmup-seconds`` of the same load: half of the requests repeat a hot
set of 20 claims (warm caches), half are cold: one of the other test claims with a number
never sent before, so no cache of any kind can answer them. A baseline runs first
under the same load and process layout: ``GET /v1/collections/{name}/documents?limit=10``
(auth, rate limit, ACL-filtered SQL, JSON; no retrieval), so the ratio shows what search adds to
the API's own overhead. Repeated queries skip the model (the service keeps recent query
vectors), as they would in production. The server's
RSS is read after the warm-up and at the end.

Table, then ONE final JSON line (only that line with ``--json``).
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from evals.beir import REPO_ROOT, load_beir, shared_data_dir
from evals.collections import PRINCIPAL, ensure_collection, eval_service
from evals.report import Reporter
from ragstack.access import Keys
from ragstack.evaluation import percentile


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its descendants (uvicorn's workers), in MB."""
    total = 0.0
    try:  # threads and processes come and go while /proc is read: those gone count 0
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) / 1024
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except (FileNotFoundError, ProcessLookupError):
        return total
    for task in tasks:
        try:
            children = (task / "children").read_text().split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        total += sum(rss_mb(int(c)) for c in children)
    return total


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes], deadline: float, log: str) -> None:
    """Until ``url`` answers ``/readyz`` (the database too); exit if ``proc`` died first."""
    while True:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            raise SystemExit(f"the server did not start: see {log}")
        time.sleep(0.2)


def load(
    url: str | list[str], headers: dict[str, str], clients: int, seconds: float, request: Any
) -> tuple[list[float], int, float]:
    """Closed loop: each client sends its next request when the last one returns; with
    several base URLs (replicas), client ``n`` uses ``urls[n % len(urls)]``."""
    urls = [url] if isinstance(url, str) else url
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client(n: int) -> None:
        nonlocal errors
        rng = random.Random(n)
        with httpx.Client(base_url=urls[n % len(urls)], headers=headers, timeout=30) as http:
            while time.monotonic() < stop:
                method, path, body = request(rng)
                t0 = time.perf_counter()
                try:
                    ok = http.request(method, path, json=body).status_code == 200
                except httpx.HTTPError:
                    ok = False
                ms = (time.perf_counter() - t0) * 1000
                with lock:
                    latencies.append(ms)
                    errors += not ok

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, errors, time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=shared_data_dir() / "scifact")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--baseline-seconds", type=float, default=15.0)
    parser.add_argument("--warmup-seconds", type=float, default=10.0)
    parser.add_argument(
        "--workers", type=int, default=2, help="uvicorn worker processes (one per core)"
    )
    parser.add_argument("--json", action="store_true", help="print only the final JSON line")
    args = parser.parse_args(argv)
    rep = Reporter(args.json)

    svc = eval_service()
    name = ensure_collection(svc, args.data, quiet=args.json)
    keys = Keys(svc.store)
    key, secret = keys.create(PRINCIPAL, name="bench_api")
    claims = [t for _, t in load_beir(args.data, "test").judged_queries()]
    hot, cold = claims[:20], claims[20:]
    data_dir = svc.settings.data_dir

    port = free_port()
    env = {**os.environ, "RAGSTACK_DATA_DIR": str(data_dir), "RAGSTACK_API_RATE_PER_S": "100000",
           "RAGSTACK_API_BURST": "100000", "HF_HUB_OFFLINE": "1"}  # fmt: skip
    log = (REPO_ROOT / ".cache" / "bench_api-server.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "ragstack.api.server:app", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning", "--workers", str(args.workers)],
        env=env, stdout=subprocess.DEVNULL, stderr=log,
    )  # fmt: skip
    url, headers = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {secret}"}
    try:
        wait_ready(url, server, time.monotonic() + 120, ".cache/bench_api-server.log")
        for q in hot[:5]:  # load the model before the clock
            httpx.post(f"{url}/v1/search", json={"collection": name, "query": q},
                       headers=headers, timeout=60).raise_for_status()  # fmt: skip

        def listing(_: random.Random) -> tuple[str, str, None]:
            return "GET", f"/v1/collections/{name}/documents?limit=10", None

        fresh = itertools.count()

        def search(rng: random.Random) -> tuple[str, str, dict[str, object]]:
            # a cold query is one no process has seen: a test claim and a number never sent
            # before, so every cache misses and the query is embedded
            query = rng.choice(hot) if rng.random() < 0.5 else f"{rng.choice(cold)} {next(fresh)}"
            return "POST", "/v1/search", {"collection": name, "query": query, "top_k": 10}

        base, base_errors, base_s = load(url, headers, args.clients, args.baseline_seconds,
                                         listing)  # fmt: skip
        # warm-up under the same load (every worker thread's first allocations), then the
        # measured run: RSS growth is what the steady state adds
        load(url, headers, args.clients, args.warmup_seconds, search)
        rss_start = rss_mb(server.pid)
        lat, errors, elapsed = load(url, headers, args.clients, args.seconds, search)
        rss_end = rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
        keys.revoke(key.key_id)

    p50 = statistics.median
    result = {
        "requests": len(lat),
        "errors": errors,
        "p50_ms": p50(lat),
        "p95_ms": percentile(lat, 95),
        "p99_ms": percentile(lat, 99),
        "rps": len(lat) / elapsed,
        "rss_mb_start": rss_start,
        "rss_mb_end": rss_end,
        "rss_growth": rss_end / rss_start - 1,
        "clients": args.clients,
        "workers": args.workers,
        "seconds": args.seconds,
        "baseline_p50_ms": p50(base),
        "baseline_rps": len(base) / base_s,
        "baseline_errors": base_errors,
        "p50_ratio_to_baseline": p50(lat) / p50(base),
        "embedder": svc.c.embedder.model_id,
    }
    rep.table(
        f"{args.clients} clients, closed loop, loopback; server: uvicorn, "
        f"{args.workers} worker process(es)",
        ["route", "requests", "errors", "rps", "p50 ms", "p95 ms", "p99 ms"],
        [
            [
                "baseline GET .../documents?limit=10",
                len(base),
                base_errors,
                len(base) / base_s,
                p50(base),
                percentile(base, 95),
                percentile(base, 99),
            ],
            [
                "POST /v1/search (hybrid, top 10)",
                len(lat),
                errors,
                len(lat) / elapsed,
                p50(lat),
                percentile(lat, 95),
                percentile(lat, 99),
            ],
        ],
    )
    rep.say(f"server RSS {rss_start:.0f} MB -> {rss_end:.0f} MB ({result['rss_growth']:+.1%})")
    rep.final(result)


if __name__ == "__main__":
    main()
