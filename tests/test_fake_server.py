"""The loopback fake of the Anthropic Messages API, driven through the real `anthropic` SDK."""

from __future__ import annotations

import json
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Literal

import anthropic
import anyio
import pytest
from pydantic import BaseModel

from microagents.testing import (
    FakeAnthropicServer,
    Fault,
    ReceivedRequest,
    Reply,
    ServerRateLimits,
    estimate_tokens,
)

MODEL = "claude-haiku-4-5"
USER_TEXT = "Classify the sentiment: the service was great"
USER = [{"role": "user", "content": USER_TEXT}]
CLASSIFY = {
    "name": "classify",
    "description": "Record the sentiment label.",
    "input_schema": {
        "type": "object",
        "properties": {"label": {"type": "string", "enum": ["positive", "negative"]}},
        "required": ["label"],
    },
}
LOOKUP = {
    "name": "lookup_order",
    "description": "Find an order by id.",
    "input_schema": {
        "type": "object",
        "properties": {"order_id": {"type": "integer"}},
        "required": ["order_id"],
    },
}
FORCE_CLASSIFY = {"type": "tool", "name": "classify"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def server() -> Iterator[FakeAnthropicServer]:
    # No minimum prefix, so that short prompts exercise the cache's mechanics; the per-model
    # minimums the API applies (the default) have a test of their own.
    with FakeAnthropicServer(min_cacheable_tokens=0) as running:
        yield running


@pytest.fixture
def client(server: FakeAnthropicServer) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(
        api_key="test-key", base_url=server.base_url, max_retries=0, timeout=2.0
    ) as sdk:
        yield sdk


def create(client: anthropic.Anthropic, **overrides: Any) -> anthropic.types.Message:
    params: dict[str, Any] = {"model": MODEL, "max_tokens": 256, "messages": USER, **overrides}
    return client.messages.create(**params)


def post(
    server: FakeAnthropicServer,
    path: str,
    body: object,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any, bytes]:
    """A raw HTTP POST, to see the wire exactly as sent (status, headers, body bytes)."""
    default = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
    request = urllib.request.Request(
        server.base_url + path,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"content-type": "application/json", **(default if headers is None else headers)},
    )
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers, error.read()


def normalized(message: BaseModel) -> dict[str, Any]:
    """A message without its generated ids or unset fields, to compare two answers."""
    data = message.model_dump(exclude_none=True)
    data["id"] = "msg"
    for block in data["content"]:
        if block["type"] == "tool_use":
            block["id"] = "toolu"
    return data


# --- the wire format ------------------------------------------------------------------------


def test_a_text_answer_has_exactly_the_api_wire_shape(server: FakeAnthropicServer) -> None:
    server.on(Reply.text("positive"))
    status, headers, raw = post(
        server, "/v1/messages", {"model": MODEL, "max_tokens": 64, "messages": USER}
    )
    body = json.loads(raw)
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert headers["request-id"].startswith("req_")
    assert body["id"].startswith("msg_")
    assert body == {
        "id": body["id"],
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": [{"type": "text", "text": "positive"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": estimate_tokens(USER_TEXT),
            "output_tokens": estimate_tokens("positive"),
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
            "service_tier": "standard",
        },
    }


def test_the_sdk_reads_a_plain_text_answer(
    server: FakeAnthropicServer, client: anthropic.Anthropic
) -> None:
    server.on(Reply.text("positive"))
    message = create(client)
    assert message.content[0].type == "text"
    assert message.content[0].text == "positive"
    assert (message.model, message.stop_reason, message.stop_sequence) == (MODEL, "end_turn", None)
    assert message._request_id == server.requests[-1].request_id


