"""Captured content: the conventions' message shapes, and cutting that keeps them readable."""

from __future__ import annotations

import json

from microagents.models._protocol import Message, TextBlock, ToolResultBlock, ToolUseBlock
from microagents.tracing import _content as content


def test_a_user_turn_of_tool_results_becomes_one_tool_message_per_result() -> None:
    history = (
        Message.user("Where are orders A-1 and B-2?"),
        Message(
            "assistant",
            (
                TextBlock("Looking them up."),
                ToolUseBlock("toolu_1", "orders.lookup", {"order_id": "A-1"}),
                ToolUseBlock("toolu_2", "orders.lookup", {"order_id": "B-2"}),
            ),
        ),
        Message(
            "user",
            (
                ToolResultBlock("toolu_1", "shipped"),
                ToolResultBlock("toolu_2", "no such order", is_error=True),
                TextBlock("Answer briefly."),
            ),
        ),
    )
    assert content.input_messages(history) == [
        {"role": "user", "parts": [{"type": "text", "content": "Where are orders A-1 and B-2?"}]},
        {
            "role": "assistant",
            "parts": [
                {"type": "text", "content": "Looking them up."},
                {"type": "tool_call", "id": "toolu_1", "name": "orders.lookup",
                 "arguments": {"order_id": "A-1"}},
                {"type": "tool_call", "id": "toolu_2", "name": "orders.lookup",
                 "arguments": {"order_id": "B-2"}},
            ],
        },
        {"role": "tool", "parts": [
            {"type": "tool_call_response", "id": "toolu_1", "response": "shipped"}]},
        {"role": "tool", "parts": [
            {"type": "tool_call_response", "id": "toolu_2", "response": "no such order",
             "is_error": True}]},
        {"role": "user", "parts": [{"type": "text", "content": "Answer briefly."}]},
    ]  # fmt: skip


def test_stop_reasons_become_the_conventions_finish_reasons() -> None:
    reasons = ["end_turn", "tool_use", "max_tokens", "stop_sequence", "refusal", "pause_turn"]
    finished = [content.output_messages((), reason)[0]["finish_reason"] for reason in reasons]
    assert finished == ["stop", "tool_call", "length", "stop", "content_filter", "pause_turn"]


def test_values_are_json_when_they_are_data_and_text_otherwise() -> None:
    assert content.value({"b": [1, 2]}, 1_000) == ('{"b":[1,2]}', content.JSON_MIME)
    assert content.value('{"a": 1}', 1_000) == ('{"a":1}', content.JSON_MIME)
    assert content.value("plain words", 1_000) == ("plain words", content.TEXT_MIME)
    assert content.value("{not json", 1_000) == ("{not json", content.TEXT_MIME)


def test_a_long_value_is_cut_inside_its_strings_and_stays_json() -> None:
    text, mime = content.value({"sql": "SELECT 1 " * 1_000, "rows": list(range(5_000))}, 1_000)
    assert mime == content.JSON_MIME
    assert len(text) <= 1_000
    cut = json.loads(text)
    assert cut["sql"].startswith("SELECT 1 SELECT 1")
    assert "…[cut: " in cut["sql"]
    assert cut["rows"][-1].startswith("…[cut: ")


def test_what_cannot_be_shortened_to_fit_is_sent_as_marked_plain_text() -> None:
    many_keys = {f"key{i}": i for i in range(1_000)}
    text, mime = content.value(many_keys, 1_000)
    assert mime == content.TEXT_MIME
    assert len(text) <= 1_000
    assert text.startswith('{"key0":0,')
    assert text.endswith("more characters]")

    attribute = content.messages([many_keys], 1_000, "user")
    assert len(attribute) <= 1_000
    ((part,),) = [message["parts"] for message in json.loads(attribute)]
    assert part["type"] == "text"
    assert part["content"].startswith('[{"key0":0,')
    assert part["content"].endswith("more characters]")
