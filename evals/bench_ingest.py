"""Ingest benchmark: ``python -m evals.bench_ingest [--json]``.

Ingests a BEIR corpus (SciFact by default) end to end through the service layer into a fresh
data dir with the packaged MiniLM embedder, ingests it again unchanged, then embeds the very
chunk texts that were stored with the model alone (``raw``), all in this process, so the
ratios hold on a noisy machine. The model is loaded before the clock starts for both.
"""

from __future__ import annotations

import argparse
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
from ragstack.embedding import SentenceTransformerEmbedder
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
    parser.add_argument("--json", action="store_true", help="print only the final JSON line")
    args = parser.parse_args(argv)
    rep = Reporter(args.json)

    with tempfile.TemporaryDirectory(prefix="ragstack-bench-") as tmp:
        settings = Settings(data_dir=Path(tmp) / "data", principal="user:bench")
        svc = build(settings)
        embedder = svc.c.embedder
        assert isinstance(embedder, SentenceTransformerEmbedder)
        t0 = time.perf_counter()
        embedder.warm_up()
        load_s = time.perf_counter() - t0
        request = IngestRequest("scifact", [SourceSpec(str(args.data))], public=True)

        first = svc.ingest(request, principal="user:bench")
        second = svc.ingest(request, principal="user:bench")

        db = settings.data_dir / "ragstack.db"
        con = sqlite3.connect(db)
        rows = con.execute("SELECT section, text FROM chunks ORDER BY id").fetchall()
        con.close()
        texts = [index_text(section, text) for section, text in rows]
        redacted = sum(1 for _s, text in rows if PLACEHOLDER.search(text))
        sample = random.Random(0).sample(texts, min(args.raw_sample, len(texts)))
        t0 = time.perf_counter()
        embedder.embed(sample)
        raw_s = time.perf_counter() - t0

    docs = first.ingested + first.updated
    chunks = first.chunks
    result: dict[str, Any] = {
        "docs": docs,
        "chunks": chunks,
        "docs_per_s": docs / first.seconds,
        "chunks_per_s": chunks / first.seconds,
        "raw_embed_chunks_per_s": len(sample) / raw_s,
        "raw_embed_sample": len(sample),
        "ratio_to_raw_embed": (chunks / first.seconds) / (len(sample) / raw_s),
        "ratio_to_raw_embed_with_ner": None,
        "ner_available": False,
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
        "NER redaction is not in this build (ratio_to_raw_embed_with_ner: null)"
    )
    rep.final(result)


if __name__ == "__main__":
    main()
