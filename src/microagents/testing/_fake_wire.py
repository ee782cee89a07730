"""The Anthropic Messages API wire format, as the fake server speaks it.

Request validation, the deterministic token estimate, the prompt-cache simulation, message and
error bodies, SSE events, and minimal instances of JSON schemas. Pure functions and one small
stateful cache; no sockets here.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..models._capabilities import capabilities_of

# The real API caches a prefix only from a minimum length, which depends on the model (512 to
# 4,096 tokens); the fake applies the same per-model minimums unless a test sets one for all.
CACHE_TTL_SECONDS = {"5m": 300.0, "1h": 3600.0}
# The API looks for an earlier cache hit at most this many blocks before each breakpoint.
CACHE_LOOKBACK_BLOCKS = 20

Json = dict[str, Any]


def estimate_tokens(text: str) -> int:
    """The fake's deterministic token count of `text`: one token per 4 characters, rounded up."""
    return math.ceil(len(text) / 4)


def _compact(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# --- validation -----------------------------------------------------------------------------


SAMPLING_PARAMETERS = ("temperature", "top_p", "top_k")


def validate_messages_request(body: Mapping[str, Any], *, count_tokens: bool = False) -> str | None:
    """The first problem of a `/v1/messages` (or `count_tokens`) body, in the API's wording."""
    required = ("model", "messages") if count_tokens else ("model", "max_tokens", "messages")
    for name in required:
        if name not in body:
            return f"{name}: Field required"
    if not isinstance(body["model"], str) or not body["model"]:
        return "model: Input should be a valid string"
    if not count_tokens:
        max_tokens = body["max_tokens"]
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 0:
            return "max_tokens: Input should be a valid integer greater than or equal to 0"
        if "stream" in body and not isinstance(body["stream"], bool):
            return "stream: Input should be a valid boolean"
    for sampling in SAMPLING_PARAMETERS:
        if sampling in body:
            # API version 2026-10-21 (what SDK 2.x sends) refuses them at any value.
            return f"{sampling}: Extra inputs are not permitted"
    system = body.get("system", "")
    if not isinstance(system, str | list):
        return "system: Input should be a valid string or list of text blocks"
    return (
        _validate_messages(body["messages"])
        or _validate_tools(body)
        or _validate_output_config(body.get("output_config"))
    )


EFFORT_LEVELS = ("low", "medium", "high", "xhigh", "max")


def _validate_output_config(config: Any) -> str | None:
    if config is None:
        return None
    if not isinstance(config, Mapping):
        return "output_config: Input should be a valid dictionary"
    unknown = sorted(set(config) - {"format", "effort"})
    if unknown:
        return f"output_config.{unknown[0]}: Extra inputs are not permitted"
    effort = config.get("effort")
    if effort is not None and effort not in EFFORT_LEVELS:
        return "output_config.effort: Input should be " + ", ".join(f"'{e}'" for e in EFFORT_LEVELS)
    output_format = config.get("format")
    if output_format is None:
        return None
    if not isinstance(output_format, Mapping) or output_format.get("type") != "json_schema":
        return "output_config.format.type: Input should be 'json_schema'"
    schema = output_format.get("schema")
    if not isinstance(schema, Mapping):
        return "output_config.format.schema: Field required"
    return _strict_schema_problem(schema, "output_config.format.schema")


def _strict_schema_problem(schema: Mapping[str, Any], path: str) -> str | None:
    """What structured outputs refuse in a schema: an object that allows extra properties."""
    if schema.get("type") == "object" and schema.get("additionalProperties", True) is not False:
        return f"{path}: For 'object' type, 'additionalProperties' must be explicitly set to false"
    for key in ("properties", "$defs"):
        children = schema.get(key)
        if isinstance(children, Mapping):
            for name, child in children.items():
                if isinstance(child, Mapping):
                    found = _strict_schema_problem(child, f"{path}.{key}.{name}")
                    if found:
                        return found
    for key in ("items",):
        child = schema.get(key)
        if isinstance(child, Mapping):
            found = _strict_schema_problem(child, f"{path}.{key}")
            if found:
                return found
    for key in ("anyOf", "allOf"):
        variants = schema.get(key)
        if isinstance(variants, list):
            for index, child in enumerate(variants):
                if isinstance(child, Mapping):
                    found = _strict_schema_problem(child, f"{path}.{key}.{index}")
                    if found:
                        return found
    return None


def _validate_messages(messages: Any) -> str | None:
    if not isinstance(messages, list) or not messages:
        return "messages: Input should be a non-empty list of messages"
    previous_tool_uses: set[str] = set()
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping) or message.get("role") not in ("user", "assistant"):
            return f"messages.{i}.role: Input should be 'user' or 'assistant'"
        content = message.get("content")
        if not isinstance(content, str | list):
            return f"messages.{i}.content: Input should be a valid string or list of blocks"
        blocks = [b for b in content if isinstance(b, Mapping)] if isinstance(content, list) else []
        if isinstance(content, list) and len(blocks) != len(content):
            return f"messages.{i}.content: Input should be a list of content blocks"
        results = [str(b.get("tool_use_id")) for b in blocks if b.get("type") == "tool_result"]
        # The API pairs every tool_use with a tool_result in the very next message, both ways.
        unexpected = [r for r in results if r not in previous_tool_uses]
        if unexpected:
            return (
                f"messages.{i}.content: unexpected `tool_use_id` found in `tool_result` blocks: "
                f"{', '.join(unexpected)}. Each `tool_result` block must have a corresponding "
                "`tool_use` block in the previous message."
            )
        missing = sorted(previous_tool_uses - set(results))
        if missing:
            return (
                f"messages.{i - 1}: `tool_use` ids were found without `tool_result` blocks "
                f"immediately after: {', '.join(missing)}. Each `tool_use` block must have a "
                "corresponding `tool_result` block in the next message."
            )
        is_assistant = message["role"] == "assistant"
        previous_tool_uses = {
            str(b.get("id")) for b in blocks if is_assistant and b.get("type") == "tool_use"
        }
    return None


