"""OpenTelemetry spans for each stage of search and answers.

``Stages`` is the clock search and answers already keep (per-stage milliseconds, what
responses show in ``timings_ms``) that also records a span for the whole operation
(``ragstack.search``, ``ragstack.answer``) and a child span per stage (``ragstack.search.embed``,
``ragstack.answer.generate``...) through the OpenTelemetry API. Until a tracer provider is
installed the API hands out non-recording spans and nothing else happens; ``configure``
installs the SDK's (the ``otel`` extra) for ``RAGSTACK_OTEL_EXPORTER=console|otlp``, or a host
application installs its own. Span attributes name the collection, the mode, counts and
outcomes, never a query, a text or a principal.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import Literal

from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from ragstack.errors import ConfigError

Exporter = Literal["none", "console", "otlp"]
_configured: list[str] = []


def tracer() -> trace.Tracer:
    return trace.get_tracer("ragstack")


class Stages:
    """Per-stage timings in milliseconds (``lap``), as spans too when tracing is on. Use it as
    a context manager: the operation's span ends (with the error, if one escaped) on exit."""

    def __init__(self, operation: str, **attributes: AttributeValue) -> None:
        self.operation = operation
        self.start = self.last = time.perf_counter()
        self._last_ns = time.time_ns()
        self.laps: dict[str, float] = {}
        self.span: Span = tracer().start_span(
            operation, attributes=attributes, start_time=self._last_ns
        )
        self._context = trace.set_span_in_context(self.span)

    def __enter__(self) -> Stages:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is not None and not isinstance(exc, GeneratorExit):
            self.span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            self.span.set_attribute("error.type", getattr(exc, "code", type(exc).__name__))
        self.span.end()

    def lap(self, name: str) -> None:
        """The stage ``name`` (``embed_ms``) ended now."""
        now, now_ns = time.perf_counter(), time.time_ns()
        self.laps[name] = (now - self.last) * 1000
        if self.span.is_recording():
            stage = f"{self.operation}.{name.removesuffix('_ms')}"
            child = tracer().start_span(stage, context=self._context, start_time=self._last_ns)
            child.end(end_time=now_ns)
        self.last, self._last_ns = now, now_ns

    def set(self, **attributes: AttributeValue) -> None:
        self.span.set_attributes(attributes)

    def since_start(self) -> float:
        return (time.perf_counter() - self.start) * 1000

    def done(self) -> dict[str, float]:
        return {**self.laps, "total_ms": self.since_start()}

    def current(self) -> trace.Span:
        """The operation's span, to make it the parent of a nested one (``trace.use_span``)."""
        return self.span


def configure(exporter: Exporter) -> None:
    """Install the SDK's tracer provider exporting to ``exporter`` (once per process; the
    OTLP exporter reads the standard ``OTEL_EXPORTER_OTLP_*`` variables)."""
    if exporter == "none" or _configured:
        return
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
    except ImportError as exc:
        raise ConfigError(
            "RAGSTACK_OTEL_EXPORTER needs the OpenTelemetry SDK: pip install 'ragstack[otel]'"
        ) from exc
    provider = TracerProvider(resource=Resource.create({"service.name": "ragstack"}))
    if exporter == "console":
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    else:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError as exc:
            raise ConfigError(
                "RAGSTACK_OTEL_EXPORTER=otlp needs opentelemetry-exporter-otlp-proto-http"
            ) from exc
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _configured.append(exporter)
