"""Prometheus metrics of one API process (``GET /metrics``, admin key only).

Route labels are route templates (``/v1/collections/{name}``), never raw paths, so no label
carries a name a caller typed. Index sizes and document counts are ``collection_figures`` at
scrape time.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from ragstack.answering import AnswerResponse
from ragstack.service import Ragstack

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, svc: Ragstack) -> None:
        self.svc = svc
        self.registry = r = CollectorRegistry()
        self.requests = Counter(
            "ragstack_requests", "HTTP requests", ["method", "route", "status"], registry=r
        )
        self.latency = Histogram(
            "ragstack_request_seconds", "Request latency", ["route"], buckets=BUCKETS, registry=r
        )
        self.cache = Counter("ragstack_answer_cache", "Answer cache lookups", ["outcome"],
                             registry=r)  # fmt: skip
        self.tokens = Counter(
            "ragstack_generator_tokens", "Tokens per generator", ["generator", "kind"], registry=r
        )
        self.answers = Counter("ragstack_answers", "Answers", ["generator"], registry=r)
        self.index_bytes = Gauge(
            "ragstack_index_bytes", "Index size on disk", ["collection", "index"], registry=r
        )
        self.documents = Gauge("ragstack_documents", "Documents", ["collection"], registry=r)
        self.chunks = Gauge("ragstack_chunks", "Chunks", ["collection"], registry=r)
        self.ingested = Gauge(
            "ragstack_ingest_runs", "Ingest runs by status", ["collection", "status"], registry=r
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def answered(self, response: AnswerResponse) -> None:
        self.cache.labels("hit" if response.cached else "miss").inc()
        self.answers.labels(response.generator).inc()
        if not response.cached:
            self.tokens.labels(response.generator, "prompt").inc(response.usage.prompt_tokens)
            self.tokens.labels(response.generator, "completion").inc(
                response.usage.completion_tokens
            )

    def render(self) -> bytes:
        for name, figures in self.svc.collection_figures().items():
            for index, size in figures["index_bytes"].items():
                self.index_bytes.labels(name, index).set(size)
            self.documents.labels(name).set(figures["documents"])
            self.chunks.labels(name).set(figures["chunks"])
            for status, n in figures["runs"].items():
                self.ingested.labels(name, status).set(n)
        return generate_latest(self.registry)
