"""Live embedder migration benchmark: ``python -m evals.bench_reembed [--json] [--docs N]``.

SciFact (or its first ``--docs`` documents) ingested with the torch MiniLM (once, kept under
``.cache/evals/reembed-*``; each run works on a copy), then, in this process:

1. **before**: a search load alone (``--clients`` threads, each one hybrid top-10 search at a
   time with ``--think-ms`` between, over SciFact's test queries; every query embedded afresh:
   the model memos are cleared before each search). Its responses are the *old* results.
2. **plain re-embed**: the same chunks embedded by a fresh int8 ONNX MiniLM, nothing else
   running (the baseline ``migrate_s`` is held to).
3. **during**: ``Ragstack.reembed`` to the int8 MiniLM while the same load runs; every
   response is recorded.
4. **after**: the load alone again; its responses are the *new* results.

A response during the migration is *mixed* unless it equals the old or the new result list
of its query (chunk ids and scores). Table, then ONE final JSON line (only it with ``--json``):
``{"migrate_s", "plain_reembed_s", "errors_during", "p95_ms_before", "p95_ms_during",
"mixed_responses", ...}``. Targets: errors 0, mixed 0, p95 during <= 2x before, migrate_s <=
1.5x plain_reembed_s.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from evals.beir import REPO_ROOT, load_beir, shared_data_dir
from evals.report import Reporter
from ragstack.app import build, make_embedder
from ragstack.config import Settings
from ragstack.evaluation import percentile
from ragstack.service import IngestRequest, Ragstack, SourceSpec

PRINCIPAL = "user:eval"
SOURCE = "sentence-transformers"  # the torch MiniLM
TARGET = "int8"  # the built-in int8 ONNX MiniLM
Result = tuple[tuple[int, float], ...]


def corpus_folder(data: Path, docs: int | None, into: Path) -> Path:
    """``data`` itself, or a BEIR folder of its first ``docs`` documents."""
    if docs is None:
        return data
    into.mkdir(parents=True, exist_ok=True)
    with (data / "corpus.jsonl").open(encoding="utf-8") as src:
        lines = [line for line in src if line.strip()][:docs]
    (into / "corpus.jsonl").write_text("".join(lines), encoding="utf-8")
    return into


def settings_for(data_dir: Path, embedder: str = SOURCE, **extra: Any) -> Settings:
    return Settings(data_dir=data_dir, principal=PRINCIPAL, embedder=embedder, **extra)


def template(
    data: Path,
    docs: int | None,
    *,
    embedder: str = SOURCE,
    name: str = "scifact",
    prefix: str = "reembed",
) -> Path:
    """A data dir holding collection ``name`` of ``data`` (or its first ``docs`` documents)
    ingested with ``embedder``, once (``.cache/evals/<prefix>-<docs>``; runs work on copies)."""
    where = REPO_ROOT / ".cache" / "evals" / f"{prefix}-{docs or 'all'}"
    marker = where / "ready.json"
    if marker.is_file():
        return where
    shutil.rmtree(where, ignore_errors=True)
    folder = corpus_folder(data, docs, where / "corpus")
    svc = build(settings_for(where / "data", embedder))
    t0 = time.perf_counter()
    summary = svc.ingest(
        IngestRequest(name, [SourceSpec(str(folder))], public=True), principal=PRINCIPAL
    )
    svc.store.close()
    seconds = time.perf_counter() - t0
    print(f"ingested {summary.ingested:,} documents ({summary.chunks:,} chunks) of {name} with "
          f"{embedder} in {seconds:.0f} s", file=sys.stderr)  # fmt: skip
    marker.write_text(json.dumps({"documents": summary.ingested, "chunks": summary.chunks}))
    return where


class Load:
    """``clients`` threads searching in turn over ``queries`` until stopped."""

    def __init__(self, svc: Ragstack, queries: list[str], clients: int, think_s: float) -> None:
        self.svc, self.queries, self.clients, self.think_s = svc, queries, clients, think_s
        self.records: list[tuple[float, float, str, Result | None]] = []  # start, ms, q, result
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def _fresh_memos(self) -> None:
        models = self.svc.c.models
        for model_id in models.loaded():
            models.get(model_id).memo.clear()

    def search(self, q: str) -> None:
        self._fresh_memos()  # every query embedded, as a new query would be
        start = time.perf_counter()
        try:
            hits = self.svc.search("scifact", q, principals=[PRINCIPAL], top_k=10).hits
            result: Result | None = tuple((h.chunk_id, round(h.score, 4)) for h in hits)
        except Exception as exc:
            result = None
            with self._lock:
                self.errors.append(f"{type(exc).__name__}: {exc}")
        ms = (time.perf_counter() - start) * 1000
        with self._lock:
            self.records.append((start, ms, q, result))

    def _loop(self, offset: int, once: bool) -> None:
        i = offset
        while not self._stop.is_set():
            if once and i >= len(self.queries):
                return
            self.search(self.queries[i % len(self.queries)])
            i += self.clients
            time.sleep(self.think_s)

    def start(self, *, once: bool = False) -> Load:
        self._threads = [
            threading.Thread(target=self._loop, args=(n, once), daemon=True)
            for n in range(self.clients)
        ]
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.join()

    def join(self) -> None:
        for t in self._threads:
            t.join()

    def results(self) -> dict[str, Result]:
        return {q: r for _s, _ms, q, r in self.records if r is not None}


def p95(values: list[float]) -> float:
    return round(percentile(values, 95), 2) if values else 0.0


def p50(values: list[float]) -> float:
    return round(percentile(values, 50), 2) if values else 0.0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=shared_data_dir() / "scifact")
    parser.add_argument("--docs", type=int, default=None, help="only the first N documents")
    parser.add_argument("--clients", type=int, default=1, help="search threads")
    parser.add_argument("--think-ms", type=float, default=20.0, help="pause between searches")
    parser.add_argument(
        "--nice", type=int, default=None, help="RAGSTACK_REEMBED_NICE for the migration"
    )
    parser.add_argument("--json", action="store_true", help="print only the final JSON line")
    args = parser.parse_args(argv)
    nice = {} if args.nice is None else {"reembed_nice": args.nice}
    rep = Reporter(args.json)
    queries = [q for _qid, q in load_beir(args.data).judged_queries()]
    source = template(args.data, args.docs)
    work = Path(tempfile.mkdtemp(prefix="bench-reembed-"))
    try:
        shutil.copytree(source / "data", work / "data")
        svc = build(settings_for(work / "data", reembed_grace_s=1.0, **nice))
        info = svc.collection("scifact")
        chunks = len(svc.store.live_chunk_ids(info.id))
        think = args.think_ms / 1000
        for q in queries[:20]:  # first-call overheads off the clock
            svc.search("scifact", q, principals=[PRINCIPAL], top_k=10)

        before = Load(svc, queries, args.clients, think).start(once=True)
        before.join()
        old = before.results()

        target_id = svc.c.model_id_for(TARGET, None)
        plain, _counter, _window = make_embedder(svc.settings, target_id)
        _ids, _vectors, texts = svc.store.chunk_payloads(
            svc.store.live_chunk_ids(info.id).tolist(), info.dim
        )
        plain.embed(texts[:32])  # the model loaded off the clock
        t0 = time.perf_counter()
        batch = svc.settings.reembed_batch
        for start in range(0, len(texts), batch):
            plain.embed(texts[start : start + batch])
        plain_s = time.perf_counter() - t0
        del plain

        during = Load(svc, queries, args.clients, think).start()
        time.sleep(1.0)
        t0 = time.perf_counter()
        run = svc.reembed("scifact", TARGET)
        migrate_s = time.perf_counter() - t0
        migrate_end = time.perf_counter()
        time.sleep(1.0)
        during.stop()

        after = Load(svc, queries, args.clients, think).start(once=True)
        after.join()
        new = after.results()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    in_window = [r for r in during.records if t0 <= r[0] <= migrate_end]
    ms_during = [ms for _s, ms, _q, res in in_window if res is not None]
    ms_before = [ms for _s, ms, _q, res in before.records if res is not None]
    ms_after = [ms for _s, ms, _q, res in after.records if res is not None]
    kinds = {"old": 0, "new": 0, "mixed": 0}
    for _s, _ms, q, res in during.records:
        if res is None:
            continue
        if res == old.get(q):
            kinds["old"] += 1
        elif res == new.get(q):
            kinds["new"] += 1
        else:
            kinds["mixed"] += 1
    differ = sum(old[q] != new.get(q) for q in old)
    rep.table(
        "live re-embed: SciFact, torch MiniLM -> int8 ONNX MiniLM",
        ["phase", "seconds", "searches", "p50 ms", "p95 ms", "errors"],
        [
            ["before (load alone)", "", len(ms_before), p50(ms_before), p95(ms_before), 0],
            ["plain re-embed (alone)", round(plain_s, 1), "", "", "", ""],
            ["migration under load", round(migrate_s, 1), len(ms_during), p50(ms_during),
             p95(ms_during), len(during.errors)],
            ["after (load alone)", "", len(ms_after), p50(ms_after), p95(ms_after), 0],
        ],
    )  # fmt: skip
    rep.table(
        "responses during the migration",
        ["wholly old", "wholly new", "mixed", "queries whose results changed"],
        [[kinds["old"], kinds["new"], kinds["mixed"], f"{differ} of {len(old)}"]],
    )
    report = run.report
    rep.table(
        "the shadow's check",
        ["chunks", "embedded", "reused", "index ok", "recall@10", "status"],
        [[chunks, run.embedded, run.reused, report.get("ok"), report.get("recall_at_10"),
          run.status]],
    )  # fmt: skip
    rep.final(
        {
            "migrate_s": round(migrate_s, 2),
            "plain_reembed_s": round(plain_s, 2),
            "errors_during": len(during.errors),
            "p95_ms_before": p95(ms_before),
            "p95_ms_during": p95(ms_during),
            "mixed_responses": kinds["mixed"],
            "p95_ratio": round(p95(ms_during) / max(p95(ms_before), 1e-9), 3),
            "migrate_ratio": round(migrate_s / max(plain_s, 1e-9), 3),
            "responses_old": kinds["old"],
            "responses_new": kinds["new"],
            "searches_during": len(ms_during),
            "chunks": chunks,
            "docs": args.docs,
            "reembed_nice": svc.settings.reembed_nice,
            "status": run.status,
            "recall_at_10": report.get("recall_at_10"),
        }
    )


if __name__ == "__main__":
    main()
