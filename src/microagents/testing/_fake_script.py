"""What the fake Anthropic server answers (`Reply`), what goes wrong (`Fault`), what it saw.

A test scripts the server with these frozen values; the server turns them into wire bytes.
`ReceivedRequest` is what match predicates and reply functions get; `RecordedRequest` adds how
the request was answered and is what `FakeAnthropicServer.requests` lists.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ._fake_wire import lenient_json, minimal_instance, output_tokens_of

DEFAULT_TEXT = "This is a reply from the fake Anthropic server."

StopReason = Literal["end_turn", "max_tokens", "stop_sequence", "tool_use", "refusal"]


@dataclass(frozen=True, slots=True)
class _TextPart:
    text: str


@dataclass(frozen=True, slots=True)
class _ToolCallPart:
    name: str
    input: Mapping[str, Any]
    id: str | None = None


@dataclass(frozen=True, slots=True)
class _MalformedToolCallPart:
    name: str
    raw_text: str


@dataclass(frozen=True, slots=True)
class _StructuredPart:
    # Resolved per request: a call of the forced tool, or JSON text under `output_config.format`.
    output: Any


ReplyPart = _TextPart | _ToolCallPart | _MalformedToolCallPart | _StructuredPart


@dataclass(frozen=True, slots=True)
class Reply:
    """One scripted answer of the model; build it with the class methods.

    ```python
    server.on(Reply.text("SELECT 1"), system_contains="SQL")
    server.on([Reply.tool_call("lookup", {"id": 7}), Reply.text("done")])
    server.on(lambda request: Reply.text(request.last_user_text.upper()))
    ```
    """

    parts: tuple[ReplyPart, ...]
    stop_reason: StopReason
    stop_sequence: str | None = None
    # The model ran out of room: usage reports `output_tokens == max_tokens` of the request.
    exhausts_max_tokens: bool = False

    @classmethod
    def text(cls, text: str, *, stop_sequence: str | None = None) -> Reply:
        """Plain text; `stop_sequence` makes it stop there (`stop_reason="stop_sequence"`)."""
        if stop_sequence is not None:
            return cls((_TextPart(text),), "stop_sequence", stop_sequence=stop_sequence)
        return cls((_TextPart(text),), "end_turn")

    @classmethod
    def tool_call(
        cls,
        name: str,
        input: Mapping[str, Any] | None = None,
        *,
        preamble: str | None = None,
        id: str | None = None,
    ) -> Reply:
        """A call of tool `name` (optionally after some text); the id is generated if omitted."""
        call = _ToolCallPart(name, dict(input or {}), id)
        parts = (_TextPart(preamble), call) if preamble is not None else (call,)
        return cls(parts, "tool_use")

    @classmethod
    def tool_calls(
        cls, *calls: tuple[str, Mapping[str, Any]], preamble: str | None = None
    ) -> Reply:
        """Several tool calls in one turn (parallel tool use), each a `(name, input)` pair."""
        if not calls:
            raise ValueError("Reply.tool_calls needs at least one (name, input) pair")
        parts: list[ReplyPart] = [] if preamble is None else [_TextPart(preamble)]
        parts.extend(_ToolCallPart(name, dict(input)) for name, input in calls)
        return cls(tuple(parts), "tool_use")

    @classmethod
    def structured(cls, output: Any) -> Reply:
        """Structured output: a call of the tool the request forces with `tool_choice`.

        When the request forces no tool but asks for `output_config.format` (JSON-schema
        structured outputs), the output is answered as JSON text instead. A request with
        neither gets a 500 whose message says so.
        """
        return cls((_StructuredPart(output),), "tool_use")

    @classmethod
    def refusal(cls, partial_text: str = "") -> Reply:
        """The model refused (`stop_reason="refusal"`), after `partial_text` if any."""
        return cls((_TextPart(partial_text),) if partial_text else (), "refusal")

    @classmethod
    def max_tokens(cls, partial_text: str = "") -> Reply:
        """Cut off at the request's `max_tokens`, which usage reports as `output_tokens`."""
        return cls((_TextPart(partial_text),), "max_tokens", exhausts_max_tokens=True)

    @classmethod
    def malformed_tool_json(cls, name: str, raw_text: str) -> Reply:
        """A call of tool `name` whose arguments are the raw text `raw_text`.

        Streaming sends `raw_text` verbatim as the `input_json_delta` chunks, so invalid JSON
        reaches the client exactly as a misbehaving model would produce it (the SDK's stream
        helper then raises ValueError). Non-streaming answers carry parsed JSON, as the real
        API always does: `raw_text` parsed if it is valid JSON of whatever shape (e.g. a list
        or an object with the wrong fields), otherwise `{}`.
        """
        return cls((_MalformedToolCallPart(name, raw_text),), "tool_use")


