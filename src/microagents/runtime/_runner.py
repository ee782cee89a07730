"""One agent invocation: render, call, run the tool loop, validate, repair once, escalate.

The agent starts on the first rung of its ladder (or a later one, when a validator sent the work
back) and climbs one rung whenever a trigger in its `escalation.on` fires. Every rung tried is
an `Attempt` in the result, with the trigger that ended it.

Everything that does not depend on the input — tool definitions, the answer tool, tool choices,
a system prompt without variables, the prompt's static opening — is prepared once per agent and
shared by every call, so that requests reuse immutable parts (and the back-end's prompt-cache
prefix work). The part of the prompt that repeats ends with the prompt's static opening when
there is one (the cache mark goes there), else with the system prompt or the tools.

Structured output takes one of two forms, chosen per model from the tier table's capabilities:
the API's native structured outputs (`output_format`: the answer is JSON text valid by
construction, tools stay optional), or — for models without them — a forced `final_answer`
tool with one repair turn.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import anyio
from pydantic import BaseModel, ValidationError

from ..errors import AgentFailed, ModelError
from ..graph._agent import CompiledAgent
from ..graph._tools import Tool, Tools
from ..models._protocol import (
    CachePoint,
    ContentBlock,
    Message,
    Model,
    ModelRequest,
    ModelResponse,
    TextBlock,
    TextDelta,
    ToolChoice,
    ToolDefinition,
    ToolResultBlock,
    ToolUseBlock,
    Usage,
    can_stream,
    stream_of,
)
from ..models._tiers import Tier, TierTable
from ..results._results import Attempt, Escalated, Escalation, EventSink, OutputDelta, ToolCalled
from ..spec._agent_spec import EscalationSpec
from ..spec._schema import open_object, validation_problems
from ..tracing._tracing import Tracing
from ._tool_calls import call_tool

ANSWER_TOOL = "final_answer"
ESCALATE_TOOL = "escalate"
ESCALATE_DEFINITION = ToolDefinition(
    ESCALATE_TOOL,
    "Call this instead of answering when the task is beyond what you can do reliably; "
    "a stronger model will take over. Say why in `reason`.",
    {"type": "object", "properties": {"reason": {"type": "string"}}, "required": ["reason"]},
)
FORCE_ANY = ToolChoice("any")
AUTO = ToolChoice("auto")


@dataclass(frozen=True, slots=True)
class AgentOutcome:
    """A valid output and every attempt that led to it."""

    output: BaseModel
    attempts: tuple[Attempt, ...]
    rung: int
    """The ladder rung that gave the answer (a rejected revisit starts above it)."""


@dataclass(frozen=True, slots=True)
class PreparedAgent:
    """The per-agent parts of every request, built once."""

    agent: CompiledAgent
    answer_tool: ToolDefinition
    answer_choice: ToolChoice
    tools: tuple[ToolDefinition, ...]
    """The agent's allowed tools plus the answer tool."""
    tools_with_escalate: tuple[ToolDefinition, ...]
    allowed: tuple[ToolDefinition, ...]
    """The agent's allowed tools alone (native structured output needs no answer tool)."""
    allowed_with_escalate: tuple[ToolDefinition, ...]
    static_system: str | None
    static_block: TextBlock | None
    """The prompt's static opening, as the first block of every first message."""
    output_format: Mapping[str, Any] | None
    """The output schema for native structured output; None when it has a free-form object
    that structured outputs would close (the answer tool keeps every key)."""
    last_system: _LastText
    """The system prompt last rendered from a template: one that renders the same text input
    after input (a database schema, say) repeats, and can end the cached prefix."""


class _LastText:
    __slots__ = ("text",)

    def __init__(self) -> None:
        self.text: str | None = None

    def repeats(self, text: str) -> bool:
        same = text == self.text
        self.text = text
        return same


def prepare(agent: CompiledAgent, tools: Tools) -> PreparedAgent:
    """Build the shared request parts for `agent` with the project's `tools`."""
    answer = ToolDefinition(
        ANSWER_TOOL,
        f"Give your final answer for this task ({agent.spec.description}). "
        "Call it exactly once, with the complete answer as its input.",
        agent.output_schema,
    )
    allowed = tuple(
        ToolDefinition(t.name, t.description, t.input_schema)
        for name in agent.spec.tools
        if (t := tools.get(name)) is not None
    )
    return PreparedAgent(
        agent=agent,
        answer_tool=answer,
        answer_choice=ToolChoice("tool", ANSWER_TOOL, disable_parallel_tool_use=True),
        tools=(*allowed, answer),
        tools_with_escalate=(*allowed, answer, ESCALATE_DEFINITION),
        allowed=allowed,
        allowed_with_escalate=(*allowed, ESCALATE_DEFINITION),
        static_system=agent.static_system,
        static_block=TextBlock(agent.static_prompt) if agent.static_prompt else None,
        output_format=agent.output_schema if open_object(agent.output_schema) is None else None,
        last_system=_LastText(),
    )