def test_stream_events_come_in_the_api_order(server: FakeAnthropicServer) -> None:
    server.on(Reply.tool_call("lookup_order", {"order_id": 12345}, preamble="Looking it up now."))
    body = {"model": MODEL, "max_tokens": 64, "messages": USER, "tools": [LOOKUP], "stream": True}
    status, headers, raw = post(server, "/v1/messages", body)
    assert status == 200
    assert headers["content-type"].startswith("text/event-stream")
    events = [block.split("\n") for block in raw.decode().strip().split("\n\n")]
    names = [lines[0].removeprefix("event: ") for lines in events]
    data = [json.loads(lines[1].removeprefix("data: ")) for lines in events]
    assert all(d["type"] == name for name, d in zip(names, data, strict=True))
    text_deltas = [d["delta"]["text"] for d in data if _is(d, "text_delta")]
    json_deltas = [d["delta"]["partial_json"] for d in data if _is(d, "input_json_delta")]
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        *["content_block_delta"] * len(text_deltas),
        "content_block_stop",
        "content_block_start",
        *["content_block_delta"] * len(json_deltas),
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert len(text_deltas) > 1
    assert "".join(text_deltas) == "Looking it up now."
    assert json_deltas[0] == ""
    assert json.loads("".join(json_deltas)) == {"order_id": 12345}
    start = data[0]["message"]
    assert (start["content"], start["stop_reason"]) == ([], None)
    assert start["usage"]["output_tokens"] == 1
    assert data[2 + len(text_deltas) + 2]["content_block"]["input"] == {}
    assert data[-2] == {
        "type": "message_delta",
        "delta": {"stop_reason": "tool_use", "stop_sequence": None},
        "usage": {"output_tokens": server.requests[-1].response["usage"]["output_tokens"]},
    }


def _is(event: dict[str, Any], delta_type: str) -> bool:
    return event["type"] == "content_block_delta" and event["delta"]["type"] == delta_type


@pytest.mark.parametrize(
    "reply",
    [
        Reply.text("A fairly long answer, so that it streams in several chunks."),
        Reply.text("SELECT 1", stop_sequence="</sql>"),
        Reply.tool_call("lookup_order", {"order_id": 7}, preamble="Checking."),
        Reply.tool_calls(("lookup_order", {"order_id": 1}), ("lookup_order", {"order_id": 2})),
        Reply.structured({"label": "negative"}),
        Reply.max_tokens("The answer is cut o"),
        Reply.refusal(),
    ],
    ids=["text", "stop_sequence", "tool_call", "parallel", "structured", "max_tokens", "refusal"],
)
def test_a_streamed_final_message_equals_the_non_streaming_answer(
    server: FakeAnthropicServer, client: anthropic.Anthropic, reply: Reply
) -> None:
    server.on(reply)
    params: dict[str, Any] = {"tools": [CLASSIFY, LOOKUP], "tool_choice": FORCE_CLASSIFY}
    plain = create(client, **params)
    with client.messages.stream(model=MODEL, max_tokens=256, messages=USER, **params) as stream:
        streamed = stream.get_final_message()
    assert normalized(streamed) == normalized(plain)
    assert plain.stop_reason == reply.stop_reason


# --- scripting replies ------------------------------------------------------------------------


def test_forced_structured_output_calls_the_forced_tool(
    server: FakeAnthropicServer, client: anthropic.Anthropic
) -> None:
    server.on(Reply.structured({"label": "negative"}), tool_choice_name="classify")
    message = create(client, tools=[LOOKUP, CLASSIFY], tool_choice=FORCE_CLASSIFY)
    (block,) = message.content
    assert block.type == "tool_use"
    assert (block.name, block.input, block.id[:6]) == ("classify", {"label": "negative"}, "toolu_")
    assert message.stop_reason == "tool_use"


def test_unscripted_forced_tools_get_a_minimal_valid_instance(
    client: anthropic.Anthropic,
) -> None:
    schema = {
        "type": "object",
        "properties": {
            "label": {"enum": ["spam", "ham"]},
            "score": {"type": "number", "minimum": 0.5},
            "count": {"type": "integer", "exclusiveMinimum": 3},
            "tags": {"type": "array", "items": {"type": "string", "minLength": 2}, "minItems": 1},
            "flag": {"type": "boolean"},
            "nothing": {"type": "null"},
            "when": {"type": "string", "format": "date"},
            "either": {"anyOf": [{"$ref": "#/$defs/Point"}, {"type": "null"}]},
            "optional": {"type": "string"},
        },
        "required": ["label", "score", "count", "tags", "flag", "nothing", "when", "either"],
        "$defs": {
            "Point": {
                "type": "object",
                "properties": {"x": {"type": "integer"}, "y": {"type": "integer"}},
                "required": ["x"],
            }
        },
    }
    tool = {"name": "record", "input_schema": schema}
    message = create(client, tools=[tool], tool_choice={"type": "tool", "name": "record"})
    assert message.content[0].type == "tool_use"
    assert message.content[0].input == {
        "label": "spam",
        "score": 0.5,
        "count": 4,
        "tags": ["xx"],
        "flag": False,
        "nothing": None,
        "when": "2024-01-01",
        "either": {"x": 0},
    }


