"""The Anthropic back-end, end to end through the real SDK and the loopback fake server."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable

import anyio
import pytest
from pydantic import BaseModel

from microagents.errors import (
    AuthenticationError,
    InvalidRequestError,
    ModelConnectionError,
    OverloadedError,
    RateLimitedError,
)
from microagents.models._anthropic import AnthropicModel
from microagents.models._backends import anthropic_model
from microagents.models._cache import CachedModel
from microagents.models._protocol import (
    Message,
    Model,
    ModelRequest,
    ModelResponse,
    StreamEnd,
    TextBlock,
    TextDelta,
    ToolChoice,
    ToolDefinition,
    ToolResultBlock,
    ToolUseBlock,
)
from microagents.models._protocol import aclose_inner as aclose
from microagents.models._ratelimit import RateLimitedModel
from microagents.models._retry import RetryingModel, RetryPolicy
from microagents.models._tiers import RateLimits, TierTable
from microagents.testing import FakeAnthropicServer, FakeClock, Fault, Reply, ServerRateLimits

HAIKU = "claude-haiku-4-5"


class Route(BaseModel):
    category: str
    confidence: float


ROUTE_TOOL = ToolDefinition("route", "Give the route.", Route.model_json_schema())


def ask(text: str = "hello", **changes: object) -> ModelRequest:
    fields: dict[str, object] = {"model": HAIKU, "messages": (Message.user(text),), **changes}
    return ModelRequest(**fields)  # type: ignore[arg-type]


def backend(server: FakeAnthropicServer) -> AnthropicModel:
    return AnthropicModel(api_key="sk-test-key", base_url=server.base_url, timeout=5)


Build = Callable[[AnthropicModel], Model]


def complete(
    server: FakeAnthropicServer, *requests: ModelRequest, build: Build = lambda m: m
) -> list[ModelResponse]:
    """Send `requests` in order through `build(back-end)`, in one event loop, closing the
    back-end's connection pool at the end (a pool belongs to its loop)."""

    async def main() -> list[ModelResponse]:
        async with backend(server) as model:
            stack = build(model)
            return [await stack.complete(request) for request in requests]

    return anyio.run(main)


class RecordingSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def test_plain_text_reply_with_usage_cost_and_request_id(
    fake_anthropic: FakeAnthropicServer,
) -> None:
    fake_anthropic.on(Reply.text("Hello there"))
    (response,) = complete(fake_anthropic, ask())
    assert response.text == "Hello there"
    assert response.stop_reason == "end_turn"
    assert response.model == HAIKU
    assert response.request_id == fake_anthropic.requests[0].request_id
    usage = response.usage
    assert usage.input_tokens > 0
    assert usage.output_tokens > 0
    # Haiku 4.5 list price: $1 / MTok in, $5 / MTok out.
    assert response.cost_usd == pytest.approx(
        (usage.input_tokens * 1 + usage.output_tokens * 5) / 1e6
    )
    sent = fake_anthropic.requests[0]
    assert "temperature" not in sent.body  # the 2026-10-21 API refuses sampling parameters
    assert "anthropic-ratelimit-requests-remaining" in response.rate_limits


def test_forced_structured_output_validates_into_a_pydantic_model(
    fake_anthropic: FakeAnthropicServer,
) -> None:
    fake_anthropic.on(Reply.structured({"category": "billing", "confidence": 0.91}))
    request = ask(tools=(ROUTE_TOOL,), tool_choice=ToolChoice("tool", "route"))
    (response,) = complete(fake_anthropic, request)
    (call,) = response.tool_uses
    assert Route.model_validate(call.input) == Route(category="billing", confidence=0.91)
    body = fake_anthropic.requests[0].body
    assert body["tool_choice"] == {"type": "tool", "name": "route"}
    assert body["tools"][0]["input_schema"]["required"] == ["category", "confidence"]