@dataclass(frozen=True, slots=True)
class _Prompt:
    """One input's prompt: the system prompt, the first user message, and where the part that
    repeats from input to input ends."""

    system: str | None
    first: Message
    cache_point: CachePoint


def _prompt(prepared: PreparedAgent, values: dict[str, Any]) -> _Prompt:
    agent = prepared.agent
    text = agent.render_prompt(values)
    system = prepared.static_system
    if system is None and agent.system_template is not None:
        system = agent.system_template.render(values)
        if not prepared.last_system.repeats(system):
            # A system prompt that changed since the last input: only the tools repeat.
            return _Prompt(system, Message.user(text), "tools")
    static = prepared.static_block
    if static is not None and text.startswith(static.text) and len(text) > len(static.text):
        first = Message("user", (static, TextBlock(text[len(static.text) :])))
        return _Prompt(system, first, "message")
    return _Prompt(system, Message.user(text), "system")


class _Trigger(Exception):
    """Internal: a trigger fired during an attempt (with the output, when it had one)."""

    def __init__(self, trigger: str, detail: str, output: BaseModel | None = None) -> None:
        super().__init__(detail)
        self.trigger = trigger
        self.detail = detail
        self.output = output


@dataclass
class _Tally:
    usage: Usage
    cost: float
    calls: int
    cached: bool
    simulated: bool
    unpriced: int = 0

    def add(self, response: ModelResponse) -> None:
        self.usage = self.usage + response.usage
        if response.cost_usd is None:
            self.unpriced += 1  # unknown, not free: counted apart so no total hides it
        else:
            self.cost += response.cost_usd
        self.calls += 1
        self.cached = self.cached or response.cached
        self.simulated = self.simulated or response.simulated


async def run_agent(
    prepared: PreparedAgent,
    inputs: Mapping[str, Any],
    *,
    model: Model,
    tiers: TierTable,
    tools: Tools,
    escalation: EscalationSpec,
    start_rung: int = 0,
    labels: Mapping[str, str],
    node: str = "",
    visit: int = 1,
    on_event: EventSink | None = None,
    tracing: Tracing | None = None,
    stream: bool = False,
) -> AgentOutcome:
    """Run one agent on `inputs`; raise `AgentFailed` when no allowed rung gives an answer."""
    agent = prepared.agent
    prompt = _prompt(prepared, dict(inputs))
    ladder = escalation.ladder
    rung = min(start_rung, len(ladder) - 1)
    attempts: list[Attempt] = []
    while True:
        tier = ladder[rung]
        resolved = tiers.resolve(tier)
        model_id = resolved.model
        can_climb = rung + 1 < len(ladder)
        started = time.perf_counter()
        tally = _Tally(Usage(), 0.0, 0, False, False)
        try:
            output = await _attempt(
                prepared,
                prompt,
                _Shape.of(prepared, resolved, tiers),
                model,
                tools,
                allow_escalate=can_climb and "self" in escalation.on,
                labels={**labels, "tier": tier},
                tally=tally,
                node=node,
                on_event=on_event,
                tracing=tracing,
                stream=stream and on_event is not None and can_stream(model),
            )
            _check_confidence(output, escalation)
        except _Trigger as fired:
            climbs = can_climb and fired.trigger in escalation.on
            if not climbs and fired.output is not None:
                # Low confidence on the last rung: the answer stands, as the best there is.
                attempts.append(_attempt_record(tier, model_id, tally, started, None))
                return AgentOutcome(fired.output, tuple(attempts), rung)
            attempts.append(_attempt_record(tier, model_id, tally, started, fired.trigger))
            if not climbs:
                raise AgentFailed(
                    f"agent '{agent.spec.name}' failed on {tier} ({fired.trigger}): {fired.detail}",
                    tuple(attempts),
                ) from None
            escalated = Escalation(node, visit, fired.trigger, tier, ladder[rung + 1])
            if tracing is not None:
                # Now, between the two calls, so that a trace shows it where it happened.
                tracing.escalation_event(tracing.current(), fired.trigger, tier, ladder[rung + 1])
            if on_event is not None:
                on_event(Escalated(escalated))
            rung += 1
            continue
        attempts.append(_attempt_record(tier, model_id, tally, started, None))
        return AgentOutcome(output, tuple(attempts), rung)