def _validate_tools(body: Mapping[str, Any]) -> str | None:
    tools = body.get("tools", [])
    if not isinstance(tools, list):
        return "tools: Input should be a valid list"
    names: set[str] = set()
    for i, tool in enumerate(tools):
        if not isinstance(tool, Mapping) or not isinstance(tool.get("name"), str):
            return f"tools.{i}.name: Field required"
        names.add(tool["name"])
        is_custom = tool.get("type", "custom") == "custom"
        schema = tool.get("input_schema")
        if is_custom and (not isinstance(schema, Mapping) or schema.get("type") != "object"):
            return f"tools.{i}.custom.input_schema: Input should be a JSON schema of type 'object'"
    choice = body.get("tool_choice")
    if choice is None:
        return None
    if not isinstance(choice, Mapping) or choice.get("type") not in ("auto", "any", "tool", "none"):
        return "tool_choice: Input tag should be 'auto', 'any', 'tool' or 'none'"
    if choice["type"] == "tool" and choice.get("name") not in names:
        return f"tool_choice.name: Tool '{choice.get('name')}' not found in provided tools"
    parallel = choice.get("disable_parallel_tool_use")
    if parallel is not None and (not isinstance(parallel, bool) or choice["type"] == "none"):
        return "tool_choice.disable_parallel_tool_use: Extra inputs are not permitted"
    return None


# --- input tokens and the prompt cache ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Segment:
    """One cacheable unit of the prompt (a tool, a system block, a message block), in order."""

    canonical: str
    tokens: int
    breakpoint_ttl: float | None


def _segment(block: Mapping[str, Any], prefix: str) -> _Segment:
    marker = block.get("cache_control")
    ttl = None
    if isinstance(marker, Mapping) and marker.get("type") == "ephemeral":
        ttl = CACHE_TTL_SECONDS.get(str(marker.get("ttl", "5m")), CACHE_TTL_SECONDS["5m"])
    unmarked = {k: v for k, v in block.items() if k != "cache_control"}
    text = unmarked.get("text") if unmarked.get("type") == "text" else None
    counted = text if isinstance(text, str) else _compact(unmarked)
    return _Segment(prefix + _compact(unmarked), estimate_tokens(counted), ttl)


def input_segments(body: Mapping[str, Any]) -> list[_Segment]:
    """The prompt as the cache sees it: tools, then system, then messages, block by block."""
    segments = [_segment(t, "tool:") for t in body.get("tools", []) if isinstance(t, Mapping)]
    system = body.get("system", "")
    system_blocks = [{"type": "text", "text": system}] if isinstance(system, str) else system
    if system:
        segments.extend(_segment(b, "system:") for b in system_blocks if isinstance(b, Mapping))
    for message in body.get("messages", []):
        content = message.get("content", "")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        segments.extend(_segment(b, f"{message.get('role')}:") for b in blocks)
    auto = body.get("cache_control")
    if isinstance(auto, Mapping) and segments and segments[-1].breakpoint_ttl is None:
        # Top-level cache_control marks the last cacheable block, as the API documents.
        ttl = CACHE_TTL_SECONDS.get(str(auto.get("ttl", "5m")), CACHE_TTL_SECONDS["5m"])
        last = segments[-1]
        segments[-1] = _Segment(last.canonical, last.tokens, ttl)
    return segments


