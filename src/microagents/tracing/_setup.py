"""Setting up tracing with zero configuration, or joining the application's.

`default_tracing()` decides once per process:

- if the application already set a global `TracerProvider`, we use it (and its current trace
  context), adding our embedded store to it when it is an SDK provider;
- otherwise we make an SDK provider that honours the standard ``OTEL_*`` variables, exporting
  in batches to the embedded store (`MICROAGENTS_TRACE_STORE=off` to skip it), to OTLP/HTTP when
  ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set or ``OTEL_TRACES_EXPORTER`` names ``otlp``
  (``pip install microagents[otlp]``), and to the console when it names ``console``.

The provider we make names its service, and Phoenix's project, after ``OTEL_SERVICE_NAME`` (or
``service.name`` in ``OTEL_RESOURCE_ATTRIBUTES``), else after the workflow the first engine was
made for, else ``microagents``; ``openinference.project.name`` in ``OTEL_RESOURCE_ATTRIBUTES``
names the project apart.

Message content is captured only when ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``
is ``true``, each attribute cut to ``MICROAGENTS_TRACE_CONTENT_LIMIT`` characters.
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

from ..errors import MicroagentsError
from ._content import DEFAULT_LIMIT
from ._semconv import CAPTURE_CONTENT_ENV, PROJECT_NAME, SERVICE_NAME
from ._tracing import MIN_CONTENT_LIMIT, Tracing

CONTENT_LIMIT_ENV = "MICROAGENTS_TRACE_CONTENT_LIMIT"
DEFAULT_SERVICE_NAME = "microagents"

_lock = threading.Lock()
_default: Tracing | None = None
_provider: TracerProvider | None = None


def capture_content_from_env() -> bool:
    return os.environ.get(CAPTURE_CONTENT_ENV, "").strip().lower() in ("true", "1", "yes")


def content_limit_from_env() -> int:
    raw = os.environ.get(CONTENT_LIMIT_ENV, "").strip()
    if not raw:
        return DEFAULT_LIMIT
    if not raw.isdigit() or int(raw) < MIN_CONTENT_LIMIT:
        raise MicroagentsError(
            f"{CONTENT_LIMIT_ENV} must be a number of characters ≥ {MIN_CONTENT_LIMIT}, not {raw!r}"
        )
    return int(raw)


def default_tracing(service_name: str | None = None) -> Tracing:
    """The process's `Tracing`: the application's provider if it has one, else ours.

    The first call decides. When it makes the provider and the environment names no service,
    `service_name` (the workflow's name, from `Engine.for_backend`) names the service and
    the Phoenix project that the process's spans go to.
    """
    global _default, _provider
    with _lock:
        if _default is not None:
            return _default
        provider = trace.get_tracer_provider()
        if isinstance(provider, trace.ProxyTracerProvider):
            provider = _make_provider(service_name or DEFAULT_SERVICE_NAME)
            trace.set_tracer_provider(provider)
            _provider = provider
        elif isinstance(provider, TracerProvider) and _store_enabled():
            provider.add_span_processor(_store_processor())
            _provider = provider
        _default = Tracing.from_provider(
            provider,
            capture_content=capture_content_from_env(),
            content_limit=content_limit_from_env(),
        )
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
    from ._processor import StoreSpanProcessor
    from ._store import SqliteSpanExporter

    return StoreSpanProcessor(SqliteSpanExporter())


def _resource(service_name: str) -> Resource:
    """The SDK's resource from the environment, with `service_name` where the environment
    names no service, and the Phoenix project named after the service unless set apart."""
    detected = Resource.create()
    name = detected.attributes.get(SERVICE_NAME)
    ours: dict[str, str] = {}
    # The SDK's stand-in when nothing names the service: "unknown_service" (":" + executable).
    if not isinstance(name, str) or name.startswith("unknown_service"):
        name = ours[SERVICE_NAME] = service_name
    if PROJECT_NAME not in detected.attributes:
        ours[PROJECT_NAME] = name
    return detected.merge(Resource(ours))


def _make_provider(service_name: str = DEFAULT_SERVICE_NAME) -> TracerProvider:
    provider = TracerProvider(resource=_resource(service_name))
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