def test_unscripted_requests_get_a_short_text_or_a_json_output_format(
    client: anthropic.Anthropic,
) -> None:
    class Verdict(BaseModel):
        label: Literal["positive", "negative"]
        reason: str

    assert create(client).content[0].type == "text"
    parsed = client.messages.parse(
        model=MODEL, max_tokens=64, messages=USER, output_format=Verdict
    ).parsed_output
    assert parsed == Verdict(label="positive", reason="")


def test_a_tool_use_round_trip_is_accepted(
    server: FakeAnthropicServer, client: anthropic.Anthropic
) -> None:
    server.on([Reply.tool_call("lookup_order", {"order_id": 7}), Reply.text("It shipped.")])
    first = create(client, tools=[LOOKUP])
    call = first.content[0]
    assert call.type == "tool_use"
    assert first.stop_reason == "tool_use"
    result = {"type": "tool_result", "tool_use_id": call.id, "content": "shipped on Monday"}
    turns = [*USER, first.to_param(), {"role": "user", "content": [result]}]
    second = create(client, tools=[LOOKUP], messages=turns)
    assert second.content[0].type == "text"
    assert second.content[0].text == "It shipped."
    assert "shipped on Monday" in server.requests[-1].body["messages"][2]["content"][0]["content"]


def test_unpaired_tool_use_and_tool_result_are_rejected(client: anthropic.Anthropic) -> None:
    call = {"type": "tool_use", "id": "toolu_1", "name": "lookup_order", "input": {}}
    result = {"type": "tool_result", "tool_use_id": "toolu_2", "content": "?"}
    asked = [*USER, {"role": "assistant", "content": [call]}]
    with pytest.raises(anthropic.BadRequestError, match="unexpected `tool_use_id`"):
        create(client, messages=[*asked, {"role": "user", "content": [result]}])
    with pytest.raises(anthropic.BadRequestError, match="without `tool_result`"):
        create(client, messages=[*asked, *USER])


def test_malformed_tool_json_breaks_streams_and_degrades_to_empty_input(
    server: FakeAnthropicServer, client: anthropic.Anthropic
) -> None:
    server.on(Reply.malformed_tool_json("lookup_order", '{"order_id": seven}'))
    assert create(client, tools=[LOOKUP]).content[0].input == {}
    with (
        pytest.raises(ValueError, match="Unable to parse tool parameter JSON"),
        client.messages.stream(model=MODEL, max_tokens=64, messages=USER, tools=[LOOKUP]) as s,
    ):
        s.get_final_message()
    server.reset()
    server.on(Reply.malformed_tool_json("lookup_order", "[7]"))  # valid JSON, wrong shape
    assert create(client, tools=[LOOKUP]).content[0].input == [7]


def test_rules_match_in_order_and_lists_are_consumed_then_fall_through(
    server: FakeAnthropicServer, client: anthropic.Anthropic
) -> None:
    server.on(Reply.text("opus"), model="claude-opus-4-1")
    server.on(Reply.text("sql"), system_contains="SQL", message_contains="orders")
    server.on([Reply.text("first"), Reply.text("second")], match=lambda r: not r.tools)
    server.on(lambda request: Reply.text(request.last_user_text.upper()))
    assert create(client, model="claude-opus-4-1").content[0].text == "opus"
    assert create(client, system="Write SQL.", messages=[{"role": "user", "content": "orders"}])
    assert server.requests[-1].response["content"][0]["text"] == "sql"
    texts = [create(client).content[0].text for _ in range(3)]
    assert texts == ["first", "second", USER_TEXT.upper()]
    with pytest.raises(TypeError, match=r"Reply\.text"):
        server.on("positive")  # type: ignore[arg-type]


