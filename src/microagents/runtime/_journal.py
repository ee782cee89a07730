"""Durable runs: every paid step journaled, and resume by replay.

A journaled run has a `RunJournal` (its id, the steps recorded for it, and a counter per step
prefix) in a context variable, so that the parts that make paid steps find it without the
scheduler passing it around — cross-cutting, it wraps rather than branches:

- `JournaledModel`, a layer of the model stack (under the tracing layer, so that a replayed
  call still has its span, marked replayed), records every response and answers a recorded
  step from the journal without a call;
- `journaled_tool_call` does the same for tool calls (agents' and tool nodes');
- `human_answer` returns a human node's recorded answer, or suspends the run.

A step key is deterministic given the run's input and recorded results: the scheduler puts the
node, its visit and map item in the request's ``step`` label (``triage#1``, ``label#1[3]``,
``sub#1/extract#1`` in a sub-workflow), the model layer adds the tier and a call counter
(``triage#1/haiku/1``). With each result goes the request's signature: a short hash of each
part (the model and its settings, the system prompt, the messages, the tools and output
schema), so that a changed request stops the resume naming the node and the part.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Callable, Mapping
from contextvars import ContextVar
from dataclasses import fields
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from ..errors import ReplayMismatch, RunSuspended, ToolDecisionNeeded
from ..models._protocol import (
    BatchedCall,
    ContentBlock,
    Message,
    Model,
    ModelRequest,
    ModelResponse,
    StreamEnd,
    StreamEvent,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
    Usage,
    aclose_inner,
    stream_of,
)
from ..results._results import WaitingFor, jsonable
from ._journal_store import JournalStore, StepRecord

if TYPE_CHECKING:
    from ..graph._compiled import CompiledWorkflow
    from ..graph._tools import Tool
    from ._tool_calls import ToolOutcome


class RunJournal:
    """One run's journal while it runs: what was recorded for it, and the step counters."""

    __slots__ = (
        "_counters",
        "attempt",
        "diverged",
        "recorded",
        "replayed",
        "rerun_changed",
        "rerun_tools",
        "run_id",
        "store",
    )

    def __init__(
        self,
        store: JournalStore,
        run_id: str,
        recorded: Mapping[str, StepRecord] | None = None,
        *,
        rerun_changed: bool = False,
        rerun_tools: bool = False,
        attempt: int = 1,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.attempt = attempt
        """Which start of the run this is (1, then one more per resume), recorded per step."""
        self.recorded = recorded or {}
        self.replayed = 0
        self.rerun_changed = rerun_changed
        self.rerun_tools = rerun_tools
        self.diverged = False
        """Set once a changed step ran again: every later record is stale, none replays."""
        self._counters: dict[str, int] = {}

    def next_key(self, prefix: str) -> str:
        count = self._counters.get(prefix, 0) + 1
        self._counters[prefix] = count
        return f"{prefix}/{count}"

    def lookup(self, key: str, node: str, signature: str) -> StepRecord | None:
        """The recorded step to replay, if any; raise `ReplayMismatch` if its request changed
        (or, with `rerun_changed`, run it and everything after it live)."""
        if not self.recorded or self.diverged:
            return None
        found = self.recorded.get(key)
        if found is None:
            return None
        if found.request != signature:
            if not self.rerun_changed:
                raise ReplayMismatch(node, key, _what_changed(found.request, signature))
            self.diverged = True
            return None
        self.replayed += 1
        return found

    def record(
        self,
        key: str,
        kind: str,
        signature: str | Callable[[], str],
        result: str | Callable[[], str] | None,
    ) -> None:
        self.store.record_step(self.run_id, key, kind, signature, result, self.attempt)


CURRENT_RUN: ContextVar[RunJournal | None] = ContextVar("microagents_run_journal", default=None)
"""The journal of the run this task belongs to (None: not journaled). Task groups copy it."""

CURRENT_STEP: ContextVar[tuple[str, str | Callable[[], str]] | None] = ContextVar(
    "microagents_step", default=None
)
"""The step a model call below the journal is for: its key and request signature (a callable
on a first run, so that the writer thread, not the event loop, computes it)."""
"""The step key and request signature of the model call being made live, for the layers
under `JournaledModel` (a Message Batches back-end names its requests after them)."""


# -- model calls -------------------------------------------------------------------------------


class JournaledModel:
    """Records every response of a journaled run, and replays recorded ones without a call.

    A layer like the others (`inner` is the next one); outside a journaled run it passes the
    request straight through."""

    def __init__(self, inner: Model) -> None:
        self.inner = inner

    async def aclose(self) -> None:
        await aclose_inner(self.inner)

    async def complete(self, request: ModelRequest) -> ModelResponse:
        run = CURRENT_RUN.get()
        if run is None:
            return await self.inner.complete(request)
        key, signature, replayed = self._replay(run, request)
        if replayed is not None:
            return replayed
        step = CURRENT_STEP.set((key, signature))
        try:
            response = await self.inner.complete(request)
        finally:
            CURRENT_STEP.reset(step)
        run.record(key, "model", signature, partial(encode_response, response))
        return response

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        run = CURRENT_RUN.get()
        if run is None:
            async for event in stream_of(self.inner, request):
                yield event
            return
        key, signature, replayed = self._replay(run, request)
        if replayed is not None:
            yield StreamEnd(replayed)
            return
        async for event in stream_of(self.inner, request):
            if isinstance(event, StreamEnd):
                run.record(key, "model", signature, partial(encode_response, event.response))
            yield event

    @staticmethod
    def _replay(
        run: RunJournal, request: ModelRequest
    ) -> tuple[str, str | Callable[[], str], ModelResponse | None]:
        labels = request.metadata
        key = run.next_key(f"{labels.get('step', '')}/{labels.get('tier', request.model)}")
        if not run.recorded or run.diverged:
            # Nothing to compare with (a first run): the writer thread hashes the request.
            return key, partial(request_signature, request), None
        signature = request_signature(request)
        found = run.lookup(key, labels.get("node", ""), signature)
        if found is None or found.result is None:
            return key, signature, None
        return key, signature, decode_response(found.result)


# -- tool calls --------------------------------------------------------------------------------


async def journaled_tool_call(
    run: RunJournal,
    step: str,
    node: str,
    tool: Tool,
    arguments: Mapping[str, Any],
    call: Callable[[], Any],
) -> ToolOutcome:
    """`call()` (the tool call), recorded under `step`; a recorded result replays. A tool that
    is not idempotent is recorded as started — durably — before it runs, so that a crash in
    it is known on resume and never silently repeated."""
    from ._tool_calls import ToolOutcome

    key = run.next_key(step)
    signature = _digest(json.dumps(jsonable(arguments), sort_keys=True, default=str))
    found = run.lookup(key, node, f"{tool.name}:{signature}")
    if found is not None:
        if found.result is not None:
            data = json.loads(found.result)
            return ToolOutcome(data["value"], data["error"])
        if not (tool.idempotent or run.rerun_tools):
            raise ToolDecisionNeeded(node, tool.name, key)
    if not tool.idempotent:
        run.record(key, "tool", f"{tool.name}:{signature}", None)
        await run.store.durable()
    outcome: ToolOutcome = await call()
    result = json.dumps(
        {"value": jsonable(outcome.value), "error": outcome.error}, ensure_ascii=False, default=str
    )
    run.record(key, "tool", f"{tool.name}:{signature}", result)
    return outcome


# -- human answers -----------------------------------------------------------------------------


def human_answer(
    step: str, node: str, question: Callable[[], str], schema: Mapping[str, Any]
) -> Any:
    """The answer recorded for the human node at `step`; without one, suspend the run."""
    run = CURRENT_RUN.get()
    if run is None:
        from ..errors import NodeError

        raise NodeError(
            f"human node '{node}' needs a journal to wait in: run it on an engine with a "
            "journal (Engine.for_backend has one by default; Engine(model, journal=...))"
        )
    key = run.next_key(f"{step}/human")
    found = run.recorded.get(key)
    if found is not None and found.result is not None:
        run.replayed += 1
        return json.loads(found.result)
    raise RunSuspended(WaitingFor(node, question(), schema, key))


# -- encoding ----------------------------------------------------------------------------------


def request_signature(request: ModelRequest) -> str:
    """A short hash of each part of `request` that shapes the answer (not its labels)."""
    options = (
        f"{request.model}|{request.max_tokens}|{request.temperature}|{request.effort}|"
        f"{request.stop_sequences}|{request.tool_choice}"
    )
    return (
        f"o:{_digest(options)} s:{_digest(request.system or '')} "
        f"m:{_digest(_messages_repr(request.messages))} "
        f"t:{_shared_digest(request.tools)}{_shared_digest(request.output_format)}"
    )


def _messages_repr(messages: tuple[Message, ...]) -> str:
    """`repr(messages)`, exactly (recorded signatures hash it), without the dataclass repr's
    per-object machinery: a text block, the usual content, is written directly."""
    written = []
    for message in messages:
        blocks = [
            f"TextBlock(text={b.text!r}, type={b.type!r})" if type(b) is TextBlock else repr(b)
            for b in message.content
        ]
        content = f"({', '.join(blocks)}{',' if len(blocks) == 1 else ''})"
        written.append(f"Message(role={message.role!r}, content={content})")
    return f"({', '.join(written)}{',' if len(written) == 1 else ''})"


_PARTS = {"o": "the model or its settings", "s": "the system prompt", "m": "the prompt"}
_PARTS["t"] = "the tool definitions or the output schema"


def _what_changed(recorded: str, now: str) -> str:
    before = dict(part.split(":", 1) for part in recorded.split(" ") if ":" in part)
    after = dict(part.split(":", 1) for part in now.split(" ") if ":" in part)
    changed = [_PARTS.get(k, k) for k in after if before.get(k) != after[k]]
    return " and ".join(changed) if changed else "the request"


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=6).hexdigest()


