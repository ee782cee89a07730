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

import os
import random
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from contextvars import ContextVar, Token
from typing import Any, Protocol

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
from opentelemetry.sdk.trace.sampling import DEFAULT_ON, Decision
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    DEFAULT_TRACE_STATE,
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    Tracer,
    TracerProvider,
)

from ..errors import MicroagentsError, ModelError
from ..graph._compiled import CompiledNode
from ..models._protocol import (
    Model,
    ModelRequest,
    ModelResponse,
    StreamEnd,
    StreamEvent,
    aclose_inner,
    stream_of,
)
from ..models._sdk_spans import sdk_spans_enabled
from ..results._results import NodeRun, RunResult
from . import _content as content
from . import _semconv as sc


class SpanLike(Protocol):
    """What `Tracing` needs of a span: an OpenTelemetry `Span`, or our light one."""

    def set_attribute(self, key: str, value: Any) -> None: ...

    def set_attributes(self, attributes: Mapping[str, Any]) -> None: ...

    def add_event(self, name: str, attributes: Mapping[str, Any] | None = None) -> None: ...

    def set_status(self, status: Status) -> None: ...

    def update_name(self, name: str) -> None: ...

    def get_span_context(self) -> SpanContext: ...


_random = random.Random()
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_NOT_SAMPLED = TraceFlags(TraceFlags.DEFAULT)