def test_a_broken_script_answers_500_that_is_not_retried(
    server: FakeAnthropicServer,
) -> None:
    def broken(request: ReceivedRequest) -> Reply:
        raise KeyError("label")

    server.on(broken)
    with (
        anthropic.Anthropic(api_key="k", base_url=server.base_url, max_retries=3) as sdk,
        pytest.raises(anthropic.InternalServerError, match="raised KeyError"),
    ):
        create(sdk)
    assert len(server.requests) == 1


# --- faults ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "error_class", "error_type"),
    [
        (Fault.rate_limited(retry_after=3), anthropic.RateLimitError, "rate_limit_error"),
        (Fault.overloaded(), anthropic.OverloadedError, "overloaded_error"),
        (Fault.server_error(), anthropic.InternalServerError, "api_error"),
        (Fault.bad_request("too long"), anthropic.BadRequestError, "invalid_request_error"),
        (Fault.unauthorized(), anthropic.AuthenticationError, "authentication_error"),
    ],
    ids=["429", "529", "500", "400", "401"],
)
def test_status_faults_raise_the_sdk_exception(
    server: FakeAnthropicServer,
    client: anthropic.Anthropic,
    fault: Fault,
    error_class: type[anthropic.APIStatusError],
    error_type: str,
) -> None:
    server.fail(fault)
    with pytest.raises(error_class) as caught:
        create(client)
    error = caught.value
    assert error.status_code == fault.status
    assert error.body == {
        "type": "error",
        "error": {"type": error_type, "message": fault.message},
        "request_id": error.request_id,
    }
    assert error.response.headers.get("retry-after") == ("3" if fault.status == 429 else None)
    assert server.paid_calls == 0
    assert server.requests[-1].fault == fault


def test_overloaded_is_an_internal_server_error_too() -> None:
    assert issubclass(anthropic.OverloadedError, anthropic.InternalServerError)


def test_dropped_and_slow_answers_are_connection_errors(
    server: FakeAnthropicServer, client: anthropic.Anthropic
) -> None:
    server.fail(Fault.drop_connection(), on_calls=[1])
    server.fail(Fault.slow(0.5), on_calls=[2])
    with pytest.raises(anthropic.APIConnectionError) as dropped:
        create(client)
    assert not isinstance(dropped.value, anthropic.APITimeoutError)
    with pytest.raises(anthropic.APITimeoutError):
        client.with_options(timeout=0.1).messages.create(model=MODEL, max_tokens=9, messages=USER)
    assert server.requests[0].status is None


def test_slow_answers_still_succeed_within_the_timeout(
    server: FakeAnthropicServer, client: anthropic.Anthropic
) -> None:
    server.fail(Fault.slow(0.05))
    started = time.monotonic()
    create(client)
    assert time.monotonic() - started >= 0.05
    assert server.paid_calls == 1


def test_the_sdk_retries_faults_and_obeys_x_should_retry(server: FakeAnthropicServer) -> None:
    server.fail(Fault.rate_limited(retry_after=0.01), on_calls=[1, 2])
    with anthropic.Anthropic(api_key="k", base_url=server.base_url, max_retries=2) as sdk:
        assert create(sdk).content
        retries = [r.headers["x-stainless-retry-count"] for r in server.requests]
        assert retries == ["0", "1", "2"]
        server.reset()
        server.fail(Fault.server_error(should_retry=False))
        with pytest.raises(anthropic.InternalServerError):
            create(sdk)
    assert len(server.requests) == 1


def test_a_stream_can_fail_mid_way_with_an_error_event(
    server: FakeAnthropicServer, client: anthropic.Anthropic
) -> None:
    server.fail(Fault.stream_error("overloaded_error", "Overloaded"))
    with (
        pytest.raises(anthropic.APIStatusError) as caught,
        client.messages.stream(model=MODEL, max_tokens=64, messages=USER) as stream,
    ):
        stream.get_final_message()
    # The SDK raises the error event with the stream's 200 status: not an OverloadedError.
    assert (caught.value.status_code, caught.value.type) == (200, "overloaded_error")
    with pytest.raises(anthropic.OverloadedError):
        create(client)  # the same fault on a non-streaming call is a plain 529