def test_tool_use_round_trip(fake_anthropic: FakeAnthropicServer) -> None:
    lookup = ToolDefinition(
        "orders.lookup",
        "Find an order.",
        {"type": "object", "properties": {"id": {"type": "string"}}},
    )
    fake_anthropic.on([Reply.tool_call("orders.lookup", {"id": "A-7"}), Reply.text("It shipped.")])

    async def conversation() -> str:
        async with backend(fake_anthropic) as model:
            return await talk(model)

    async def talk(model: AnthropicModel) -> str:
        first = await model.complete(ask("Where is A-7?", tools=(lookup,)))
        (call,) = first.tool_uses
        assert (call.name, dict(call.input)) == ("orders.lookup", {"id": "A-7"})
        second = await model.complete(
            ask(
                "Where is A-7?",
                tools=(lookup,),
                messages=(
                    Message.user("Where is A-7?"),
                    Message("assistant", first.content),
                    Message("user", (ToolResultBlock(call.id, '{"status": "shipped"}'),)),
                ),
            )
        )
        return second.text

    assert anyio.run(conversation) == "It shipped."
    sent = fake_anthropic.requests[1].body["messages"]
    assert sent[1]["content"][0]["type"] == "tool_use"
    assert sent[2]["content"][0] == {
        "type": "tool_result",
        "tool_use_id": fake_anthropic.requests[1].body["messages"][1]["content"][0]["id"],
        "content": '{"status": "shipped"}',
        "is_error": False,
    }


def test_streaming_assembles_the_same_message(fake_anthropic: FakeAnthropicServer) -> None:
    text = "A streamed answer that arrives in several small pieces."
    fake_anthropic.on(Reply.text(text))

    async def both() -> tuple[list[str], object, object]:
        deltas: list[str] = []
        final = None
        async with backend(fake_anthropic) as model:
            async for event in model.stream(ask()):
                if isinstance(event, TextDelta):
                    deltas.append(event.text)
                elif isinstance(event, StreamEnd):
                    final = event.response
            plain = await model.complete(ask())
        return deltas, final, plain

    deltas, streamed, plain = anyio.run(both)
    assert len(deltas) > 1
    assert "".join(deltas) == text
    assert streamed.content == plain.content  # type: ignore[attr-defined]
    assert streamed.usage == plain.usage  # type: ignore[attr-defined]
    assert streamed.time_to_first_token is not None  # type: ignore[attr-defined]
    assert fake_anthropic.requests[0].body["stream"] is True


def test_429_with_retry_after_is_retried_after_that_long(
    fake_anthropic: FakeAnthropicServer,
) -> None:
    fake_anthropic.fail(Fault.rate_limited(retry_after=1), on_calls=[1])
    fake_anthropic.on(Reply.text("ok"))
    sleep = RecordingSleep()
    (response,) = complete(fake_anthropic, ask(), build=lambda m: RetryingModel(m, sleep=sleep))
    assert response.text == "ok"
    assert response.attempts == 2
    assert sleep.delays == [1.0]
    assert [r.status for r in fake_anthropic.requests] == [429, 200]


@pytest.mark.parametrize(
    "fault", [Fault.overloaded(), Fault.server_error(), Fault.drop_connection()]
)
def test_overloaded_server_errors_and_dropped_connections_are_retried(
    fake_anthropic: FakeAnthropicServer, fault: Fault
) -> None:
    fake_anthropic.fail(fault, on_calls=[1, 2])
    fake_anthropic.on(Reply.text("ok"))
    sleep = RecordingSleep()
    (response,) = complete(
        fake_anthropic, ask(), build=lambda m: RetryingModel(m, sleep=sleep, rng=random.Random(1))
    )
    assert response.attempts == 3
    assert len(sleep.delays) == 2
    assert sleep.delays[1] > sleep.delays[0]  # exponential backoff
    assert fake_anthropic.paid_calls == 1


