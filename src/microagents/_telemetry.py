"""Setting up tracing with zero configuration, or joining the application's.

`default_tracing()` decides once per process:

- if the application already set a global `TracerProvider`, we use it (and its current trace
  context), adding our embedded store to it when it is an SDK provider;
- otherwise we make an SDK provider that honours the standard ``OTEL_*`` variables, exporting
  in batches to the embedded store (`MICROAGENTS_TRACE_STORE=off` to skip it), to OTLP/HTTP when
  ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set or ``OTEL_TRACES_EXPORTER`` names ``otlp``
  (``pip install microagents[otlp]``), and to the console when it names ``console``.

Message content is captured only when ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``
is ``true``.
"""

from __future__ import annotations

import os
import sys
import threading

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)

from ._semconv import CAPTURE_CONTENT_ENV
from ._tracing import Tracing

_lock = threading.Lock()
_default: Tracing | None = None
_provider: TracerProvider | None = None


def capture_content_from_env() -> bool:
    return os.environ.get(CAPTURE_CONTENT_ENV, "").strip().lower() in ("true", "1", "yes")


def default_tracing() -> Tracing:
    """The process's `Tracing`: the application's provider if it has one, else ours."""
    global _default, _provider
    with _lock:
        if _default is not None:
            return _default
        provider = trace.get_tracer_provider()
        if isinstance(provider, trace.ProxyTracerProvider):
            provider = _make_provider()
            trace.set_tracer_provider(provider)
            _provider = provider
        elif isinstance(provider, TracerProvider) and _store_enabled():
            provider.add_span_processor(_store_processor())
            _provider = provider
        _default = Tracing.from_provider(provider, capture_content=capture_content_from_env())
        return _default


def flush_traces(timeout_millis: int = 5_000) -> None:
    """Export what is buffered now (on Ctrl-C, before exiting)."""
    if _provider is not None:
        _provider.force_flush(timeout_millis)


def _store_enabled() -> bool:
    return os.environ.get("MICROAGENTS_TRACE_STORE", "on").strip().lower() not in (
        "off",
        "0",
        "false",
    )


def _store_processor() -> SpanProcessor:
    from ._store_processor import StoreSpanProcessor
    from ._trace_store import SqliteSpanExporter

    return StoreSpanProcessor(SqliteSpanExporter())


def _make_provider() -> TracerProvider:
    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "microagents")})
    provider = TracerProvider(resource=resource)
    if _store_enabled():
        provider.add_span_processor(_store_processor())
    exporters = {
        name.strip().lower()
        for name in os.environ.get("OTEL_TRACES_EXPORTER", "").split(",")
        if name.strip()
    }
    if (
        "otlp" in exporters
        or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    ):
        otlp = _otlp_exporter()
        if otlp is not None:
            provider.add_span_processor(BatchSpanProcessor(otlp))
    if "console" in exporters:
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(out=sys.stderr)))
    return provider


def _otlp_exporter() -> SpanExporter | None:
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        print(
            "microagents: OTLP export is configured but its exporter is not installed; "
            "pip install 'microagents[otlp]'",
            file=sys.stderr,
        )
        return None
    # The exporter reads OTEL_EXPORTER_OTLP_* (endpoint, headers, timeout) itself.
    exporter: SpanExporter = OTLPSpanExporter()
    return exporter