def test_faults_on_given_calls_and_for_matching_requests_only(
    server: FakeAnthropicServer, client: anthropic.Anthropic
) -> None:
    server.fail(Fault.overloaded(), on_calls=[2, 3])
    server.fail(Fault.server_error(), model="claude-opus-4-1")
    outcomes = []
    for _ in range(4):
        try:
            create(client)
            outcomes.append("ok")
        except anthropic.OverloadedError:
            outcomes.append("overloaded")
    assert outcomes == ["ok", "overloaded", "overloaded", "ok"]
    with pytest.raises(anthropic.InternalServerError):
        create(client, model="claude-opus-4-1")


def test_seeded_fault_rates_are_deterministic(
    server: FakeAnthropicServer, client: anthropic.Anthropic
) -> None:
    def pattern() -> list[bool]:
        server.reset()
        server.fail(Fault.server_error(), rate=0.5, seed=7)
        failed = []
        for _ in range(12):
            try:
                create(client)
                failed.append(False)
            except anthropic.InternalServerError:
                failed.append(True)
        return failed

    draws = random.Random(7)
    expected = [draws.random() < 0.5 for _ in range(12)]
    assert pattern() == pattern() == expected
    assert True in expected
    assert False in expected


# --- recording, caching, counting, rate limits ------------------------------------------------


def test_requests_are_recorded_and_paid_calls_counted(
    server: FakeAnthropicServer, client: anthropic.Anthropic
) -> None:
    server.fail(Fault.overloaded(), on_calls=[2])
    create(client)
    with pytest.raises(anthropic.OverloadedError):
        create(client)
    with client.messages.stream(model=MODEL, max_tokens=64, messages=USER) as stream:
        stream.get_final_message()
    client.messages.count_tokens(model=MODEL, messages=USER)
    assert post(server, "/v1/messages", {"model": MODEL})[0] == 400
    records = server.requests
    assert [(r.call, r.method, r.path, r.status) for r in records] == [
        (1, "POST", "/v1/messages", 200),
        (2, "POST", "/v1/messages", 529),
        (3, "POST", "/v1/messages", 200),
        (4, "POST", "/v1/messages/count_tokens", 200),
        (5, "POST", "/v1/messages", 400),
    ]
    assert [r.succeeded for r in records] == [True, False, True, True, False]
    assert records[1].fault == Fault.overloaded()
    assert records[0].headers["authorization"] == "Bearer test-key"
    assert records[0].headers["anthropic-version"]
    assert records[0].body == {"model": MODEL, "max_tokens": 256, "messages": USER}
    assert records[2].stream
    assert records[2].response["content"][0]["type"] == "text"
    assert server.paid_calls == 2
    server.reset()
    assert (server.requests, server.paid_calls) == ([], 0)


def test_a_marked_system_prompt_is_written_then_read_from_the_cache(
    client: anthropic.Anthropic,
) -> None:
    rules = "You label the sentiment of customer reviews. " * 20
    system = [{"type": "text", "text": rules, "cache_control": {"type": "ephemeral"}}]
    first, second = (create(client, system=system).usage for _ in range(2))
    cached = estimate_tokens(rules)
    assert (first.cache_creation_input_tokens, first.cache_read_input_tokens) == (cached, 0)
    assert (second.cache_creation_input_tokens, second.cache_read_input_tokens) == (0, cached)
    assert first.input_tokens == second.input_tokens == estimate_tokens(USER_TEXT)
    other = create(client, system=[{**system[0], "text": rules + "Be brief."}]).usage
    assert other.cache_read_input_tokens == 0
    assert other.cache_creation_input_tokens > cached
    per_model = create(client, model="claude-sonnet-4-6", system=system).usage
    assert per_model.cache_read_input_tokens == 0


def test_each_model_caches_only_from_its_own_minimum_prefix() -> None:
    # Haiku 4.5 needs 4,096 tokens, Opus 4.8 1,024: a ~2,000-token prefix is cached by one only.
    rules = "You label the sentiment of customer reviews, one label each. " * 130
    assert 1024 < estimate_tokens(rules) < 4096
    system = [{"type": "text", "text": rules, "cache_control": {"type": "ephemeral"}}]
    with FakeAnthropicServer() as server:
        client = anthropic.Anthropic(api_key="test", base_url=server.base_url, max_retries=0)
        haiku = [create(client, model="claude-haiku-4-5", system=system).usage for _ in "ab"]
        opus = [create(client, model="claude-opus-4-8", system=system).usage for _ in "ab"]
        client.close()
    assert [(u.cache_creation_input_tokens, u.cache_read_input_tokens) for u in haiku] == [
        (0, 0),
        (0, 0),
    ]
    assert opus[0].cache_creation_input_tokens == estimate_tokens(rules)
    assert opus[1].cache_read_input_tokens == estimate_tokens(rules)


