"""Captured content, in the shapes that viewers read, cut to size without breaking them.

Used only with content capture on. A model call's prompt and answer go to the GenAI
conventions' message attributes (``gen_ai.system_instructions``, ``gen_ai.input.messages``,
``gen_ai.output.messages``), in the part shapes of the conventions' JSON schemas
(``model/gen-ai/gen-ai-{input,output}-messages.json`` and ``gen-ai-system-instructions.json``
in open-telemetry/semantic-conventions-genai): text ``{"type": "text", "content"}``, a tool call
``{"type": "tool_call", "id", "name", "arguments"}``, a tool result ``{"type":
"tool_call_response", "id", "response"}`` in a message of role ``tool``. Every hop's input and
output also goes to OpenInference's ``input.value`` and ``output.value`` with their mime types,
which Phoenix and other OpenInference readers show as a hop's Input and Output.

Each attribute is at most `limit` characters and stays what it says it is: JSON stays valid JSON
(its longest strings and lists are shortened, each with a note of what was cut), and a value that
cannot be made to fit as JSON is sent as plain text, with the note at its end.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import orjson

from ..models._protocol import ContentBlock, Message, TextBlock, ToolResultBlock, ToolUseBlock
from ..results._results import jsonable

DEFAULT_LIMIT: Final = 32_768
"""Characters per content attribute, unless configured."""
JSON_MIME: Final = "application/json"
TEXT_MIME: Final = "text/plain"

# Anthropic's stop reasons as the conventions' finish reasons; others pass through as they are.
_FINISH_REASONS: Final = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "tool_call",
    "max_tokens": "length",
    "refusal": "content_filter",
}
# Below this many characters a string is not worth cutting further.
_SMALLEST_CUT = 64
# The most characters a cut's note takes, "…[cut: 1,000,000,000 more characters]" and less.
_NOTE_ROOM = 40
_OPTIONS = orjson.OPT_NON_STR_KEYS


def finish_reason(stop_reason: str) -> str:
    """The conventions' finish reason for an Anthropic stop reason."""
    return _FINISH_REASONS.get(stop_reason, stop_reason)


def _part(block: ContentBlock) -> dict[str, Any]:
    if isinstance(block, TextBlock):
        return {"type": "text", "content": block.text}
    if isinstance(block, ToolUseBlock):
        return {"type": "tool_call", "id": block.id, "name": block.name, "arguments": block.input}
    part: dict[str, Any] = {"type": "tool_call_response", "id": block.tool_use_id}
    part["response"] = block.content
    if block.is_error:
        part["is_error"] = True  # the schema allows more properties; a reader sees the failure
    return part


def input_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """A request's messages as the conventions' input messages, in the order sent.

    Anthropic sends tool results inside a user message; the conventions give each its own
    message of role ``tool``, so a user message is split where it holds them.
    """
    converted: list[dict[str, Any]] = []
    for message in messages:
        parts: list[dict[str, Any]] = []
        for block in message.content:
            if isinstance(block, ToolResultBlock):
                if parts:
                    converted.append({"role": message.role, "parts": parts})
                    parts = []
                converted.append({"role": "tool", "parts": [_part(block)]})
            elif isinstance(block, TextBlock) and parts and parts[-1].get("type") == "text":
                # A prompt sent as its cached opening and the rest is one text to the model,
                # and one to a reader.
                parts[-1] = {"type": "text", "content": parts[-1]["content"] + block.text}
            else:
                parts.append(_part(block))
        if parts:
            converted.append({"role": message.role, "parts": parts})
    return converted


def output_messages(content: Sequence[ContentBlock], stop_reason: str) -> list[dict[str, Any]]:
    """A response as the conventions' output messages: one message, one choice."""
    return [
        {
            "role": "assistant",
            "parts": [_part(block) for block in content],
            "finish_reason": finish_reason(stop_reason),
        }
    ]


def text_messages(role: str, text: str, *, output: bool = False) -> list[dict[str, Any]]:
    """One message of one text part: a hop's input or output as a conversation turn."""
    message: dict[str, Any] = {"role": role, "parts": [{"type": "text", "content": text}]}
    if output:
        message["finish_reason"] = "stop"
    return [message]


def system_instructions(system: str) -> list[dict[str, Any]]:
    return [{"type": "text", "content": system}]


def value(data: Any, limit: int) -> tuple[str, str]:
    """`data` as the text of an ``input.value``/``output.value`` and its mime type: a string as
    it is, unless it is a JSON object or list (as a tool's result often is); anything else as
    JSON; plain text, cut, when it cannot fit as JSON."""
    if isinstance(data, str):
        parsed = _json_text(data)
        if parsed is None:
            return (data if len(data) <= limit else _cut(data, limit)), TEXT_MIME
        data = parsed
    plain = jsonable(data)
    fitted = _fit(plain, limit)
    if fitted is not None:
        return fitted, JSON_MIME
    return _cut(_dumps(plain), limit), TEXT_MIME


def _json_text(text: str) -> Any:
    """The JSON object or list that `text` is, or None."""
    if text[:1] not in ("{", "["):
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return None


def messages(document: list[Any], limit: int, role: str = "user") -> str:
    """A message attribute (a JSON list) of at most `limit` characters, valid JSON always:
    shortened where it is long, or, when even that is too long, one text part with the start
    of its JSON."""
    fitted = _fit(document, limit)
    if fitted is not None:
        return fitted
    raw = _dumps(document)
    # The start of the JSON, as the text of one part; escaped inside it, it grows (each
    # quote takes two characters), so the cut shrinks until the whole fits.
    room = limit - 100
    while True:
        encoded = _dumps(text_messages(role, _cut(raw, room)))
        if len(encoded) <= limit or room == _SMALLEST_CUT:
            return encoded
        room = max(room - (len(encoded) - limit), _SMALLEST_CUT)


def _dumps(data: Any) -> str:
    # Non-JSON leaves (a SQL row's Decimal or date) as their text.
    return orjson.dumps(data, default=str, option=_OPTIONS).decode()


def _fit(data: Any, limit: int) -> str | None:
    text = _dumps(data)
    if len(text) <= limit:
        return text
    cut = limit // 2
    while cut >= _SMALLEST_CUT:
        text = _dumps(_shorten(data, cut, max(cut // _SMALLEST_CUT, 1)))
        if len(text) <= limit:
            return text
        cut //= 2
    return None


def _shorten(data: Any, chars: int, items: int) -> Any:
    """`data` with every string cut to `chars` characters and every list to `items` items."""
    if isinstance(data, str):
        return data if len(data) <= chars else _cut(data, chars)
    if isinstance(data, dict):
        return {key: _shorten(item, chars, items) for key, item in data.items()}
    if isinstance(data, list):
        kept = [_shorten(item, chars, items) for item in data[:items]]
        if len(data) > items:
            kept.append(f"…[cut: {len(data) - items:,} more items]")
        return kept
    return data


def _cut(text: str, limit: int) -> str:
    """`text` in at most `limit` characters (of at least `_SMALLEST_CUT`), saying how many
    were cut."""
    keep = limit - _NOTE_ROOM
    return f"{text[:keep]}…[cut: {len(text) - keep:,} more characters]"