@pytest.mark.parametrize(
    ("fault", "error", "advice"),
    [
        (Fault.bad_request("max_tokens: too large"), InvalidRequestError, "max_tokens: too large"),
        (Fault.unauthorized(), AuthenticationError, "check ANTHROPIC_API_KEY"),
    ],
)
def test_client_errors_are_not_retried(
    fake_anthropic: FakeAnthropicServer, fault: Fault, error: type[Exception], advice: str
) -> None:
    fake_anthropic.fail(fault)
    sleep = RecordingSleep()
    with pytest.raises(error, match=advice) as raised:
        complete(fake_anthropic, ask(), build=lambda m: RetryingModel(m, sleep=sleep))
    assert sleep.delays == []
    assert len(fake_anthropic.requests) == 1
    assert raised.value.request_id == fake_anthropic.requests[0].request_id  # type: ignore[attr-defined]


def test_retries_give_up_with_the_last_error(fake_anthropic: FakeAnthropicServer) -> None:
    fake_anthropic.fail(Fault.overloaded())
    policy = RetryPolicy(max_attempts=3)
    with pytest.raises(OverloadedError):
        complete(
            fake_anthropic, ask(), build=lambda m: RetryingModel(m, policy, sleep=RecordingSleep())
        )
    assert len(fake_anthropic.requests) == 3


def test_x_should_retry_false_is_obeyed(fake_anthropic: FakeAnthropicServer) -> None:
    fake_anthropic.fail(Fault.server_error(should_retry=False))
    with pytest.raises(Exception, match="the API failed"):
        complete(fake_anthropic, ask(), build=lambda m: RetryingModel(m, sleep=RecordingSleep()))
    assert len(fake_anthropic.requests) == 1


def test_missing_api_key_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(AuthenticationError, match="export it, or run with --backend simulate"):
        anyio.run(AnthropicModel().complete, ask())


def test_connection_refused_is_a_connection_error() -> None:
    with FakeAnthropicServer() as server:
        url = server.base_url

    async def call() -> None:
        async with AnthropicModel(api_key="sk-test", base_url=url, timeout=2) as model:
            await model.complete(ask())

    with pytest.raises(ModelConnectionError, match="ANTHROPIC_BASE_URL"):
        anyio.run(call)


def test_burst_of_100_calls_stays_under_60_rpm() -> None:
    clock = FakeClock()
    # The server says "60 RPM" in its headers; its own counting window is made tiny because
    # it runs on real time while the limiter runs on the fake clock.
    limits = ServerRateLimits(
        requests_per_minute=60,
        input_tokens_per_minute=10**7,
        output_tokens_per_minute=10**7,
        window_seconds=0.001,
    )
    with FakeAnthropicServer(rate_limits=limits) as server:
        server.on(Reply.text("ok"))
        tiers = TierTable().with_tier("haiku", limits=RateLimits(60, None, None))
        sent_at: list[float] = []

        class Stamp:
            """Notes the (fake) time at which the limiter lets each call through."""

            def __init__(self, inner: Model) -> None:
                self.inner = inner

            async def complete(self, request: ModelRequest) -> ModelResponse:
                sent_at.append(clock.now())
                return await self.inner.complete(request)

        async def burst() -> None:
            async with backend(server) as inner:
                model = RateLimitedModel(Stamp(inner), tiers, clock=clock)

                async def one() -> None:
                    await model.complete(ask())

                async with anyio.create_task_group() as group:
                    for _ in range(100):
                        group.start_soon(one)

        anyio.run(burst)
    assert len(sent_at) == 100
    sent_at.sort()
    # Any 60-second window holds at most 60 calls (+1 for the bucket's one-second burst).
    for i, start in enumerate(sent_at):
        assert sum(1 for t in sent_at[i:] if t < start + 60) <= 61
    assert sent_at[-1] == pytest.approx(99.0, abs=1.0)  # ~1 per second after the first


def test_a_429_pauses_every_caller_of_that_model(fake_anthropic: FakeAnthropicServer) -> None:
    fake_anthropic.fail(Fault.rate_limited(retry_after=5), on_calls=[1])
    fake_anthropic.on(Reply.text("ok"))
    clock = FakeClock()
    tiers = TierTable().with_tier("haiku", limits=RateLimits(6000, None, None))
    (response,) = complete(
        fake_anthropic,
        ask(),
        build=lambda m: RetryingModel(
            RateLimitedModel(m, tiers, clock=clock), sleep=RecordingSleep()
        ),
    )
    # The retry waited in the limiter for the 5 s the API asked for; the wait shows.
    assert response.rate_limit_wait == pytest.approx(5.0, abs=0.1)
    assert clock.now() == pytest.approx(5.0, abs=0.1)