def test_a_one_hour_entry_is_counted_apart(client: anthropic.Anthropic) -> None:
    rules = "You label the sentiment of customer reviews. " * 20
    marked = {"type": "text", "text": rules, "cache_control": {"type": "ephemeral", "ttl": "1h"}}
    usage = create(client, system=[marked]).usage
    assert usage.cache_creation is not None
    assert usage.cache_creation.ephemeral_1h_input_tokens == estimate_tokens(rules)
    assert usage.cache_creation.ephemeral_5m_input_tokens == 0


def test_a_growing_conversation_reads_its_earlier_prefix(client: anthropic.Anthropic) -> None:
    turns: list[dict[str, Any]] = [*USER]
    first = create(client, messages=turns, cache_control={"type": "ephemeral"})
    turns += [first.to_param(), {"role": "user", "content": "And the next one?"}]
    second = create(client, messages=turns, cache_control={"type": "ephemeral"}).usage
    assert first.usage.cache_creation_input_tokens == estimate_tokens(USER_TEXT)
    assert second.cache_read_input_tokens == estimate_tokens(USER_TEXT)
    assert second.cache_creation_input_tokens > 0
    assert second.input_tokens == 0


def test_count_tokens_equals_the_input_of_a_call(client: anthropic.Anthropic) -> None:
    system = [{"type": "text", "text": "Label reviews.", "cache_control": {"type": "ephemeral"}}]
    params: dict[str, Any] = {"model": MODEL, "system": system, "messages": USER}
    counted = client.messages.count_tokens(tools=[CLASSIFY], **params).input_tokens
    usage = client.messages.create(max_tokens=9, tools=[CLASSIFY], **params).usage
    total = usage.input_tokens + usage.cache_creation_input_tokens + usage.cache_read_input_tokens
    assert counted == total > estimate_tokens(USER_TEXT)


def test_rate_limit_headers_count_down_within_the_window(
    server: FakeAnthropicServer, client: anthropic.Anthropic
) -> None:
    remaining = []
    for _ in range(3):
        headers = client.messages.with_raw_response.create(
            model=MODEL, max_tokens=64, messages=USER
        ).headers
        kinds = ("requests", "input-tokens", "output-tokens")
        remaining.append([int(headers[f"anthropic-ratelimit-{k}-remaining"]) for k in kinds])
        assert headers["anthropic-ratelimit-requests-limit"] == "50"
        reset = datetime.fromisoformat(headers["anthropic-ratelimit-output-tokens-reset"])
        assert 0 < (reset - datetime.now(UTC)).total_seconds() <= 60
    assert [r[0] for r in remaining] == [49, 48, 47]
    assert remaining[0][1] > remaining[1][1] > remaining[2][1]
    assert remaining[0][2] > remaining[1][2] > remaining[2][2]


def test_enforced_rate_limits_answer_429_until_the_window_resets() -> None:
    limits = ServerRateLimits(requests_per_minute=2, window_seconds=0.2, enforce=True)
    with (
        FakeAnthropicServer(rate_limits=limits) as server,
        anthropic.Anthropic(api_key="k", base_url=server.base_url, max_retries=0) as sdk,
    ):
        create(sdk)
        create(sdk)
        with pytest.raises(anthropic.RateLimitError) as caught:
            create(sdk)
        assert caught.value.response.headers["retry-after"] == "1"
        assert caught.value.response.headers["anthropic-ratelimit-requests-remaining"] == "0"
        time.sleep(0.25)
        create(sdk)
        assert server.paid_calls == 3


# --- HTTP-level errors and lifecycle --------------------------------------------------------


