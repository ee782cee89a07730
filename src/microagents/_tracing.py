"""Spans for every hop of a run, on the OpenTelemetry GenAI conventions.

`Tracing` is what the runtime calls when tracing is on; when it is off the runtime never calls
anything here. One span per hop, attributes set in one call when the hop ends, no span for
what did not happen. Model-call spans come from `TracedModel`, a wrapper around the model
stack, so that the scheduler does not know about model calls at all.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from . import _semconv as sc
from ._errors import ModelError
from ._model import Model, ModelRequest, ModelResponse, aclose_inner
from ._results import NodeRun, RunResult, jsonable


class Tracing:
    """Creates the spans of runs with one OpenTelemetry `Tracer`.

    ```python
    tracing = Tracing(my_provider.get_tracer("microagents"), capture_content=True)
    engine = Engine(model, tracing=tracing)
    ```
    """

    def __init__(self, tracer: Tracer, *, capture_content: bool = False) -> None:
        self.tracer = tracer
        self.capture_content = capture_content

    @contextmanager
    def run_span(
        self,
        workflow: str,
        version: str,
        run_id: str,
        *,
        nested: bool,
        batch_index: int | None,
    ) -> Iterator[Span]:
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
        with self.tracer.start_as_current_span(
            f"{sc.OP_WORKFLOW} {workflow}",
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            yield span

    def finish_run(self, span: Span, result: RunResult) -> None:
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

    @contextmanager
    def node_span(
        self, kind: str, target: str, node_id: str, visit: int, item_index: int | None = None
    ) -> Iterator[Span]:
        operation = {"agent": sc.OP_AGENT, "tool": sc.OP_TOOL}.get(kind, sc.OP_WORKFLOW)
        name_key = sc.AGENT_NAME if kind == "agent" else sc.TOOL_NAME
        attributes: dict[str, Any] = {
            sc.OPERATION_NAME: operation,
            name_key: target.split("@", 1)[0],
            sc.NODE_ID: node_id,
            sc.NODE_KIND: kind,
            sc.NODE_VISIT: visit,
        }
        if kind == "agent":
            attributes[sc.AGENT_ID] = target
        elif kind == "tool":
            attributes[sc.TOOL_TYPE] = "function"
        if item_index is not None:
            attributes[sc.ITEM_INDEX] = item_index
        with self.tracer.start_as_current_span(
            f"{operation} {target.split('@', 1)[0]}",
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            yield span

    def finish_node(self, span: Span, run: NodeRun) -> None:
        attempts = run.attempts
        if attempts:
            usage = run.usage
            span.set_attributes(
                {
                    sc.TIER: attempts[-1].tier,
                    sc.COST_USD: run.cost_usd,
                    sc.USAGE_INPUT_TOKENS: usage.total_input_tokens,
                    sc.USAGE_OUTPUT_TOKENS: usage.output_tokens,
                }
            )
            for attempt, following in itertools.pairwise(attempts):
                if attempt.trigger is not None:
                    span.add_event(
                        sc.EVENT_ESCALATION,
                        {
                            sc.ESCALATION_TRIGGER: attempt.trigger,
                            sc.TIER: attempt.tier,
                            sc.ESCALATION_TO: following.tier,
                        },
                    )
        if run.status == "failed":
            span.set_status(Status(StatusCode.ERROR, run.error or "failed"))
            span.set_attribute(sc.ERROR_TYPE, "NodeError")

    def escalation_event(self, span: Span, trigger: str, from_tier: str, to_tier: str) -> None:
        span.add_event(
            sc.EVENT_ESCALATION,
            {sc.ESCALATION_TRIGGER: trigger, sc.TIER: from_tier, sc.ESCALATION_TO: to_tier},
        )

    @contextmanager
    def fan_out_span(self, node_id: str, items: int) -> Iterator[Span]:
        with self.tracer.start_as_current_span(
            f"fan_out {node_id}",
            attributes={sc.NODE_ID: node_id, sc.FAN_OUT_ITEMS: items},
        ) as span:
            yield span

    @contextmanager
    def tool_call_span(
        self, tool: str, call_id: str, arguments: Mapping[str, Any]
    ) -> Iterator[Span]:
        attributes: dict[str, Any] = {
            sc.OPERATION_NAME: sc.OP_TOOL,
            sc.TOOL_NAME: tool,
            sc.TOOL_CALL_ID: call_id,
            sc.TOOL_TYPE: "function",
        }
        if self.capture_content:
            attributes[sc.TOOL_CALL_ARGUMENTS] = _json(arguments)
        with self.tracer.start_as_current_span(
            f"{sc.OP_TOOL} {tool}", attributes=attributes, record_exception=False
        ) as span:
            yield span

    def finish_tool_call(self, span: Span, content: str, is_error: bool) -> None:
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

    async def aclose(self) -> None:
        await aclose_inner(self.inner)

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
        if tracing.capture_content:
            if request.system:
                attributes[sc.SYSTEM_INSTRUCTIONS] = request.system
            attributes[sc.INPUT_MESSAGES] = _json(
                [
                    {"role": m.role, "parts": [asdict(b) for b in m.content]}
                    for m in request.messages
                ]
            )
        with tracing.tracer.start_as_current_span(
            f"{sc.OP_CHAT} {request.model}",
            kind=SpanKind.CLIENT,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                response = await self.inner.complete(request)
            except ModelError as error:
                span.set_status(Status(StatusCode.ERROR, str(error)))
                span.set_attribute(sc.ERROR_TYPE, type(error).__name__)
                raise
            usage = response.usage
            finished: dict[str, Any] = {
                sc.RESPONSE_MODEL: response.model,
                sc.RESPONSE_FINISH_REASONS: (response.stop_reason,),
                sc.USAGE_INPUT_TOKENS: usage.total_input_tokens,
                sc.USAGE_OUTPUT_TOKENS: usage.output_tokens,
                sc.USAGE_CACHE_READ: usage.cache_read_input_tokens,
                sc.USAGE_CACHE_CREATION: usage.cache_creation_input_tokens,
                sc.COST_USD: response.cost_usd or 0.0,
                sc.CACHE_HIT: response.cached,
                sc.SIMULATED: response.simulated,
                sc.ATTEMPTS: response.attempts,
            }
            if response.request_id:
                finished[sc.RESPONSE_ID] = response.request_id
            if response.rate_limit_wait:
                finished[sc.RATE_LIMIT_WAIT] = response.rate_limit_wait
                span.add_event(sc.EVENT_RATE_LIMIT_WAIT, {"seconds": response.rate_limit_wait})
            if tracing.capture_content:
                finished[sc.OUTPUT_MESSAGES] = _json(
                    [{"role": "assistant", "parts": [asdict(b) for b in response.content]}]
                )
            span.set_attributes(finished)
            return response


def _json(value: Any) -> str:
    return json.dumps(jsonable(value), ensure_ascii=False, default=str)


def current_span() -> Span:
    """The span of the hop running now (tools can read it to continue the trace)."""
    return trace.get_current_span()
