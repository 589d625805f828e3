"""OpenTelemetry spans of search and answers, with the SDK's in-memory exporter: one span per
operation, one child per stage, the answer's search nested under it; no query text in them."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ragstack.answering import AnswerRequest
from ragstack.service import IngestRequest, SourceSpec
from tests.ragstack.conftest import HANDBOOK, Factory

_EXPORTER = InMemorySpanExporter()


@pytest.fixture
def spans() -> InMemorySpanExporter:
    """The process's tracer provider (installed once: OpenTelemetry allows one) exporting to
    memory; emptied for each test."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        trace.set_tracer_provider(provider)
    _EXPORTER.clear()
    return _EXPORTER


def times(span: ReadableSpan) -> tuple[int, int]:
    assert span.start_time is not None and span.end_time is not None
    return span.start_time, span.end_time


def by_name(finished: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    return {s.name: s for s in finished}


def test_search_and_answer_stages_are_spans(
    make_service: Factory, spans: InMemorySpanExporter
) -> None:
    svc = make_service()
    svc.ingest(
        IngestRequest("hb", [SourceSpec(str(HANDBOOK))], public=True), principal="user:alice"
    )
    spans.clear()
    question = "How many vacation days carry over?"
    found = svc.search("hb", question, principals=["user:bob"], top_k=3)
    search = by_name(spans.get_finished_spans())
    assert set(search) == {"ragstack.search", *(f"ragstack.search.{s}" for s in
                           ("lookup", "acl", "embed", "retrieve", "hydrate"))}  # fmt: skip
    root = search["ragstack.search"]
    assert root.attributes is not None and root.attributes["collection"] == "hb"
    assert root.context is not None
    assert (root.attributes["mode"], root.attributes["hits"]) == ("hybrid", len(found.hits))
    for name, s in search.items():
        if name != "ragstack.search":
            assert s.parent is not None and s.parent.span_id == root.context.span_id
            assert times(root)[0] <= times(s)[0] <= times(s)[1] <= times(root)[1]
    # the stage spans last what the response's timings say
    start, end = times(search["ragstack.search.embed"])
    stage_ms = (end - start) / 1e6
    assert stage_ms == pytest.approx(found.timings_ms["embed_ms"], abs=1.0)

    spans.clear()
    svc.ask(AnswerRequest("hb", question, ("user:bob",), use_cache=False))
    answer = by_name(spans.get_finished_spans())
    stages = {"embed", "search", "compress", "generate", "verify"}
    assert {f"ragstack.answer.{s}" for s in stages} <= set(answer)
    top = answer["ragstack.answer"]
    nested = answer["ragstack.search"]  # the answer's retrieval, under the answer
    assert nested.parent is not None and nested.parent.span_id == top.context.span_id
    assert top.attributes is not None and top.attributes["generator"] == "extractive"
    text = repr([dict(s.attributes or {}) for s in spans.get_finished_spans()])
    assert "vacation" not in text and "user:bob" not in text  # no query, no principal


def test_a_failed_search_is_an_error_span(
    make_service: Factory, spans: InMemorySpanExporter
) -> None:
    svc = make_service()
    with pytest.raises(Exception, match="no collection"):
        svc.search("missing", "x", principals=["user:bob"])
    (failed,) = spans.get_finished_spans()
    assert failed.name == "ragstack.search" and failed.status.status_code.name == "ERROR"
    assert failed.attributes is not None and failed.attributes["error.type"] == "not_found"
