"""Prometheus metrics of one API process (``GET /metrics``, admin key only).

Route labels are route templates (``/v1/collections/{name}``), never raw paths, so no label
carries a name a caller typed. Index sizes and document counts are ``collection_figures`` at
scrape time, in a registry made per scrape (a deleted collection leaves no stale series); an
admin with a tenant gets only its tenant's collections, without the process-wide counters
(they span every tenant).
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
from ragstack.api.slots import Generations
from ragstack.service import Ragstack

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, svc: Ragstack, generations: Generations | None = None) -> None:
        self.svc = svc
        self.generations = generations
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

    def render(self, tenant: str | None = None) -> bytes:
        """The exposition for an admin: every collection and the process counters (``tenant``
        None), or only the collections of ``tenant``."""
        r = CollectorRegistry()
        index_bytes = Gauge("ragstack_index_bytes", "Index size on disk", ["collection", "index"],
                            registry=r)  # fmt: skip
        documents = Gauge("ragstack_documents", "Documents", ["collection"], registry=r)
        chunks = Gauge("ragstack_chunks", "Chunks", ["collection"], registry=r)
        ingested = Gauge(
            "ragstack_ingest_runs", "Ingest runs by status", ["collection", "status"], registry=r
        )
        for name, figures in self.svc.collection_figures(tenant).items():
            for index, size in figures["index_bytes"].items():
                index_bytes.labels(name, index).set(size)
            documents.labels(name).set(figures["documents"])
            chunks.labels(name).set(figures["chunks"])
            for status, n in figures["runs"].items():
                ingested.labels(name, status).set(n)
        if tenant is not None:
            return generate_latest(r)
        if self.generations is not None:
            slots = Gauge("ragstack_answer_slots", "Answer generations by state",
                          ["generator", "state"], registry=r)  # fmt: skip
            refused = Gauge("ragstack_answers_refused", "Answers refused as busy (total)",
                            ["generator"], registry=r)  # fmt: skip
            for name, f in self.generations.figures().items():
                slots.labels(name, "running").set(f.running)
                slots.labels(name, "waiting").set(f.waiting)
                slots.labels(name, "limit").set(f.limit)
                refused.labels(name).set(f.refused)
        return generate_latest(self.registry) + generate_latest(r)