def marks(body: dict[str, object]) -> list[str]:
    """Where a request body carries cache marks: `tools`, `system`, `message`."""
    found = []
    for part, blocks in (
        ("tools", body.get("tools", [])),
        ("system", body.get("system", [])),
        ("message", body["messages"][0]["content"]),  # type: ignore[index]
    ):
        found += [part for b in blocks if "cache_control" in b]  # type: ignore[union-attr]
    return found


def test_the_cache_mark_goes_where_the_repeating_part_ends(
    fake_anthropic: FakeAnthropicServer,
) -> None:
    first = Message("user", (TextBlock("Rules that never change."), TextBlock(" The input.")))
    common = {"messages": (first,), "system": "You route.", "tools": (ROUTE_TOOL,)}
    complete(
        fake_anthropic,
        ask(**common, cache_point="message"),
        ask(**common, cache_point="system"),
        ask(**common, cache_point="tools"),
        ask(**common, cache_point="none"),
        ask(**{**common, "system": None}, cache_point="system"),  # no system: the tools
    )
    bodies = [r.body for r in fake_anthropic.requests]
    assert [marks(b) for b in bodies] == [["message"], ["system"], ["tools"], [], ["tools"]]
    assert bodies[0]["messages"][0]["content"][0]["cache_control"] == {"type": "ephemeral"}


def test_a_long_repeating_prefix_is_written_once_then_read(
    fake_anthropic: FakeAnthropicServer,
) -> None:
    # The fake applies Haiku 4.5's real minimum (4,096 tokens): a short prefix is marked but
    # never cached, a long one is written by the first call and read by the next.
    long_system = "You route support tickets. " * 1000  # ~27,000 characters, ~6,700 tokens
    responses = complete(
        fake_anthropic,
        ask(system="You route tickets."),
        ask(system="You route tickets."),
        ask(system=long_system),
        ask("again", system=long_system),
    )
    usages = [r.usage for r in responses]
    assert [u.cache_creation_input_tokens for u in usages[:2]] == [0, 0]
    assert usages[2].cache_creation_input_tokens > 6000
    assert usages[3].cache_read_input_tokens == usages[2].cache_creation_input_tokens
    assert usages[3].cache_hit_rate > 0.99


def test_a_one_hour_ttl_is_sent_and_priced_as_such(fake_anthropic: FakeAnthropicServer) -> None:
    long_system = "You route support tickets. " * 1000

    async def main() -> ModelResponse:
        async with AnthropicModel(
            api_key="sk-test-key", base_url=fake_anthropic.base_url, cache_ttl="1h"
        ) as model:
            return await model.complete(ask(system=long_system))

    response = anyio.run(main)
    (request,) = fake_anthropic.requests
    assert request.body["system"][0]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
    written = response.usage.cache_creation_1h_input_tokens
    assert written == response.usage.cache_creation_input_tokens > 6000
    price = TierTable().price_of(HAIKU)
    assert price is not None
    usage = response.usage
    expected = (usage.input_tokens * 1.0 + written * 2.0 + usage.output_tokens * 5.0) / 1e6
    assert response.cost_usd == pytest.approx(expected)


def test_cost_is_cache_aware() -> None:
    price = TierTable().resolve("haiku").price
    assert price is not None
    from microagents.models._protocol import Usage

    usage = Usage(
        input_tokens=1000,
        output_tokens=200,
        cache_creation_input_tokens=4000,
        cache_read_input_tokens=8000,
    )
    expected = (1000 * 1.0 + 4000 * 1.25 + 8000 * 0.1 + 200 * 5.0) / 1e6
    assert price.cost(usage) == pytest.approx(expected)
    assert price.cost(usage, batch=True) == pytest.approx(expected / 2)
    assert TierTable().resolve("opus").price.cost(Usage(output_tokens=10**6)) == 25.0  # type: ignore[union-attr]