_SHARED: dict[int, tuple[object, str]] = {}


def _shared_digest(part: object) -> str:
    """The digest of a request part that requests share (tool definitions, the output schema
    of an agent): computed once per object, not per call."""
    if part is None or part == ():
        return "-"
    cached = _SHARED.get(id(part))
    if cached is not None and cached[0] is part:
        return cached[1]
    digest = _digest(json.dumps(part, sort_keys=True, default=_plain))
    if len(_SHARED) > 4096:  # workflows compiled again and again
        _SHARED.clear()
    _SHARED[id(part)] = (part, digest)
    return digest


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    return {f: getattr(value, f) for f in getattr(value, "__slots__", ())} or repr(value)


def encode_response(response: ModelResponse) -> str:
    """A response as JSON: what a replay needs to give the run the same answer and cost."""
    usage = response.usage
    return orjson.dumps(
        {
            # Shallow: `asdict` deep-copies every block, and this runs once per paid step.
            "content": [_block(block) for block in response.content],
            "stop_reason": response.stop_reason,
            "usage": {
                "input_tokens": usage.input_tokens,
                "output_tokens": usage.output_tokens,
                "cache_creation_input_tokens": usage.cache_creation_input_tokens,
                "cache_read_input_tokens": usage.cache_read_input_tokens,
                "cache_creation_1h_input_tokens": usage.cache_creation_1h_input_tokens,
            },
            "model": response.model,
            "request_id": response.request_id,
            "cost_usd": response.cost_usd,
            "cached": response.cached,
            "simulated": response.simulated,
            **({"batch": _batched(response.batch)} if response.batch is not None else {}),
        },
        default=_plain,
    ).decode()