FaultKind = Literal["error", "drop", "slow", "stream_error"]


@dataclass(frozen=True, slots=True)
class Fault:
    """Something that goes wrong on a call; build it with the class methods.

    Injected with `FakeAnthropicServer.fail`. `should_retry` sets the `x-should-retry`
    header, which the SDK obeys over its own status-code policy.
    """

    kind: FaultKind
    status: int = 200
    error_type: str = ""
    message: str = ""
    retry_after: float | None = None
    should_retry: bool | None = None
    delay: float = 0.0

    @classmethod
    def error(
        cls,
        status: int,
        error_type: str,
        message: str,
        *,
        retry_after: float | None = None,
        should_retry: bool | None = None,
    ) -> Fault:
        """Any error answer: HTTP `status` with an error body of `error_type` and `message`."""
        return cls("error", status, error_type, message, retry_after, should_retry)

    @classmethod
    def rate_limited(
        cls,
        retry_after: float = 1,
        *,
        message: str = "This request would exceed the rate limit for your organization.",
        should_retry: bool | None = None,
    ) -> Fault:
        """429 `rate_limit_error` with a `retry-after` header (seconds)."""
        return cls.error(
            429, "rate_limit_error", message, retry_after=retry_after, should_retry=should_retry
        )

    @classmethod
    def overloaded(cls, *, message: str = "Overloaded", should_retry: bool | None = None) -> Fault:
        """529 `overloaded_error`, the API's answer when it is busy."""
        return cls.error(529, "overloaded_error", message, should_retry=should_retry)

    @classmethod
    def server_error(
        cls, *, message: str = "Internal server error", should_retry: bool | None = None
    ) -> Fault:
        """500 `api_error`."""
        return cls.error(500, "api_error", message, should_retry=should_retry)

    @classmethod
    def bad_request(
        cls, message: str = "Invalid request", *, should_retry: bool | None = None
    ) -> Fault:
        """400 `invalid_request_error` with `message`."""
        return cls.error(400, "invalid_request_error", message, should_retry=should_retry)

    @classmethod
    def unauthorized(
        cls, *, message: str = "invalid x-api-key", should_retry: bool | None = None
    ) -> Fault:
        """401 `authentication_error`."""
        return cls.error(401, "authentication_error", message, should_retry=should_retry)

    @classmethod
    def drop_connection(cls, *, delay: float = 0.0) -> Fault:
        """Close the connection without any response (after `delay` seconds)."""
        return cls("drop", delay=delay)

    @classmethod
    def slow(cls, seconds: float) -> Fault:
        """Wait `seconds`, then answer normally (a client timeout shorter than that fires)."""
        return cls("slow", delay=seconds)

    @classmethod
    def stream_error(
        cls, error_type: str = "overloaded_error", message: str = "Overloaded"
    ) -> Fault:
        """An `error` event in the middle of a 200 SSE stream, as the API sends when it gets
        overloaded mid-answer; a non-streaming request gets the matching HTTP error instead."""
        return cls("stream_error", _STATUS_OF_ERROR_TYPE.get(error_type, 500), error_type, message)