def test_response_cache_makes_the_second_identical_call_free(
    fake_anthropic: FakeAnthropicServer, tmp_path: object
) -> None:
    fake_anthropic.on(Reply.structured({"category": "billing", "confidence": 0.9}))
    request = ask(tools=(ROUTE_TOOL,), tool_choice=ToolChoice("tool", "route"))
    caches: list[CachedModel] = []

    def cached(model: AnthropicModel) -> Model:
        caches.append(CachedModel(model, f"{tmp_path}/cache.sqlite3"))
        return caches[0]

    first, second = complete(fake_anthropic, request, request, build=cached)
    caches[0].close()
    assert fake_anthropic.paid_calls == 1  # the fake server's log proves the second was free
    assert second.cached  # type: ignore[attr-defined]
    assert second.cost_usd == 0.0  # type: ignore[attr-defined]
    assert second.content == first.content  # type: ignore[attr-defined]
    assert isinstance(second.content[0], ToolUseBlock)  # type: ignore[attr-defined]


def test_response_cache_skips_sampled_requests(
    fake_anthropic: FakeAnthropicServer, tmp_path: object
) -> None:
    request = ask(temperature=0.7)
    caches: list[CachedModel] = []

    def cached(model: AnthropicModel) -> Model:
        caches.append(CachedModel(model, f"{tmp_path}/cache.sqlite3"))
        return caches[0]

    complete(fake_anthropic, request, request, build=cached)
    caches[0].close()
    assert fake_anthropic.paid_calls == 2


def test_the_assembled_stack_retries_limits_and_caches(
    fake_anthropic: FakeAnthropicServer, tmp_path: object
) -> None:
    fake_anthropic.fail(Fault.overloaded(), on_calls=[1])

    async def twice() -> ModelResponse:
        model = anthropic_model(
            api_key="sk-test",
            base_url=fake_anthropic.base_url,
            retry=RetryPolicy(base_delay=0.01),
            cache_path=f"{tmp_path}/c.sqlite3",
        )
        try:
            await model.complete(ask())
            return await model.complete(ask())
        finally:
            await aclose(model)

    response = anyio.run(twice)
    assert response.cached
    assert [r.status for r in fake_anthropic.requests] == [529, 200]


def test_rate_limited_error_carries_retry_after(fake_anthropic: FakeAnthropicServer) -> None:
    fake_anthropic.fail(Fault.rate_limited(retry_after=7))
    with pytest.raises(RateLimitedError) as raised:
        complete(fake_anthropic, ask())
    assert raised.value.retry_after == 7.0
    assert raised.value.retryable


def test_stream_with_deltas_shows_the_answer_as_it_arrives(
    fake_anthropic: FakeAnthropicServer,
) -> None:
    """Through the model stack (retries, rate limits) on the real SDK's SSE events."""
    import json

    import microagents as ma

    answer = {"category": "billing", "confidence": 0.93, "reason": "double charge"}
    fake_anthropic.on(Reply.structured(answer))
    workflow = ma.Project(".").load_workflow("workflows/support_triage.yaml")

    async def main() -> list[object]:
        model = anthropic_model(api_key="sk-test", base_url=fake_anthropic.base_url)
        async with ma.Engine(model) as engine:
            events = []
            async with contextlib.aclosing(
                engine.stream(workflow, {"ticket": "charged twice"}, deltas=True)
            ) as stream:
                async for event in stream:
                    events.append(event)
            return events

    events = anyio.run(main)
    deltas = [e for e in events if isinstance(e, ma.results.OutputDelta) and e.node == "route"]
    assert len(deltas) > 1  # it arrived in pieces
    assert json.loads("".join(d.text for d in deltas)) == answer
    assert all(r.body.get("stream") is True for r in fake_anthropic.requests)
    assert isinstance(events[-1], ma.results.RunFinished)