_UNSET = Status(StatusCode.UNSET)
_OK = Status(StatusCode.OK)
_OK_CODE = StatusCode.OK.value
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
    _links: tuple[Link, ...] = ()
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
        if status is _OK:  # most hops, and without Status's properties (~0.3 µs)
            self._status_code = _OK_CODE
            return
        self._status_code = status.status_code.value
        self._status_message = status.description

    def update_name(self, name: str) -> None:
        self._name = name

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
        from ._processor import StoreSpanProcessor

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

    With `capture_content`, every hop also records what went in and what came out, each
    attribute cut to `content_limit` characters (see `_trace_content`).
    """

    def __init__(
        self,
        tracer: Tracer,
        *,
        capture_content: bool = False,
        content_limit: int = content.DEFAULT_LIMIT,
        provider: TracerProvider | None = None,
    ) -> None:
        from .._about import __version__

        if content_limit < MIN_CONTENT_LIMIT:
            raise MicroagentsError(
                f"content_limit must be at least {MIN_CONTENT_LIMIT} characters, "
                f"not {content_limit}"
            )
        self.tracer = tracer
        self.capture_content = capture_content
        self.content_limit = content_limit
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
    def from_provider(
        cls,
        provider: TracerProvider,
        *,
        capture_content: bool = False,
        content_limit: int = content.DEFAULT_LIMIT,
    ) -> Tracing:
        """Tracing on `provider` (the fast path when it is an SDK `TracerProvider`)."""
        from .._about import __version__

        return cls(
            provider.get_tracer("microagents", __version__),
            capture_content=capture_content,
            content_limit=content_limit,
            provider=provider,
        )

    def _span(
        self, name: str, attributes: dict[str, Any], links: tuple[Link, ...] = ()
    ) -> AbstractContextManager[SpanLike]:
        sink = self._sink
        if sink is None:
            return self.tracer.start_as_current_span(
                name,
                attributes=attributes,
                links=links,
                record_exception=False,
                set_status_on_exception=False,
            )
        span = sink.span(name, attributes)
        if links:
            span._links = links
        return span

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

    @staticmethod
    def span_id(span: SpanLike) -> str:
        """`span`'s own id, in hex."""
        if isinstance(span, _LightSpan):
            return format(span._ids[1], "016x")
        return format(span.get_span_context().span_id, "016x")

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

    # -- runs --------------------------------------------------------------------------------

    def run_span(
        self,
        workflow: str,
        version: str,
        run_id: str,
        *,
        nested: bool,
        batch_index: int | None,
        follows: tuple[str, str, int] | None = None,
    ) -> AbstractContextManager[SpanLike]:
        """A run's span; `follows` (the earlier attempt's trace and span ids in hex, and this
        attempt's number) makes it a resumed run's: a link to the earlier run span, which
        trace viewers show (Jaeger as a FOLLOWS_FROM reference), and the attempt number."""
        attributes: dict[str, Any] = {
            sc.OPERATION_NAME: sc.OP_WORKFLOW,
            sc.SPAN_KIND: sc.KIND_CHAIN,
            sc.GEN_AI_WORKFLOW_NAME: workflow,
            sc.WORKFLOW_NAME: workflow,
            sc.WORKFLOW_VERSION: version,
            sc.RUN_ID: run_id,
        }
        if nested:
            attributes[sc.RUN_NESTED] = True
        if batch_index is not None:
            attributes[sc.BATCH_INDEX] = batch_index
        if follows is None:
            return self._span(f"{sc.OP_WORKFLOW} {workflow}", attributes)
        earlier_trace, earlier_span, attempt = follows
        attributes[sc.RUN_ATTEMPT] = attempt
        attributes[sc.RUN_RESUMED_FROM] = earlier_trace
        earlier = SpanContext(
            int(earlier_trace, 16), int(earlier_span, 16), is_remote=True, trace_flags=_SAMPLED
        )
        link = Link(earlier, {sc.LINK_TYPE: sc.LINK_EARLIER_ATTEMPT})
        return self._span(f"{sc.OP_WORKFLOW} {workflow}", attributes, (link,))

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
        if result.replayed:
            span.set_attribute(sc.REPLAYED, result.replayed)
        if result.waiting_for is not None:
            # Not an error: the run stopped to wait, and a resume will continue it.
            span.set_attribute(sc.RUN_WAITING_NODE, result.waiting_for.node)
            return
        if self.capture_content:
            span.set_attributes(self._io(result.input, "input", "user"))
            if result.ok:
                span.set_attributes(self._io(result.output, "output", "assistant"))
        if result.ok:
            span.set_status(_OK)
            return
        span.set_status(Status(StatusCode.ERROR, result.error or "failed"))
        span.set_attribute(sc.ERROR_TYPE, "RunFailed")
        if result.failed_node:
            span.set_attribute(sc.NODE_ID, result.failed_node)

    # -- nodes -------------------------------------------------------------------------------

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
            name = f"{name} [{item_index}]"
        if visit > 1:
            name = f"{name} #{visit}"
        return self._span(name, attributes)

    def node_input(self, span: SpanLike, kind: str, inputs: Any) -> None:
        """With content capture: what a node visit was given, once its inputs are rendered."""
        if kind == "tool":
            text, mime = content.value(inputs, self.content_limit)
            span.set_attributes(
                {sc.TOOL_CALL_ARGUMENTS: text, sc.INPUT_VALUE: text, sc.INPUT_MIME_TYPE: mime}
            )
        else:
            span.set_attributes(self._io(inputs, "input", "user"))

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
            return
        if self.capture_content:
            if kind == "tool":
                text, mime = content.value(run.output, self.content_limit)
                span.set_attributes(
                    {sc.TOOL_CALL_RESULT: text, sc.OUTPUT_VALUE: text, sc.OUTPUT_MIME_TYPE: mime}
                )
            else:
                span.set_attributes(self._io(run.output, "output", "assistant"))
        span.set_status(_OK)

    def escalation_event(self, span: SpanLike, trigger: str, from_tier: str, to_tier: str) -> None:
        """A climb: an event where it happened, and, on the node's span, attributes and a name
        that a viewer's tree and list show (``invoke_agent route (router) ⤴ sonnet``)."""
        span.add_event(
            sc.EVENT_ESCALATION,
            {sc.ESCALATION_TRIGGER: trigger, sc.TIER: from_tier, sc.ESCALATION_TO: to_tier},
        )
        span.set_attributes(
            {sc.ESCALATED: True, sc.ESCALATION_TRIGGER: trigger, sc.ESCALATION_TO: to_tier}
        )
        name = getattr(span, "name", None)  # the API's spans need not tell their name
        if isinstance(name, str):
            span.update_name(f"{name.split(ESCALATED_MARK, 1)[0]}{ESCALATED_MARK}{to_tier}")

    def fan_out_span(self, node_id: str, items: int) -> AbstractContextManager[SpanLike]:
        attributes = {sc.SPAN_KIND: sc.KIND_CHAIN, sc.NODE_ID: node_id, sc.FAN_OUT_ITEMS: items}
        return self._span(f"fan_out {node_id}", attributes)

    def finish_fan_out(self, span: SpanLike) -> None:
        span.set_status(_OK)

    # -- tool calls of an agent ----------------------------------------------------------------

    def tool_call_span(
        self, tool: str, call_id: str, arguments: Mapping[str, Any], *, server: str | None = None
    ) -> AbstractContextManager[SpanLike]:
        attributes: dict[str, Any] = {
            sc.OPERATION_NAME: sc.OP_TOOL,
            sc.SPAN_KIND: sc.KIND_TOOL,
            sc.TOOL_NAME: tool,
            sc.TOOL_CALL_ID: call_id,
            sc.TOOL_TYPE: "function",
        }
        if server is not None:  # an MCP tool: which server ran it
            attributes.update({sc.MCP_SERVER: server, sc.MCP_METHOD: "tools/call"})
        if self.capture_content:
            text, mime = content.value(arguments, self.content_limit)
            attributes[sc.TOOL_CALL_ARGUMENTS] = attributes[sc.INPUT_VALUE] = text
            attributes[sc.INPUT_MIME_TYPE] = mime
        return self._span(f"{sc.OP_TOOL} {tool}", attributes)

    def finish_tool_call(self, span: SpanLike, result: str, is_error: bool) -> None:
        if self.capture_content:
            text, mime = content.value(result, self.content_limit)
            span.set_attributes(
                {sc.TOOL_CALL_RESULT: text, sc.OUTPUT_VALUE: text, sc.OUTPUT_MIME_TYPE: mime}
            )
        if is_error:
            span.set_status(Status(StatusCode.ERROR, result[:500]))
            span.set_attribute(sc.ERROR_TYPE, "ToolError")
        else:
            span.set_status(_OK)

    # -- content -------------------------------------------------------------------------------

    def _io(self, data: Any, side: str, role: str) -> dict[str, Any]:
        """A hop's input or output: OpenInference's value and mime type, and the same text as
        the conventions' one message (``gen_ai.input.messages`` or ``.output.messages``)."""
        value_key, mime_key, messages_key = _IO_KEYS[side]
        limit = self.content_limit
        text, mime = content.value(data, limit)
        messages = content.text_messages(role, text, output=side == "output")
        return {
            value_key: text,
            mime_key: mime,
            messages_key: content.messages(messages, limit, role),
        }