_STATUS_OF_ERROR_TYPE = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    """An HTTP request as the fake server received it, with helpers for matching.

    `headers` has lower-cased names; `body` is the parsed JSON object (`{}` if there was none).
    """

    call: int
    method: str
    path: str
    headers: Mapping[str, str]
    body: Mapping[str, Any]

    @property
    def model(self) -> str:
        """The requested model id, or `""`."""
        return str(self.body.get("model", ""))

    @property
    def stream(self) -> bool:
        """Whether the request asked for an SSE stream."""
        return self.body.get("stream") is True

    @property
    def max_tokens(self) -> int:
        """The request's `max_tokens` (0 when absent)."""
        value = self.body.get("max_tokens", 0)
        return value if isinstance(value, int) else 0

    @property
    def system_text(self) -> str:
        """The system prompt, its text blocks joined by blank lines."""
        return _text_of(self.body.get("system", ""))

    @property
    def messages(self) -> list[Mapping[str, Any]]:
        """The request's messages, as sent."""
        messages = self.body.get("messages", [])
        return [m for m in messages if isinstance(m, Mapping)] if isinstance(messages, list) else []

    @property
    def messages_text(self) -> str:
        """The text of every message (text blocks and tool results), joined by blank lines."""
        return "\n\n".join(_text_of(m.get("content", "")) for m in self.messages)

    @property
    def last_user_text(self) -> str:
        """The text of the last user message, or `""`."""
        users = [m for m in self.messages if m.get("role") == "user"]
        return _text_of(users[-1].get("content", "")) if users else ""

    @property
    def tools(self) -> list[Mapping[str, Any]]:
        """The request's tool definitions."""
        tools = self.body.get("tools", [])
        return [t for t in tools if isinstance(t, Mapping)] if isinstance(tools, list) else []

    @property
    def forced_tool_name(self) -> str | None:
        """The tool named by `tool_choice: {"type": "tool", "name": ...}`, if any."""
        choice = self.body.get("tool_choice")
        if isinstance(choice, Mapping) and choice.get("type") == "tool":
            return str(choice.get("name"))
        return None

    def tool_schema(self, name: str) -> Mapping[str, Any] | None:
        """The `input_schema` of the request's tool `name`, if it has one."""
        for tool in self.tools:
            if tool.get("name") == name and isinstance(tool.get("input_schema"), Mapping):
                schema: Mapping[str, Any] = tool["input_schema"]
                return schema
        return None

    @property
    def output_schema(self) -> Mapping[str, Any] | None:
        """The JSON schema of `output_config.format` (structured outputs), if any."""
        config = self.body.get("output_config")
        output_format = config.get("format") if isinstance(config, Mapping) else None
        if isinstance(output_format, Mapping) and isinstance(output_format.get("schema"), Mapping):
            schema: Mapping[str, Any] = output_format["schema"]
            return schema
        return None


@dataclass(frozen=True, slots=True)
class RecordedRequest(ReceivedRequest):
    """A received request and how the fake server answered it.

    `status` is None while the answer is pending or when the connection was dropped;
    `response` is the JSON body sent (for a stream, the message it adds up to).
    """

    request_id: str
    status: int | None
    fault: Fault | None
    response: Mapping[str, Any] | None

    @property
    def succeeded(self) -> bool:
        """Whether a complete 200 answer was produced (a paid call, for `/v1/messages`)."""
        return self.status == 200 and (self.fault is None or self.fault.kind == "slow")


ReplyFunction = Callable[[ReceivedRequest], Reply]
RequestPredicate = Callable[[ReceivedRequest], bool]


@dataclass(frozen=True, slots=True)
class Match:
    """Which requests a reply rule or a fault applies to; every given criterion must hold."""

    predicate: RequestPredicate | None = None
    model: str | None = None
    system_contains: str | None = None
    message_contains: str | None = None
    tool_choice_name: str | None = None

    def __call__(self, request: ReceivedRequest) -> bool:
        return (
            (self.model is None or request.model == self.model)
            and (self.system_contains is None or self.system_contains in request.system_text)
            and (self.message_contains is None or self.message_contains in request.messages_text)
            and (self.tool_choice_name is None or request.forced_tool_name == self.tool_choice_name)
            and (self.predicate is None or self.predicate(request))
        )


