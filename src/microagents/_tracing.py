"""Spans for every hop of a run, on the OpenTelemetry GenAI conventions.

`Tracing` is what the runtime calls when tracing is on; when it is off the runtime never calls
anything here. One span per hop, attributes set in one call when the hop ends, no span for
what did not happen. Model-call spans come from `TracedModel`, a wrapper around the model
stack, so that the scheduler does not know about model calls at all.

With an SDK `TracerProvider` (ours by default, or the application's), each hop is recorded
as a light span that *is* an SDK `ReadableSpan`, handed to the provider's span processors when
it ends: the same spans the SDK's exporters (the store, OTLP, console) receive, without the
SDK's per-span locking, validation and bookkeeping on the hot path, which cost ~25 µs a span
here. The provider's sampler decides once per run. With any other provider, the OpenTelemetry
API is used as it is.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from contextvars import ContextVar, Token
from dataclasses import asdict
from typing import Any, Protocol

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
from opentelemetry.sdk.trace.sampling import DEFAULT_ON, Decision
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    DEFAULT_TRACE_STATE,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    Tracer,
    TracerProvider,
)

from . import _semconv as sc
from ._compiled import CompiledNode
from ._errors import ModelError
from ._model import (
    Model,
    ModelRequest,
    ModelResponse,
    StreamEnd,
    StreamEvent,
    aclose_inner,
    stream_of,
)
from ._results import NodeRun, RunResult, jsonable


class SpanLike(Protocol):
    """What `Tracing` needs of a span: an OpenTelemetry `Span`, or our light one."""

    def set_attribute(self, key: str, value: Any) -> None: ...

    def set_attributes(self, attributes: Mapping[str, Any]) -> None: ...

    def add_event(self, name: str, attributes: Mapping[str, Any] | None = None) -> None: ...

    def set_status(self, status: Status) -> None: ...

    def get_span_context(self) -> SpanContext: ...


_random = random.Random()
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_NOT_SAMPLED = TraceFlags(TraceFlags.DEFAULT)


_UNSET = Status(StatusCode.UNSET)
_NO_EVENTS: tuple[Event, ...] = ()
_new_tuple = tuple.__new__


def _span_context(trace_id: int, span_id: int, flags: TraceFlags) -> SpanContext:
    """A local `SpanContext` from ids we generated (so valid): the tuple `SpanContext.__new__`
    would build, without re-checking the ids' ranges on every hop."""
    context: SpanContext = _new_tuple(
        SpanContext, (trace_id, span_id, False, flags, DEFAULT_TRACE_STATE, True)
    )
    return context