MIN_CONTENT_LIMIT = 256
_IO_KEYS = {
    "input": (sc.INPUT_VALUE, sc.INPUT_MIME_TYPE, sc.INPUT_MESSAGES),
    "output": (sc.OUTPUT_VALUE, sc.OUTPUT_MIME_TYPE, sc.OUTPUT_MESSAGES),
}
ESCALATED_MARK = " ⤴ "
"""Between a node span's name and the tier its step climbed to."""


class TracedModel:
    """Wraps the model stack: one ``chat {model}`` span per call, child of the current hop.

    With the SDK's own spans turned on (`sdk_spans_enabled`), the call runs with its span as
    the OpenTelemetry current span, so that the SDK's span of the API call is its child.
    """

    def __init__(self, inner: Model, tracing: Tracing) -> None:
        self.inner = inner
        self.tracing = tracing
        self._names: dict[str, str] = {}
        self._nest_sdk_spans = sdk_spans_enabled() and tracing._sink is not None

    async def aclose(self) -> None:
        await aclose_inner(self.inner)

    def _span(self, request: ModelRequest) -> AbstractContextManager[SpanLike]:
        tracing = self.tracing
        attributes: dict[str, Any] = {
            sc.OPERATION_NAME: sc.OP_CHAT,
            sc.SPAN_KIND: sc.KIND_LLM,
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
            limit = tracing.content_limit
            if request.system:
                system = content.system_instructions(request.system)
                attributes[sc.SYSTEM_INSTRUCTIONS] = content.messages(system, limit, "system")
            messages = content.messages(content.input_messages(request.messages), limit)
            attributes[sc.INPUT_MESSAGES] = attributes[sc.INPUT_VALUE] = messages
            attributes[sc.INPUT_MIME_TYPE] = content.JSON_MIME
        name = self._names.get(request.model)
        if name is None:
            name = self._names[request.model] = f"{sc.OP_CHAT} {request.model}"
        return tracing._model_call_span(name, attributes)

    def _finish(self, span: SpanLike, response: ModelResponse) -> None:
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
        if response.replayed:
            finished[sc.REPLAYED] = True
        batch = response.batch
        if batch is not None:
            finished[sc.BATCH_ID] = batch.batch_id
            finished[sc.BATCH_CUSTOM_ID] = batch.custom_id
            finished[sc.BATCH_WAITED] = batch.waited
            if batch.standard_cost_usd is not None:
                finished[sc.COST_STANDARD_USD] = batch.standard_cost_usd
        for warning in response.warnings:
            span.add_event(sc.EVENT_MODEL_WARNING, {"message": warning})
        if response.rate_limit_wait:
            finished[sc.RATE_LIMIT_WAIT] = response.rate_limit_wait
            span.add_event(sc.EVENT_RATE_LIMIT_WAIT, {"seconds": response.rate_limit_wait})
        tracing = self.tracing
        if tracing.capture_content:
            answer = content.output_messages(response.content, response.stop_reason)
            messages = content.messages(answer, tracing.content_limit, "assistant")
            finished[sc.OUTPUT_MESSAGES] = finished[sc.OUTPUT_VALUE] = messages
            finished[sc.OUTPUT_MIME_TYPE] = content.JSON_MIME
        span.set_attributes(finished)
        span.set_status(_OK)

    @staticmethod
    def _failed(span: SpanLike, error: ModelError) -> None:
        span.set_status(Status(StatusCode.ERROR, str(error)))
        span.set_attribute(sc.ERROR_TYPE, type(error).__name__)
        span.add_event(
            "exception", {"exception.type": type(error).__name__, "exception.message": str(error)}
        )

    @staticmethod
    def _as_current(span: SpanLike) -> AbstractContextManager[Any]:
        # Our light call span is never made current (it has no child hops): only when the
        # SDK's own spans are on does the call need it as the OpenTelemetry current span.
        return trace.use_span(NonRecordingSpan(span.get_span_context()), end_on_exit=False)

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        """A streamed call in its ``chat {model}`` span, finished from the final response."""
        with self._span(request) as span:
            current = self._as_current(span) if self._nest_sdk_spans else nullcontext()
            try:
                with current:
                    async for event in stream_of(self.inner, request):
                        if isinstance(event, StreamEnd):
                            self._finish(span, event.response)
                        yield event
            except ModelError as error:
                self._failed(span, error)
                raise

    async def complete(self, request: ModelRequest) -> ModelResponse:
        with self._span(request) as span:
            try:
                if self._nest_sdk_spans:
                    with self._as_current(span):
                        response = await self.inner.complete(request)
                else:
                    response = await self.inner.complete(request)
            except ModelError as error:
                self._failed(span, error)
                raise
            self._finish(span, response)
            return response


def _node_head(node: CompiledNode) -> tuple[str, dict[str, Any]]:
    """A node span's name and the attributes that are the same on every visit.

    The name says which node (``invoke_agent extract_billing (extractor)``): a workflow may
    run one agent at several nodes, and a reader looks for the node.
    """
    kind, target = node.kind, node.target
    if kind == "human":  # ``ask_human review``: the node is all there is to name
        human = {sc.OPERATION_NAME: sc.OP_HUMAN, sc.SPAN_KIND: sc.KIND_CHAIN}
        human.update({sc.NODE_KIND: kind, sc.NODE_ID: node.id})
        return f"{sc.OP_HUMAN} {node.id}", human
    operation, name_key, span_kind = _NODE_KINDS.get(kind, _NODE_KINDS["workflow"])
    name = target.split("@", 1)[0]
    attributes: dict[str, Any] = {
        sc.OPERATION_NAME: operation,
        sc.SPAN_KIND: span_kind,
        name_key: name,
        sc.NODE_KIND: kind,
        sc.NODE_ID: node.id,
    }
    if kind == "agent":
        attributes[sc.AGENT_ID] = target
    elif kind == "tool":
        attributes[sc.TOOL_TYPE] = "function"
        if node.tool is not None and node.tool.server is not None:
            attributes.update({sc.MCP_SERVER: node.tool.server, sc.MCP_METHOD: "tools/call"})
    label = node.id if name == node.id else f"{node.id} ({name})"
    return f"{operation} {label}", attributes


_NODE_KINDS: dict[str, tuple[str, str, str]] = {
    "agent": (sc.OP_AGENT, sc.AGENT_NAME, sc.KIND_AGENT),
    "tool": (sc.OP_TOOL, sc.TOOL_NAME, sc.KIND_TOOL),
    "workflow": (sc.OP_WORKFLOW, sc.WORKFLOW_NAME, sc.KIND_CHAIN),
}


def _cost(response: ModelResponse) -> dict[str, Any]:
    if response.cost_usd is None:
        return {sc.COST_UNKNOWN: True}
    return {sc.COST_USD: response.cost_usd}