def count_input_tokens(body: Mapping[str, Any]) -> int:
    """All input tokens of a request, cached or not (what `count_tokens` answers)."""
    return sum(s.tokens for s in input_segments(body))


@dataclass(frozen=True, slots=True)
class CachePlan:
    """How a request's input splits into uncached, cache-written and cache-read tokens."""

    input_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int
    writes: tuple[tuple[str, float], ...] = ()
    cache_creation_1h_input_tokens: int = 0


@dataclass(slots=True)
class PromptCache:
    """Cache entries keyed by model and exact prefix, with the API's TTLs; not thread-safe.

    `min_tokens`: the shortest prefix cached, for every model; None applies each model's own
    minimum, as the API does."""

    min_tokens: int | None = None
    _expiry: dict[str, float] = field(default_factory=dict)

    def plan(self, model: str, segments: list[_Segment]) -> CachePlan:
        """Split the input as the API would; nothing changes until `commit`."""
        now = time.monotonic()
        minimum = (
            capabilities_of(model).min_cacheable_tokens
            if self.min_tokens is None
            else self.min_tokens
        )
        keys, totals = list(self._prefix_keys(model, segments)), []
        running = 0
        for segment in segments:
            running += segment.tokens
            totals.append(running)
        breakpoints = [
            i
            for i, s in enumerate(segments)
            if s.breakpoint_ttl is not None and totals[i] >= minimum
        ]
        if not breakpoints:
            return CachePlan(running, 0, 0)
        read_at, read_ttl = -1, 0.0
        for b in breakpoints:
            for j in range(b, max(-1, b - CACHE_LOOKBACK_BLOCKS), -1):
                if j > read_at and self._expiry.get(keys[j], 0.0) > now:
                    read_at, read_ttl = j, segments[b].breakpoint_ttl or 0.0
                    break
        read = totals[read_at] if read_at >= 0 else 0
        created = totals[breakpoints[-1]] - read
        # Every breakpoint is written (or refreshed), and so is the entry read: a hit renews it.
        writes = [(keys[i], segments[i].breakpoint_ttl or 0.0) for i in breakpoints]
        if read_at >= 0:
            writes.append((keys[read_at], read_ttl))
        hour = segments[breakpoints[-1]].breakpoint_ttl == CACHE_TTL_SECONDS["1h"]
        return CachePlan(
            running - read - created, created, read, tuple(writes), created if hour else 0
        )

    def commit(self, plan: CachePlan) -> None:
        """Write (or refresh, on a read) the entries the planned request touched."""
        now = time.monotonic()
        for key, ttl in plan.writes:
            self._expiry[key] = max(self._expiry.get(key, 0.0), now + ttl)

    def clear(self) -> None:
        """Forget every entry."""
        self._expiry.clear()

    @staticmethod
    def _prefix_keys(model: str, segments: list[_Segment]) -> Iterator[str]:
        digest = hashlib.sha256(model.encode())
        for segment in segments:
            digest.update(b"\0" + segment.canonical.encode())
            yield digest.copy().hexdigest()


# --- rate limits ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServerRateLimits:
    """The limits the fake reports in `anthropic-ratelimit-*` headers, per fixed window.

    With `enforce=True`, a request over a limit gets a 429 whose `retry-after` is the time left
    in the window (the real API refills continuously; a fixed window is simpler to test). With
    `send_headers=False` no such header is sent, as from a gateway or proxy in front of the API.
    """

    requests_per_minute: int = 50
    input_tokens_per_minute: int = 50_000
    output_tokens_per_minute: int = 10_000
    window_seconds: float = 60.0
    enforce: bool = False
    send_headers: bool = True