class _LightSpan(ReadableSpan):
    """A hop being recorded (``with`` makes it current) and, once ended, the `ReadableSpan`
    the span processors receive.

    It fills `ReadableSpan`'s fields itself, as the SDK's own `Span` does, so that one object
    per hop serves both purposes; the in-memory-exporter tests check what exporters see.
    To keep a hop cheap:

    - fields that most hops share are class attributes (each `_Sink` makes a subclass
      holding its provider's resource and scope), so that a hop sets five fields, not
      fourteen;
    - its ids are kept as the trace store's row wants them (`_ids`, read in C by
      `light_span_row`), and the `SpanContext`s an exporter may ask for are built on demand.
    """

    _sink: _Sink
    _resource: Resource
    _instrumentation_scope: InstrumentationScope
    _kind = SpanKind.INTERNAL
    _end_time: int | None = None
    _events: Sequence[Event] = _NO_EVENTS
    _links = ()
    _status = _UNSET
    _status_code = StatusCode.UNSET.value
    _status_message: str | None = None
    _instrumentation_info = None
    _outer: SpanContext | None = None
    """A run's parent when it joined the application's trace (perhaps a remote span)."""
    _built_context: SpanContext | None = None
    _ids: tuple[str, int, int | None]
    """(trace id in hex, span id, parent span id)."""
    _flags: TraceFlags
    _token: Token[_LightSpan | None]

    def __init__(self, name: str, attributes: dict[str, Any]) -> None:
        parent = _current.get()
        if parent is not None:
            ids = parent._ids
            self._ids = (ids[0], _random.getrandbits(64), ids[1])
            self._flags = parent._flags
        else:
            self._ids, self._flags, self._outer = self._sink.root(name, self._kind, attributes)
        self._name = name
        self._attributes = attributes
        self._start_time = time.time_ns()

    @property
    def _context(self) -> SpanContext:  # type: ignore[override]
        # Built once, on demand: the store never asks, but with OTLP beside it every
        # processor and the encoder do.
        context = self._built_context
        if context is None:
            ids = self._ids
            context = self._built_context = _span_context(int(ids[0], 16), ids[1], self._flags)
        return context

    @property
    def _parent(self) -> SpanContext | None:  # type: ignore[override]
        if self._outer is not None:
            return self._outer
        ids = self._ids
        return None if ids[2] is None else _span_context(int(ids[0], 16), ids[2], self._flags)

    def __enter__(self) -> _LightSpan:
        self._token = _current.set(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        _current.reset(self._token)
        self.end()

    def end(self) -> None:
        self._end_time = time.time_ns()
        if self._flags:  # sampled
            self._sink.on_end(self)

    def set_attribute(self, key: str, value: Any) -> None:
        self._attributes[key] = value  # type: ignore[index]

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        self._attributes.update(attributes)  # type: ignore[union-attr]

    def add_event(self, name: str, attributes: Mapping[str, Any] | None = None) -> None:
        self._events = (*self._events, Event(name, dict(attributes or {}), time.time_ns()))

    def set_status(self, status: Status) -> None:
        self._status = status
        self._status_code = status.status_code.value
        self._status_message = status.description

    def get_span_context(self) -> SpanContext:
        return self._context


_current: ContextVar[_LightSpan | None] = ContextVar("microagents_span", default=None)


class _Sink:
    """Where light spans come from (a provider's resource and sampler) and go to (its span
    processors)."""

    def __init__(self, provider: SdkTracerProvider, version: str) -> None:
        self.provider = provider
        scope = InstrumentationScope("microagents", version)
        self.span: type[_LightSpan] = type(
            "_LightSpan",
            (_LightSpan,),
            {"_sink": self, "_resource": provider.resource, "_instrumentation_scope": scope},
        )
        self.model_call: type[_LightSpan] = type("_ModelCallSpan", (_ModelCallSpan, self.span), {})
        self._processors: object = None
        self.on_end: Callable[[ReadableSpan], None]
        self._bind_processors()

    def root(
        self, name: str, kind: SpanKind, attributes: dict[str, Any]
    ) -> tuple[tuple[str, int, int | None], TraceFlags, SpanContext | None]:
        """A run span's ids, whether it is sampled, and its parent: the application's
        current span, if any (a run joins its trace). The provider's sampler decides here,
        once per run."""
        self._bind_processors()
        outer = trace.get_current_span().get_span_context()
        valid = outer.is_valid
        trace_id = outer.trace_id if valid else _random.getrandbits(128)
        sampler = self.provider.sampler
        if sampler is DEFAULT_ON:  # what it decides, without building its arguments
            sampled = not valid or outer.trace_flags.sampled
        else:
            sampled = (
                sampler.should_sample(
                    trace.set_span_in_context(NonRecordingSpan(outer)) if valid else None,
                    trace_id,
                    name,
                    kind,
                    attributes,
                ).decision
                is Decision.RECORD_AND_SAMPLE
            )
        ids = (format(trace_id, "032x"), _random.getrandbits(64), outer.span_id if valid else None)
        return ids, _SAMPLED if sampled else _NOT_SAMPLED, outer if valid else None

    def _bind_processors(self) -> None:
        """Hand ended spans straight to the provider's one processor, or to all of them.

        Checked again at every run's start: the processor list is a tuple the provider
        replaces when one is added, so a processor added between runs is seen from the
        next run on.
        """
        multi = self.provider._active_span_processor
        processors = getattr(multi, "_span_processors", None)
        if processors is self._processors:
            return
        self._processors = processors
        from ._store_processor import StoreSpanProcessor

        if isinstance(processors, tuple) and len(processors) == 1:
            only = processors[0]
            # The store's queue takes our spans as they are (they are sampled, or not here).
            self.on_end = only.enqueue if isinstance(only, StoreSpanProcessor) else only.on_end
        else:
            self.on_end = multi.on_end


class _ModelCallSpan(_LightSpan):
    """A model call: a client span with no child hops, so never made current (which saves
    setting and resetting the context on every call)."""

    _kind = SpanKind.CLIENT

    def __enter__(self) -> _LightSpan:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.end()


class Tracing:
    """Creates the spans of runs with one OpenTelemetry `Tracer`.

    ```python
    tracing = Tracing(my_provider.get_tracer("microagents"), capture_content=True)
    engine = Engine(model, tracing=tracing)
    ```
    """

    def __init__(
        self,
        tracer: Tracer,
        *,
        capture_content: bool = False,
        provider: TracerProvider | None = None,
    ) -> None:
        from . import __version__

        self.tracer = tracer
        self.capture_content = capture_content
        # By node (kept, so that its id is not reused): the span name and the attributes
        # that are the same on every visit.
        self._node_heads: dict[int, tuple[CompiledNode, str, dict[str, Any]]] = {}
        # The fast path is the SDK's own (disabled with it: OTEL_SDK_DISABLED=true).
        sdk_on = os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() != "true"
        self._sink = (
            _Sink(provider, __version__)
            if sdk_on and isinstance(provider, SdkTracerProvider)
            else None
        )

    @classmethod
    def from_provider(cls, provider: TracerProvider, *, capture_content: bool = False) -> Tracing:
        """Tracing on `provider` (the fast path when it is an SDK `TracerProvider`)."""
        from . import __version__

        return cls(
            provider.get_tracer("microagents", __version__),
            capture_content=capture_content,
            provider=provider,
        )

    def _span(self, name: str, attributes: dict[str, Any]) -> AbstractContextManager[SpanLike]:
        sink = self._sink
        if sink is None:
            return self.tracer.start_as_current_span(
                name, attributes=attributes, record_exception=False, set_status_on_exception=False
            )
        return sink.span(name, attributes)

    def _model_call_span(
        self, name: str, attributes: dict[str, Any]
    ) -> AbstractContextManager[SpanLike]:
        sink = self._sink
        if sink is None:
            return self.tracer.start_as_current_span(
                name,
                kind=SpanKind.CLIENT,
                attributes=attributes,
                record_exception=False,
                set_status_on_exception=False,
            )
        return sink.model_call(name, attributes)

    @staticmethod
    def trace_id(span: SpanLike) -> str:
        """The id of the trace `span` is in, in hex."""
        if isinstance(span, _LightSpan):
            return span._ids[0]
        return format(span.get_span_context().trace_id, "032x")

    def current(self) -> SpanLike:
        """The span of the hop running now."""
        light = _current.get() if self._sink is not None else None
        return light if light is not None else trace.get_current_span()

    def tool_context(self) -> AbstractContextManager[Any]:
        """Make the current hop the OpenTelemetry current span while a tool runs, so that a
        tool's own instrumentation (an HTTP client, say) continues the trace."""
        light = _current.get() if self._sink is not None else None
        if light is None:
            return nullcontext()
        return trace.use_span(NonRecordingSpan(light.get_span_context()), end_on_exit=False)

    def run_span(
        self,
        workflow: str,
        version: str,
        run_id: str,
        *,
        nested: bool,
        batch_index: int | None,
    ) -> AbstractContextManager[SpanLike]:
        attributes: dict[str, Any] = {
            sc.OPERATION_NAME: sc.OP_WORKFLOW,
            sc.WORKFLOW_NAME: workflow,
            sc.WORKFLOW_VERSION: version,
            sc.RUN_ID: run_id,
        }
        if nested:
            attributes[sc.RUN_NESTED] = True
        if batch_index is not None:
            attributes[sc.BATCH_INDEX] = batch_index
        return self._span(f"{sc.OP_WORKFLOW} {workflow}", attributes)

    def finish_run(self, span: SpanLike, result: RunResult) -> None:
        span.set_attributes(
            {
                sc.RUN_STATUS: result.status,
                sc.COST_USD: result.cost_usd,
                sc.USAGE_INPUT_TOKENS: result.usage.total_input_tokens,
                sc.USAGE_OUTPUT_TOKENS: result.usage.output_tokens,
                sc.ESCALATION_COUNT: len(result.escalations),
                sc.SIMULATED: result.simulated,
            }
        )
        if not result.ok:
            span.set_status(Status(StatusCode.ERROR, result.error or "failed"))
            span.set_attribute(sc.ERROR_TYPE, "RunFailed")
            if result.failed_node:
                span.set_attribute(sc.NODE_ID, result.failed_node)

    def node_span(
        self, node: CompiledNode, visit: int, item_index: int | None = None
    ) -> AbstractContextManager[SpanLike]:
        head = self._node_heads.get(id(node))
        if head is None or head[0] is not node:
            if len(self._node_heads) > 10_000:  # workflows compiled again and again
                self._node_heads.clear()
            head = self._node_heads[id(node)] = (node, *_node_head(node))
        _, name, constant = head
        attributes = {**constant, sc.NODE_VISIT: visit}
        if item_index is not None:
            attributes[sc.ITEM_INDEX] = item_index
        return self._span(name, attributes)

    def finish_node(self, span: SpanLike, run: NodeRun, kind: str = "agent") -> None:
        attempts = run.attempts
        if attempts and kind == "agent":
            # One pass over the attempts (usually one), not NodeRun's summing properties.
            cost = 0.0
            input_tokens = output_tokens = 0
            for attempt in attempts:
                usage = attempt.usage
                cost += attempt.cost_usd
                input_tokens += usage.total_input_tokens
                output_tokens += usage.output_tokens
            span.set_attributes(
                {
                    sc.TIER: attempts[-1].tier,
                    sc.COST_USD: cost,
                    sc.USAGE_INPUT_TOKENS: input_tokens,
                    sc.USAGE_OUTPUT_TOKENS: output_tokens,
                }
            )
        if run.status == "failed":
            span.set_status(Status(StatusCode.ERROR, run.error or "failed"))
            span.set_attribute(sc.ERROR_TYPE, "NodeError")

    def escalation_event(self, span: SpanLike, trigger: str, from_tier: str, to_tier: str) -> None:
        span.add_event(
            sc.EVENT_ESCALATION,
            {sc.ESCALATION_TRIGGER: trigger, sc.TIER: from_tier, sc.ESCALATION_TO: to_tier},
        )

    def fan_out_span(self, node_id: str, items: int) -> AbstractContextManager[SpanLike]:
        return self._span(f"fan_out {node_id}", {sc.NODE_ID: node_id, sc.FAN_OUT_ITEMS: items})

    def tool_call_span(
        self, tool: str, call_id: str, arguments: Mapping[str, Any]
    ) -> AbstractContextManager[SpanLike]:
        attributes: dict[str, Any] = {
            sc.OPERATION_NAME: sc.OP_TOOL,
            sc.TOOL_NAME: tool,
            sc.TOOL_CALL_ID: call_id,
            sc.TOOL_TYPE: "function",
        }
        if self.capture_content:
            attributes[sc.TOOL_CALL_ARGUMENTS] = _json(arguments)
        return self._span(f"{sc.OP_TOOL} {tool}", attributes)

    def finish_tool_call(self, span: SpanLike, content: str, is_error: bool) -> None:
        if is_error:
            span.set_status(Status(StatusCode.ERROR, content[:500]))
            span.set_attribute(sc.ERROR_TYPE, "ToolError")
        if self.capture_content:
            span.set_attribute(sc.TOOL_CALL_RESULT, content)


class TracedModel:
    """Wraps the model stack: one ``chat {model}`` span per call, child of the current hop."""

    def __init__(self, inner: Model, tracing: Tracing) -> None:
        self.inner = inner
        self.tracing = tracing
        self._names: dict[str, str] = {}

    async def aclose(self) -> None:
        await aclose_inner(self.inner)

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        """A streamed call in its ``chat {model}`` span, finished from the final response."""
        attributes: dict[str, Any] = {
            sc.OPERATION_NAME: sc.OP_CHAT,
            sc.PROVIDER_NAME: sc.PROVIDER,
            sc.REQUEST_MODEL: request.model,
            sc.REQUEST_MAX_TOKENS: request.max_tokens,
        }
        with self.tracing._model_call_span(f"{sc.OP_CHAT} {request.model}", attributes) as span:
            async for event in stream_of(self.inner, request):
                if isinstance(event, StreamEnd):
                    response = event.response
                    span.set_attributes(
                        {
                            sc.RESPONSE_MODEL: response.model,
                            sc.RESPONSE_FINISH_REASONS: (response.stop_reason,),
                            sc.USAGE_INPUT_TOKENS: response.usage.total_input_tokens,
                            sc.USAGE_OUTPUT_TOKENS: response.usage.output_tokens,
                            **_cost(response),
                        }
                    )
                yield event

    async def complete(self, request: ModelRequest) -> ModelResponse:
        tracing = self.tracing
        attributes: dict[str, Any] = {
            sc.OPERATION_NAME: sc.OP_CHAT,
            sc.PROVIDER_NAME: sc.PROVIDER,
            sc.REQUEST_MODEL: request.model,
            sc.REQUEST_MAX_TOKENS: request.max_tokens,
            sc.REQUEST_TEMPERATURE: request.temperature,
        }
        tier = request.metadata.get("tier")
        if tier:
            attributes[sc.TIER] = tier
        if request.effort is not None:
            attributes[sc.REQUEST_EFFORT] = request.effort
        if request.output_format is not None:
            attributes[sc.OUTPUT_TYPE] = "json"
        if tracing.capture_content:
            if request.system:
                attributes[sc.SYSTEM_INSTRUCTIONS] = request.system
            attributes[sc.INPUT_MESSAGES] = _json(
                [
                    {"role": m.role, "parts": [asdict(b) for b in m.content]}
                    for m in request.messages
                ]
            )
        name = self._names.get(request.model)
        if name is None:
            name = self._names[request.model] = f"{sc.OP_CHAT} {request.model}"
        with tracing._model_call_span(name, attributes) as span:
            try:
                response = await self.inner.complete(request)
            except ModelError as error:
                span.set_status(Status(StatusCode.ERROR, str(error)))
                span.set_attribute(sc.ERROR_TYPE, type(error).__name__)
                span.add_event(
                    "exception",
                    {"exception.type": type(error).__name__, "exception.message": str(error)},
                )
                raise
            usage = response.usage
            finished: dict[str, Any] = {
                sc.RESPONSE_MODEL: response.model,
                sc.RESPONSE_FINISH_REASONS: (response.stop_reason,),
                sc.USAGE_INPUT_TOKENS: usage.total_input_tokens,
                sc.USAGE_OUTPUT_TOKENS: usage.output_tokens,
                sc.USAGE_CACHE_READ: usage.cache_read_input_tokens,
                sc.USAGE_CACHE_CREATION: usage.cache_creation_input_tokens,
                sc.PROMPT_CACHE_HIT_RATE: usage.cache_hit_rate,
                **_cost(response),
                sc.CACHE_HIT: response.cached,
                sc.SIMULATED: response.simulated,
                sc.ATTEMPTS: response.attempts,
            }
            if response.request_id:
                finished[sc.RESPONSE_ID] = response.request_id
            for warning in response.warnings:
                span.add_event(sc.EVENT_MODEL_WARNING, {"message": warning})
            if response.rate_limit_wait:
                finished[sc.RATE_LIMIT_WAIT] = response.rate_limit_wait
                span.add_event(sc.EVENT_RATE_LIMIT_WAIT, {"seconds": response.rate_limit_wait})
            if tracing.capture_content:
                finished[sc.OUTPUT_MESSAGES] = _json(
                    [{"role": "assistant", "parts": [asdict(b) for b in response.content]}]
                )
            span.set_attributes(finished)
            return response


def _node_head(node: CompiledNode) -> tuple[str, dict[str, Any]]:
    """A node span's name and the attributes that are the same on every visit."""
    kind, target = node.kind, node.target
    operation = {"agent": sc.OP_AGENT, "tool": sc.OP_TOOL}.get(kind, sc.OP_WORKFLOW)
    name_key = {"agent": sc.AGENT_NAME, "tool": sc.TOOL_NAME}.get(kind, sc.WORKFLOW_NAME)
    name = target.split("@", 1)[0]
    attributes: dict[str, Any] = {
        sc.OPERATION_NAME: operation,
        name_key: name,
        sc.NODE_KIND: kind,
        sc.NODE_ID: node.id,
    }
    if kind == "agent":
        attributes[sc.AGENT_ID] = target
    elif kind == "tool":
        attributes[sc.TOOL_TYPE] = "function"
    return f"{operation} {name}", attributes


def _cost(response: ModelResponse) -> dict[str, Any]:
    if response.cost_usd is None:
        return {sc.COST_UNKNOWN: True}
    return {sc.COST_USD: response.cost_usd}


def _json(value: Any) -> str:
    return json.dumps(jsonable(value), ensure_ascii=False, default=str)