def _block(block: ContentBlock) -> dict[str, Any]:
    return {name: getattr(block, name) for name in _FIELDS[type(block)]}


_FIELDS = {
    kind: tuple(f.name for f in fields(kind)) for kind in (TextBlock, ToolUseBlock, ToolResultBlock)
}


_BLOCKS: dict[str, Callable[..., ContentBlock]] = {
    "text": TextBlock,
    "tool_use": ToolUseBlock,
    "tool_result": ToolResultBlock,
}


def decode_response(text: str) -> ModelResponse:
    """A recorded response, marked `replayed`."""
    data = orjson.loads(text)
    content = []
    for block in data["content"]:
        kind = block.pop("type")
        content.append(_BLOCKS[kind](**block))
    return ModelResponse(
        content=tuple(content),
        stop_reason=data["stop_reason"],
        usage=Usage(**data["usage"]),
        model=data["model"],
        request_id=data["request_id"],
        cost_usd=data["cost_usd"],
        cached=data["cached"],
        simulated=data["simulated"],
        replayed=True,
        batch=BatchedCall(**data["batch"]) if "batch" in data else None,
    )


def _batched(batch: BatchedCall) -> dict[str, Any]:
    return {
        "batch_id": batch.batch_id,
        "custom_id": batch.custom_id,
        "waited": batch.waited,
        "standard_cost_usd": batch.standard_cost_usd,
    }


def item_run_id(batch: str, key: str) -> str:
    """The run id of a batch item: the same on every run of the batch, so that a resumed
    batch finds the steps its items in flight had recorded."""
    return f"{batch[:12]}-{hashlib.blake2b(key.encode(), digest_size=5).hexdigest()}"


def batch_key(workflow: CompiledWorkflow, input_path: Path | str) -> str:
    """The checkpoint key of running `workflow` over `input_path`: a change to the workflow,
    to a sub-workflow or to an agent (prompt included) starts a new batch, so that a resume
    never mixes results of different specs."""
    content = {"workflow": _fingerprint(workflow), "input": str(Path(input_path).resolve())}
    text = json.dumps(content, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _fingerprint(workflow: CompiledWorkflow) -> dict[str, object]:
    return {
        "name": workflow.name,
        "version": workflow.spec.version,
        "spec": workflow.spec.model_dump(mode="json"),
        "agents": {
            # The pydantic classes of a Python-defined agent are already in its JSON schemas.
            agent.reference: [
                agent.spec.model_dump(mode="json", exclude={"input_model", "output_model"}),
                agent.prompt_source,
            ]
            for agent in workflow.agents
        },
        "subworkflows": {
            node_id: _fingerprint(node.workflow)
            for node_id, node in workflow.nodes.items()
            if node.workflow is not None
        },
    }