class RateMeter:
    """Usage in the current fixed window against `ServerRateLimits` (access is serialised)."""

    def __init__(self, limits: ServerRateLimits) -> None:
        self.limits = limits
        self._started = 0.0
        self._requests = self._input_tokens = self._output_tokens = 0

    def over_limit(self, input_tokens: int) -> tuple[str, int] | None:
        """The 429 message and retry-after (s) if this request would exceed an enforced limit."""
        limits = self.limits
        if not limits.enforce:
            return None
        self._roll()
        for what, limit, exceeded in (
            ("requests", limits.requests_per_minute, self._requests >= limits.requests_per_minute),
            (
                "input tokens",
                limits.input_tokens_per_minute,
                self._input_tokens + input_tokens > limits.input_tokens_per_minute,
            ),
            (
                "output tokens",
                limits.output_tokens_per_minute,
                self._output_tokens >= limits.output_tokens_per_minute,
            ),
        ):
            if exceeded:
                message = f"This request would exceed your rate limit of {limit} {what} per minute."
                left = self._started + limits.window_seconds - time.time()
                return message, max(1, math.ceil(left))
        return None

    def record(self, input_tokens: int, output_tokens: int) -> None:
        """Count one answered request."""
        self._roll()
        self._requests += 1
        self._input_tokens += input_tokens
        self._output_tokens += output_tokens

    def headers(self) -> dict[str, str]:
        """The `anthropic-ratelimit-*` headers: limit, remaining, and reset as RFC 3339."""
        if not self.limits.send_headers:
            return {}
        self._roll()
        limits = self.limits
        reset = datetime.fromtimestamp(self._started + limits.window_seconds, UTC)
        reset_text = reset.isoformat(timespec="seconds").replace("+00:00", "Z")
        headers: dict[str, str] = {}
        for name, limit, used in (
            ("requests", limits.requests_per_minute, self._requests),
            ("input-tokens", limits.input_tokens_per_minute, self._input_tokens),
            ("output-tokens", limits.output_tokens_per_minute, self._output_tokens),
        ):
            headers[f"anthropic-ratelimit-{name}-limit"] = str(limit)
            headers[f"anthropic-ratelimit-{name}-remaining"] = str(max(0, limit - used))
            headers[f"anthropic-ratelimit-{name}-reset"] = reset_text
        return headers

    def _roll(self) -> None:
        # Wall-clock time, since the reset headers are absolute timestamps.
        now = time.time()
        if now >= self._started + self.limits.window_seconds:
            self._started = now
            self._requests = self._input_tokens = self._output_tokens = 0


# --- response bodies and SSE ----------------------------------------------------------------


def error_body(error_type: str, message: str, request_id: str) -> Json:
    """An error body exactly as the API sends it."""
    return {
        "type": "error",
        "error": {"type": error_type, "message": message},
        "request_id": request_id,
    }


def output_tokens_of(content: list[Json]) -> int:
    """The fake's output token count of answered content (never 0, like the API's)."""
    total = 0
    for block in content:
        if block["type"] == "text":
            total += estimate_tokens(block["text"])
        else:
            total += estimate_tokens(block["name"] + _compact(block["input"]))
    return max(1, total)


