"""``ragstack demo``: the main job on embedded defaults, over the handbook ragstack ships.

Ingests ``ragstack/assets/handbook`` (PII redaction, chunking, MiniLM embeddings, HNSW + BM25)
into the configured data dir, then searches it as two principals to show the ACL filter at work
(``benefits.md`` is readable by ``group:hr`` only, through its ``.acl.json`` sidecar), then
asks a question and answers it with the extractive generator, every sentence cited to the exact
text that supports it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ragstack.answering import AnswerRequest, AnswerResponse
from ragstack.ingest.items import IngestSummary, Progress
from ragstack.search import Hit
from ragstack.service import IngestRequest, Ragstack, SourceSpec

# packaged with ragstack (package data), so `ragstack demo` runs from any directory
SAMPLE_DIR = Path(__file__).resolve().parent / "assets" / "handbook"
COLLECTION = "handbook"
DEMO_QUERIES = (
    ("how many vacation days can I carry over", "user"),
    ("what happens if I lose my laptop", "user"),
    ("who gets paged when the site is down", "user"),
    ("how much of the health insurance premium does the company pay", "user"),
    ("how much of the health insurance premium does the company pay", "hr"),
)


DEMO_QUESTION = "How many days of paid annual leave do I get, and how many can I carry over?"


@dataclass(frozen=True)
class DemoResult:
    summary: IngestSummary
    searches: list[tuple[str, tuple[str, ...], list[Hit]]]
    answer: AnswerResponse


def run_demo(svc: Ragstack, principal: str, progress: Progress | None = None) -> DemoResult:
    summary = svc.ingest(
        IngestRequest(COLLECTION, [SourceSpec(str(SAMPLE_DIR))]),
        principal=principal,
        progress=progress,
    )
    searches = []
    for query, who in DEMO_QUERIES:
        principals: tuple[str, ...] = (principal,) if who == "user" else (principal, "group:hr")
        hits = svc.search(COLLECTION, query, principals=principals, mode="hybrid", top_k=3).hits
        searches.append((query, principals, hits))
    answer = svc.ask(AnswerRequest(COLLECTION, DEMO_QUESTION, (principal,), generator="extractive"))
    return DemoResult(summary, searches, answer)