def _attempt_record(
    tier: str, model_id: str, tally: _Tally, started: float, trigger: str | None
) -> Attempt:
    return Attempt(
        tier=tier,
        model=model_id,
        usage=tally.usage,
        cost_usd=tally.cost,
        latency=time.perf_counter() - started,
        calls=tally.calls,
        trigger=trigger,
        cached=tally.cached,
        simulated=tally.simulated,
        unpriced_calls=tally.unpriced,
    )


def _check_confidence(output: BaseModel, escalation: EscalationSpec) -> None:
    threshold = escalation.confidence_below
    if threshold is None or "low_confidence" not in escalation.on:
        return
    confidence = getattr(output, escalation.confidence_field, None)
    if isinstance(confidence, int | float) and confidence < threshold:
        raise _Trigger(
            "low_confidence", f"confidence {confidence:.2f} is below {threshold:.2f}", output
        )


@dataclass(frozen=True, slots=True)
class _Shape:
    """How requests of one attempt look on its model: native structured output or the
    answer tool, and the effort level if the model takes one."""

    model: str
    native: bool
    can_force: bool
    effort: str | None

    @classmethod
    def of(cls, prepared: PreparedAgent, tier: Tier, tiers: TierTable) -> _Shape:
        capabilities = tiers.capabilities_of(tier.model)
        wanted = prepared.agent.spec.effort or tier.effort
        return cls(
            tier.model,
            native=capabilities.structured_outputs and prepared.output_format is not None,
            can_force=capabilities.forced_tool_choice,
            effort=wanted if capabilities.effort else None,
        )


async def _attempt(
    prepared: PreparedAgent,
    prompt: _Prompt,
    shape: _Shape,
    model: Model,
    tools: Tools,
    *,
    allow_escalate: bool,
    labels: Mapping[str, str],
    tally: _Tally,
    node: str,
    on_event: EventSink | None,
    tracing: Tracing | None,
    stream: bool,
) -> BaseModel:
    agent = prepared.agent
    spec = agent.spec
    output_format: Mapping[str, Any] | None = None
    if shape.native:
        # The answer is the final text, JSON valid by construction; tools stay optional.
        output_format = prepared.output_format
        definitions = prepared.allowed_with_escalate if allow_escalate else prepared.allowed
        choice: ToolChoice | None = AUTO if definitions else None
    else:
        uses_tools = bool(spec.tools) or allow_escalate
        definitions = prepared.tools_with_escalate if allow_escalate else prepared.tools
        choice = FORCE_ANY if uses_tools else prepared.answer_choice
        if not uses_tools:
            definitions = (prepared.answer_tool,)
        if not shape.can_force:
            choice = AUTO
    messages: list[Message] = [prompt.first]
    rounds = 0
    repaired = False
    while True:
        request = ModelRequest(
            model=shape.model,
            messages=tuple(messages),
            system=prompt.system,
            tools=definitions,
            tool_choice=choice,
            max_tokens=spec.max_tokens,
            temperature=spec.temperature,
            metadata=labels,
            output_format=output_format,
            effort=shape.effort,
            cache_point=prompt.cache_point,
        )
        try:
            response = (
                await _streamed(model, request, node, on_event)
                if stream and on_event is not None
                else await model.complete(request)
            )
        except ModelError as error:
            raise _Trigger("error", str(error)) from None
        tally.add(response)
        if response.stop_reason == "refusal":
            raise _Trigger("refusal", "the model refused to answer")
        if response.stop_reason == "max_tokens":
            raise _Trigger("max_tokens", f"the answer was cut off at max_tokens={spec.max_tokens}")
        calls = response.tool_uses
        if any(c.name == ESCALATE_TOOL for c in calls) and allow_escalate:
            reason = next(c for c in calls if c.name == ESCALATE_TOOL).input.get("reason", "")
            raise _Trigger("self", f"the agent asked to escalate: {reason}")
        answer = next((c for c in calls if c.name == ANSWER_TOOL), None)
        if not calls or answer is not None:
            try:
                return agent.output_model.model_validate(_answer_of(response, answer, shape))
            except (ValidationError, ValueError) as exc:
                if repaired:
                    raise _Trigger("invalid_output", _describe(exc)) from None
                repaired = True
                messages.extend(_repair_turn(response.content, answer, exc, shape.native))
                if not shape.native:
                    # The repair call is forced onto the answer tool.
                    definitions = (prepared.answer_tool,)
                    choice = prepared.answer_choice if shape.can_force else AUTO
                continue
        rounds += 1
        if rounds > spec.max_tool_rounds:
            raise _Trigger(
                "tool_budget", f"still calling tools after {spec.max_tool_rounds} rounds"
            )
        step = f"{labels.get('step', node)}/{labels.get('tier', '')}"
        results = await _run_tool_calls(calls, tools, spec.tools, node, step, on_event, tracing)
        messages.append(Message("assistant", response.content))
        messages.append(Message("user", results))