def stream_events(
    message: Json, raw_tool_json: Mapping[int, str], chunk_chars: int
) -> list[tuple[str, Json]]:
    """The SSE events that add up to `message`, in the API's order.

    `raw_tool_json` overrides the streamed arguments of tool_use blocks by index (to stream
    malformed JSON); other tool inputs stream as their JSON in chunks.
    """
    events = [_message_start(message)]
    if not message["content"]:
        events.append(("ping", {"type": "ping"}))
    for index, block in enumerate(message["content"]):
        if block["type"] == "text":
            opening: Json = {"type": "text", "text": ""}
            deltas = [
                {"type": "text_delta", "text": c} for c in _chunks(block["text"], chunk_chars)
            ]
        else:
            opening = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            arguments = raw_tool_json.get(index, json.dumps(block["input"], ensure_ascii=False))
            # The API opens every tool input stream with an empty partial_json.
            deltas = [{"type": "input_json_delta", "partial_json": ""}]
            deltas += [
                {"type": "input_json_delta", "partial_json": c}
                for c in _chunks(arguments, chunk_chars)
                if c
            ]
        events.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": opening},
            )
        )
        if index == 0:
            events.append(("ping", {"type": "ping"}))
        events.extend(
            ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d})
            for d in deltas
        )
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    delta = {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]}
    usage = {"output_tokens": message["usage"]["output_tokens"]}
    events.append(("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}))
    events.append(("message_stop", {"type": "message_stop"}))
    return events


def stream_error_events(message: Json, error: Json) -> list[tuple[str, Json]]:
    """A stream that starts `message` and then fails with the error body `error`."""
    return [_message_start(message), ("ping", {"type": "ping"}), ("error", error)]


def _message_start(message: Json) -> tuple[str, Json]:
    start = {
        **message,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        # The API reports a token or so at the start; message_delta carries the final count.
        "usage": {**message["usage"], "output_tokens": min(1, message["usage"]["output_tokens"])},
    }
    return "message_start", {"type": "message_start", "message": start}


def encode_sse(event: str, data: Json) -> bytes:
    """One server-sent event: `event:` and `data:` lines and a blank line."""
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


def _chunks(text: str, size: int) -> list[str]:
    # At least one chunk, so that even an empty text block gets its one delta.
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def lenient_json(raw: str) -> Any:
    """`raw` parsed as JSON, or `{}` if it is not JSON (what a non-streaming answer carries)."""
    try:
        return json.loads(raw)
    except ValueError:
        return {}


def final_message(events: list[tuple[str, Json]]) -> Json:
    """The message a complete event stream adds up to (for the request record)."""
    message: Json = dict(events[0][1]["message"])
    content: list[Json] = []
    partial: dict[int, str] = {}
    for name, data in events[1:]:
        if name == "content_block_start":
            content.append(dict(data["content_block"]))
        elif name == "content_block_delta":
            delta = data["delta"]
            if delta["type"] == "text_delta":
                content[data["index"]]["text"] += delta["text"]
            else:
                partial[data["index"]] = partial.get(data["index"], "") + delta["partial_json"]
        elif name == "message_delta":
            message.update(data["delta"])
            message["usage"] = {**message["usage"], **data["usage"]}
    for index, raw in partial.items():
        content[index]["input"] = lenient_json(raw)
    return {**message, "content": content}


# --- minimal instances of JSON schemas ------------------------------------------------------

_STRING_FORMATS = {
    "date": "2024-01-01",
    "date-time": "2024-01-01T00:00:00Z",
    "time": "00:00:00Z",
    "email": "user@example.com",
    "uri": "https://example.com",
    "uuid": "00000000-0000-0000-0000-000000000000",
}


def minimal_instance(schema: Any, root: Any = None, depth: int = 0) -> Any:
    """A small value valid against `schema`: only required properties, first enum/anyOf
    choice, empty or shortest strings and arrays, numbers at their lower bound."""
    root = schema if root is None else root
    if depth > 40:
        raise ValueError("the schema nests too deeply for a minimal instance (a recursive $ref?)")
    if not isinstance(schema, Mapping):
        return None  # `true` or `{}`-like: anything is valid
    if isinstance(schema.get("$ref"), str):
        return minimal_instance(_resolve_ref(root, schema["$ref"]), root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            return minimal_instance(schema[key][0], root, depth + 1)
    if isinstance(schema.get("allOf"), list):
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        for part in schema["allOf"]:
            part = _resolve_ref(root, part["$ref"]) if "$ref" in part else part
            merged.setdefault("properties", {}).update(part.get("properties", {}))
            merged["required"] = [*merged.get("required", []), *part.get("required", [])]
            merged.setdefault("type", part.get("type"))
        return minimal_instance(merged, root, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = kind[0] if kind else None
    if kind is None:
        kind = "object" if "properties" in schema else "array" if "items" in schema else None
    if kind == "object":
        properties = schema.get("properties", {})
        required = schema.get("required", [])
        return {name: minimal_instance(properties.get(name), root, depth + 1) for name in required}
    if kind == "array":
        prefix = schema.get("prefixItems", [])
        count = max(int(schema.get("minItems", 0)), len(prefix))
        items = [*prefix, *[schema.get("items")] * (count - len(prefix))]
        return [minimal_instance(item, root, depth + 1) for item in items]
    if kind == "string":
        fixed = _STRING_FORMATS.get(str(schema.get("format")))
        return fixed if fixed is not None else "x" * int(schema.get("minLength", 0))
    if kind in ("integer", "number"):
        return _lowest_number(schema, integer=kind == "integer")
    if kind == "boolean":
        return False
    return None


def _lowest_number(schema: Mapping[str, Any], *, integer: bool) -> int | float:
    value: float = 0
    if "minimum" in schema and value < schema["minimum"]:
        value = schema["minimum"]
    if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
        value = math.floor(schema["exclusiveMinimum"]) + 1
    if "maximum" in schema and value > schema["maximum"]:
        value = schema["maximum"]
    if integer:
        return math.ceil(value)
    return value


def _resolve_ref(root: Any, ref: str) -> Any:
    if not ref.startswith("#"):
        raise ValueError(f"only local $refs are supported by the fake server, not {ref!r}")
    node = root
    for part in filter(None, ref[1:].split("/")):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node