@dataclass(frozen=True, slots=True)
class RenderedReply:
    """A reply made concrete for one request: content blocks as the API sends them."""

    content: list[dict[str, Any]]
    stop_reason: str
    stop_sequence: str | None
    output_tokens: int
    # Streamed tool arguments by block index, where they differ from the parsed input.
    raw_tool_json: dict[int, str]


class ScriptError(Exception):
    """The test's script cannot answer this request; the client gets a 500 saying why."""


def render_reply(
    request: ReceivedRequest, reply: Reply, new_id: Callable[[str, int], str]
) -> RenderedReply:
    """Resolve `reply` against `request` (structured output, generated tool ids, usage)."""

    def tool_use(name: str, input: Any, id: str | None = None) -> dict[str, Any]:
        return {
            "type": "tool_use",
            "id": id or new_id("toolu_01", 22),
            "name": name,
            "input": input,
        }

    content: list[dict[str, Any]] = []
    raw_tool_json: dict[int, str] = {}
    stop_reason: str = reply.stop_reason
    for part in reply.parts:
        if isinstance(part, _TextPart):
            content.append({"type": "text", "text": part.text})
        elif isinstance(part, _ToolCallPart):
            content.append(tool_use(part.name, dict(part.input), part.id))
        elif isinstance(part, _MalformedToolCallPart):
            raw_tool_json[len(content)] = part.raw_text
            content.append(tool_use(part.name, lenient_json(part.raw_text)))
        elif request.forced_tool_name is not None:
            content.append(tool_use(request.forced_tool_name, part.output))
        elif request.output_schema is not None:
            content.append({"type": "text", "text": json.dumps(part.output, ensure_ascii=False)})
            stop_reason = "end_turn"
        else:
            raise ScriptError(
                "Reply.structured answers a request that forces a tool "
                '(tool_choice={"type": "tool", "name": ...}) or sets output_config.format; '
                "this request does neither: script Reply.tool_call or Reply.text for it instead"
            )
    output_tokens = request.max_tokens if reply.exhausts_max_tokens else output_tokens_of(content)
    return RenderedReply(content, stop_reason, reply.stop_sequence, output_tokens, raw_tool_json)


def default_reply(request: ReceivedRequest) -> Reply:
    """What an unscripted request gets: a minimal valid structured output, or a short text."""
    forced = request.forced_tool_name
    choice = request.body.get("tool_choice")
    if forced is None and isinstance(choice, Mapping) and choice.get("type") == "any":
        forced = next((str(t["name"]) for t in request.tools if "input_schema" in t), None)
    try:
        if forced is not None:
            return Reply.tool_call(forced, minimal_instance(request.tool_schema(forced) or {}))
        if request.output_schema is not None:
            return Reply.text(json.dumps(minimal_instance(request.output_schema)))
    except (ValueError, LookupError, TypeError) as error:
        raise ScriptError(
            f"cannot make a minimal instance of this schema ({error}); "
            "script a Reply.structured for the request instead"
        ) from error
    return Reply.text(DEFAULT_TEXT)


def _text_of(content: Any) -> str:
    """The text inside a message's content (a string, or blocks with text or tool results).

    Adjacent text blocks are one text, as the model reads them (a prompt may be sent as a
    cached opening and the rest); other blocks are set apart by blank lines."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    texts: list[str] = []
    adjacent = False
    for block in content:
        if not isinstance(block, Mapping):
            continue
        if isinstance(block.get("text"), str):
            if adjacent:
                texts[-1] += block["text"]
            else:
                texts.append(block["text"])
            adjacent = True
        elif block.get("type") == "tool_result":
            texts.append(_text_of(block.get("content", "")))
            adjacent = False
    return "\n\n".join(texts)