def _answer_of(response: ModelResponse, answer: ToolUseBlock | None, shape: _Shape) -> Any:
    """The answer's JSON value: the answer tool's input, or (native) the answer's text."""
    if answer is not None:
        return dict(answer.input)
    if not shape.native:
        raise ValueError(f"it answered in text instead of calling {ANSWER_TOOL}")
    text = response.text.strip()
    if not text:
        raise ValueError("the answer is empty")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"the answer is not JSON ({exc.msg} at column {exc.colno})") from None


async def _streamed(
    model: Model, request: ModelRequest, node: str, on_event: EventSink
) -> ModelResponse:
    """A model call streamed: each delta goes to the listener, the response comes back."""
    response: ModelResponse | None = None
    async for event in stream_of(model, request):
        if isinstance(event, TextDelta):
            on_event(OutputDelta(node, event.text))
        else:
            response = event.response
    if response is None:
        raise ModelError("the stream ended without a final response")
    return response


def _describe(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return validation_problems(exc, "answer")
    return str(exc)


def _repair_turn(
    content: tuple[ContentBlock, ...], answer: ToolUseBlock | None, exc: Exception, native: bool
) -> list[Message]:
    """Tell the model what was wrong with its answer and ask for a corrected one."""
    again = (
        "Answer again with the corrected, complete JSON object."
        if native
        else f"Call {ANSWER_TOOL} again with a corrected, complete answer."
    )
    problem = f"Your answer does not match the required schema: {_describe(exc)}. {again}"
    if answer is None:
        return [Message("assistant", content or (TextBlock("(no answer)"),)), Message.user(problem)]
    return [
        Message("assistant", content),
        Message("user", (ToolResultBlock(answer.id, problem, is_error=True),)),
    ]


async def _run_tool_calls(
    calls: tuple[ToolUseBlock, ...],
    tools: Tools,
    allowed: list[str],
    node: str,
    step: str,
    on_event: EventSink | None,
    tracing: Tracing | None,
) -> tuple[ContentBlock, ...]:
    """Run the requested tools — concurrently when there are several — in request order."""
    results: list[ContentBlock | None] = [None] * len(calls)

    async def traced(tool: Tool, call: ToolUseBlock) -> tuple[str, bool]:
        if tracing is None:
            outcome = await call_tool(tool, call.input, step=f"{step}/{call.id}", node=node)
            return outcome.content, outcome.error is not None
        span_of = tracing.tool_call_span(tool.name, call.id, call.input, server=tool.server)
        with span_of as span, tracing.tool_context():
            outcome = await call_tool(tool, call.input, step=f"{step}/{call.id}", node=node)
            tracing.finish_tool_call(span, outcome.content, outcome.error is not None)
        return outcome.content, outcome.error is not None

    async def one(index: int, call: ToolUseBlock) -> None:
        tool = tools.get(call.name)
        if tool is None or call.name not in allowed:
            text, is_error = f"unknown tool '{call.name}'; allowed: {', '.join(allowed)}", True
        else:
            text, is_error = await traced(tool, call)
        if on_event is not None:
            on_event(ToolCalled(node, call.name, is_error))
        results[index] = ToolResultBlock(call.id, text, is_error)

    if len(calls) == 1:
        await one(0, calls[0])
    else:
        async with anyio.create_task_group() as group:
            for index, call in enumerate(calls):
                group.start_soon(one, index, call)
    return tuple(r for r in results if r is not None)