VERSION_ONLY = {"anthropic-version": "2023-06-01"}
KEY_ONLY = {"x-api-key": "k"}
BAD_REQUESTS = {
    "unknown-path": ("/v1/nothing", {}, None, 404, "not_found_error", "Not found"),
    "no-key": ("/v1/messages", {}, VERSION_ONLY, 401, "authentication_error", "x-api-key header"),
    "no-version": ("/v1/messages", {}, KEY_ONLY, 400, "invalid_request_error", "anthropic-version"),
    "no-model": ("/v1/messages", {"max_tokens": 9, "messages": USER}, None, 400,
                 "invalid_request_error", "model: Field required"),
    "no-max-tokens": ("/v1/messages", {"model": MODEL, "messages": USER}, None, 400,
                      "invalid_request_error", "max_tokens: Field required"),
    "no-messages": ("/v1/messages", {"model": MODEL, "max_tokens": 9}, None, 400,
                    "invalid_request_error", "messages: Field required"),
    "count-no-messages": ("/v1/messages/count_tokens", {"model": MODEL}, None, 400,
                          "invalid_request_error", "messages: Field required"),
}  # fmt: skip


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "error_type", "message"),
    list(BAD_REQUESTS.values()),
    ids=list(BAD_REQUESTS),
)
def test_bad_requests_get_the_api_error_bodies(
    server: FakeAnthropicServer,
    path: str,
    body: dict[str, Any],
    headers: dict[str, str] | None,
    status: int,
    error_type: str,
    message: str,
) -> None:
    got_status, got_headers, raw = post(server, path, body, headers)
    assert got_status == status
    assert json.loads(raw) == {
        "type": "error",
        "error": {"type": error_type, "message": json.loads(raw)["error"]["message"]},
        "request_id": got_headers["request-id"],
    }
    assert message in json.loads(raw)["error"]["message"]
    assert server.paid_calls == 0


def test_a_configured_api_key_rejects_others() -> None:
    with (
        FakeAnthropicServer(api_key="right") as server,
        anthropic.Anthropic(api_key="wrong", base_url=server.base_url, max_retries=0) as sdk,
    ):
        with pytest.raises(anthropic.AuthenticationError, match="invalid x-api-key"):
            create(sdk)
        assert create(sdk.with_options(api_key="right")).content


def test_stopping_closes_idle_and_busy_connections_without_leaking_threads() -> None:
    failures: list[BaseException] = []
    with FakeAnthropicServer() as server:
        sdk = anthropic.Anthropic(api_key="k", base_url=server.base_url, max_retries=0)
        create(sdk)  # leaves an idle keep-alive connection open
        server.fail(Fault.slow(30))

        def call() -> None:
            try:
                create(sdk)
            except anthropic.APIConnectionError as error:
                failures.append(error)

        busy = threading.Thread(target=call)
        busy.start()
        while len(server.requests) < 2:
            time.sleep(0.01)
        started = time.monotonic()
    assert time.monotonic() - started < 1.0
    busy.join()
    sdk.close()
    assert len(failures) == 1
    assert not [t for t in threading.enumerate() if "process_request" in t.name]
    assert not [t for t in threading.enumerate() if t.name.startswith("fake-anthropic")]
    with pytest.raises(RuntimeError, match="start the fake server first"):
        _ = server.base_url


@pytest.mark.anyio
async def test_the_async_client_streams_and_runs_concurrently(
    server: FakeAnthropicServer,
) -> None:
    server.on(lambda request: Reply.text(f"echo {request.last_user_text}"))
    async with anthropic.AsyncAnthropic(
        api_key="k", base_url=server.base_url, max_retries=0
    ) as sdk:
        answers: dict[int, str] = {}

        async def ask(n: int) -> None:
            message = await sdk.messages.create(
                model=MODEL, max_tokens=32, messages=[{"role": "user", "content": str(n)}]
            )
            answers[n] = message.content[0].text

        async with anyio.create_task_group() as group:
            for n in range(5):
                group.start_soon(ask, n)
        async with sdk.messages.stream(model=MODEL, max_tokens=32, messages=USER) as stream:
            streamed = await stream.get_final_message()
    assert answers == {n: f"echo {n}" for n in range(5)}
    assert streamed.content[0].text == f"echo {USER_TEXT}"
    assert server.paid_calls == 6


def test_the_pytest_plugin_fixture_serves(fake_anthropic: FakeAnthropicServer) -> None:
    fake_anthropic.on(Reply.text("from the fixture"))
    with anthropic.Anthropic(api_key="k", base_url=fake_anthropic.base_url) as sdk:
        assert create(sdk).content[0].text == "from the fixture"
