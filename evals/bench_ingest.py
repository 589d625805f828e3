"""Ingest benchmark: ``python -m evals.bench_ingest [--json]``.

Ingests a BEIR corpus (SciFact by default) end to end through the service layer into a fresh
data dir with the configured embedder (``RAGSTACK_EMBEDDER``, packaged MiniLM by default),
ingests it again unchanged, ingests the first ``--ner-docs`` documents into a second
collection with NER redaction on, then embeds the very chunk texts that were stored with the
model alone (``raw``), all in this process, so the ratios hold on a noisy machine. The model
is loaded before the clock starts for all of them.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from evals.beir import shared_data_dir
from evals.report import Reporter
from ragstack.app import build
from ragstack.config import Settings
from ragstack.service import IngestRequest, SourceSpec
from ragstack.store import index_text

PLACEHOLDER = re.compile(
    r"<(EMAIL|PHONE|CREDIT_CARD|IBAN|US_SSN|IP_ADDRESS|PERSON|LOCATION)"
    r"(_[0-9a-f]{8})?>"
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=shared_data_dir() / "scifact",
        help="BEIR folder (default ../shared/data/scifact)",
    )
    parser.add_argument(
        "--raw-sample",
        type=int,
        default=2000,
        help="stored chunk texts re-embedded for the raw baseline",
    )
    parser.add_argument(
        "--ner-docs",
        type=int,
        default=1000,
        help="documents ingested again with NER redaction on (0: skip)",
    )
    parser.add_argument("--json", action="store_true", help="print only the final JSON line")
    args = parser.parse_args(argv)
    rep = Reporter(args.json)

    with tempfile.TemporaryDirectory(prefix="ragstack-bench-") as tmp:
        settings = Settings(data_dir=Path(tmp) / "data", principal="user:bench")
        svc = build(settings)
        embedder = svc.c.embedder
        t0 = time.perf_counter()
        getattr(embedder, "warm_up", lambda: None)()
        load_s = time.perf_counter() - t0
        request = IngestRequest("scifact", [SourceSpec(str(args.data))], public=True)

        first = svc.ingest(request, principal="user:bench")
        second = svc.ingest(request, principal="user:bench")
        ner = None
        if args.ner_docs:
            subset = _first_docs(args.data, args.ner_docs, Path(tmp) / "subset")
            from ragstack.redaction import Redactor

            Redactor(ner=True).warm_up()  # the spaCy model loads before the clock, too
            ner_request = IngestRequest(
                "scifact_ner", [SourceSpec(str(subset))], public=True, pii_ner=True
            )
            ner = svc.ingest(ner_request, principal="user:bench")

        db = settings.data_dir / "ragstack.db"
        con = sqlite3.connect(db)
        rows = con.execute(
            "SELECT c.section, c.text, k.name FROM chunks c JOIN documents d "
            "ON d.id = c.document_id JOIN collections k ON k.id = d.collection_id ORDER BY c.id"
        ).fetchall()
        con.close()
        texts = [index_text(section, text) for section, text, name in rows if name == "scifact"]
        redacted = sum(
            1 for _s, text, name in rows if name == "scifact" and PLACEHOLDER.search(text)
        )
        ner_redacted = sum(
            1 for _s, text, name in rows if name == "scifact_ner" and PLACEHOLDER.search(text)
        )
        sample = random.Random(0).sample(texts, min(args.raw_sample, len(texts)))
        t0 = time.perf_counter()
        embedder.embed(sample)
        raw_s = time.perf_counter() - t0

    docs = first.ingested + first.updated
    chunks = first.chunks
    raw_rate = len(sample) / raw_s
    ner_rate = ner.chunks / ner.seconds if ner is not None else None
    result: dict[str, Any] = {
        "docs": docs,
        "chunks": chunks,
        "docs_per_s": docs / first.seconds,
        "chunks_per_s": chunks / first.seconds,
        "raw_embed_chunks_per_s": raw_rate,
        "raw_embed_sample": len(sample),
        "ratio_to_raw_embed": (chunks / first.seconds) / raw_rate,
        "ratio_to_raw_embed_with_ner": ner_rate / raw_rate if ner_rate else None,
        "ner_docs": ner.ingested if ner is not None else 0,
        "ner_chunks_per_s": ner_rate,
        "chunks_changed_by_ner_redaction": ner_redacted if ner is not None else None,
        "ner_chunks": ner.chunks if ner is not None else 0,
        "first_ingest_s": first.seconds,
        "reingest_unchanged_s": second.seconds,
        "reingest_speedup": first.seconds / second.seconds,
        "reingest_unchanged_docs": second.unchanged,
        "chunks_changed_by_redaction": redacted,
        "model_load_s": load_s,
        "failed": first.failed,
        "skipped": first.skipped,
    }
    rep.table(
        f"Ingest of {args.data.name} ({docs:,} documents -> {chunks:,} chunks), MiniLM on CPU",
        ["step", "seconds", "docs/s", "chunks/s", "notes"],
        [
            [
                "first ingest",
                first.seconds,
                result["docs_per_s"],
                result["chunks_per_s"],
                "parse, redact, chunk, embed, SQL, HNSW + BM25",
            ],
            [
                "raw embedding",
                raw_s,
                None,
                result["raw_embed_chunks_per_s"],
                f"model.encode of {len(sample):,} of the stored chunk texts (seeded sample)",
            ],
            ["ratio", None, None, result["ratio_to_raw_embed"], "ingest / raw embedding"],
            [
                "ingest with NER",
                ner.seconds if ner is not None else None,
                ner.ingested / ner.seconds if ner is not None else None,
                ner_rate,
                f"first {result['ner_docs']:,} documents, spaCy NER redaction on",
            ],
            [
                "ratio with NER",
                None,
                None,
                result["ratio_to_raw_embed_with_ner"],
                "ingest with NER / raw embedding",
            ],
            [
                "re-ingest unchanged",
                second.seconds,
                second.unchanged / second.seconds,
                None,
                f"{result['reingest_speedup']:.0f}x faster than the first",
            ],
        ],
    )
    rep.say(
        f"chunks altered by default (pattern) redaction: {redacted:,} of {chunks:,}; "
        f"by NER redaction: {result['chunks_changed_by_ner_redaction']} of "
        f"{result['ner_chunks']:,} (scientific text: mostly eponyms and author names)"
    )
    rep.final(result)


def _first_docs(data: Path, n: int, out: Path) -> Path:
    """A BEIR folder holding the first ``n`` documents of ``data``'s corpus."""
    out.mkdir(parents=True)
    with (data / "corpus.jsonl").open(encoding="utf-8") as src:
        lines = [line for _, line in zip(range(n), src, strict=False)]
    for line in lines:
        json.loads(line)  # a broken corpus should fail here, not mid-ingest
    (out / "corpus.jsonl").write_text("".join(lines), encoding="utf-8")
    return out


if __name__ == "__main__":
    main()
