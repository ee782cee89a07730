"""The rate limiter's queue and what it tells: earliest-started runs first, and which limit
(from where) holds calls back, down to the batch's progress line."""

from __future__ import annotations

import anyio
import pytest

from microagents._model import Message, ModelRequest, ModelResponse, TextBlock, Usage
from microagents._ratelimit import RUN_ORDER_LABEL, RateLimitedModel, Throttling
from microagents._tiers import RateLimits, TierTable
from microagents.testing import FakeClock, FakeModel

HAIKU = "claude-haiku-4-5"


def ask(order: int | None = None, text: str = "x") -> ModelRequest:
    metadata = {} if order is None else {RUN_ORDER_LABEL: str(order)}
    return ModelRequest(HAIKU, (Message.user(text),), metadata=metadata)


class ManualClock:
    """Time moves only when the test says so, so that a test can look at the queue while
    calls wait in it."""

    def __init__(self) -> None:
        self.time = 0.0
        self._moved = anyio.Event()

    def now(self) -> float:
        return self.time

    async def sleep(self, seconds: float) -> None:
        until = self.time + seconds
        while self.time < until:
            await self._moved.wait()

    def advance(self, seconds: float) -> None:
        self.time += seconds
        self._moved.set()
        self._moved = anyio.Event()


def finish_times(runs: int, calls: int, *, labelled: bool) -> list[tuple[int, float]]:
    """(run, fake time it finished) in finishing order, for `runs` runs in flight making
    `calls` calls each at 180 requests a minute (3 a second)."""
    clock = FakeClock()
    tiers = TierTable().with_tier("haiku", limits=RateLimits(180, None, None))
    model = RateLimitedModel(FakeModel(lambda r: "ok"), tiers, clock=clock)
    finished: list[tuple[int, float]] = []

    async def run(order: int) -> None:
        for _ in range(calls):
            await model.complete(ask(order if labelled else None))
        finished.append((order, clock.now()))

    async def batch() -> None:
        async with anyio.create_task_group() as group:
            for order in range(1, runs + 1):
                group.start_soon(run, order)

    anyio.run(batch)
    return finished


def test_runs_that_started_first_finish_first() -> None:
    """32 runs of 3 calls each: the first run finishes after its own few calls, not after
    everyone's first ones, and runs finish in the order they started."""
    finished = finish_times(32, 3, labelled=True)
    assert [order for order, _ in finished] == list(range(1, 33))
    assert finished[0][1] <= 2.0
    # 96 calls at 3 a second, the first 3 at once: the ordering lost no capacity.
    assert finished[-1][1] == pytest.approx(31.0, abs=0.5)
    # In arrival order (calls with no run order), every run's first call came first.
    assert finish_times(32, 3, labelled=False)[0][1] >= 20.0


def test_calls_outside_any_run_go_in_arrival_order() -> None:
    clock = ManualClock()
    tiers = TierTable().with_tier("haiku", limits=RateLimits(60, None, None))
    model = RateLimitedModel(FakeModel(lambda r: "ok"), tiers, clock=clock)
    sent: list[str] = []

    async def call(name: str) -> None:
        await model.complete(ask(text=name))
        sent.append(name)

    async def main() -> None:
        async with anyio.create_task_group() as group:
            for name in "abcd":
                group.start_soon(call, name)
                await anyio.wait_all_tasks_blocked()
            for _ in range(3):
                clock.advance(1.0)
                await anyio.wait_all_tasks_blocked()

    anyio.run(main)
    assert sent == list("abcd")


@pytest.mark.parametrize(
    ("tiers", "expected"),
    [
        pytest.param(
            TierTable(),
            Throttling(HAIKU, "haiku", "requests", 50, "default", 3, 0.0),
            id="default",
        ),
        pytest.param(
            TierTable().with_tier("haiku", limits=RateLimits(requests_per_minute=20)),
            Throttling(HAIKU, "haiku", "requests", 20, "config", 3, 0.0),
            id="config",
        ),
        pytest.param(
            TierTable().with_tier("haiku", limits=RateLimits(None, 6_000, None)),
            Throttling(HAIKU, "haiku", "input tokens", 6_000, "config", 3, 0.0),
            id="config-input-tokens",
        ),
        pytest.param(
            TierTable().with_tier("fast", model="claude-x-1"),
            Throttling("claude-x-1", "fast", "requests", 50, "default", 3, 0.0),
            id="a-tier-of-ours",
        ),
    ],
)
def test_the_snapshot_names_the_limit_and_where_it_came_from(
    tiers: TierTable, expected: Throttling
) -> None:
    clock = ManualClock()
    model = RateLimitedModel(FakeModel(lambda r: "ok"), tiers, clock=clock)
    long_text = "word " * 800  # ~1,000 tokens estimated: over 6,000 a minute's burst of 100

    async def main() -> tuple[Throttling, ...]:
        async with anyio.create_task_group() as group:
            for order in range(1, 5):
                request = ask(order, long_text)
                group.start_soon(model.complete, ModelRequest(expected.model, request.messages))
            await anyio.wait_all_tasks_blocked()
            seen = model.throttling()
            group.cancel_scope.cancel()
        return seen

    assert anyio.run(main) == (expected,)
    assert model.throttling() == ()  # the cancelled calls left the queue


def test_the_snapshot_says_when_the_api_headers_set_the_limit() -> None:
    headers = {
        "anthropic-ratelimit-requests-limit": "30",
        "anthropic-ratelimit-requests-remaining": "0",
    }
    answer = ModelResponse((TextBlock("ok"),), "end_turn", Usage(1, 1), HAIKU, rate_limits=headers)
    clock = ManualClock()
    model = RateLimitedModel(FakeModel(lambda r: answer), TierTable(), clock=clock)

    async def main() -> tuple[Throttling, ...]:
        await model.complete(ask(1))
        async with anyio.create_task_group() as group:
            group.start_soon(model.complete, ask(2))
            await anyio.wait_all_tasks_blocked()
            clock.advance(1.0)  # less than the 2 s a call takes at 30 a minute
            await anyio.wait_all_tasks_blocked()
            seen = model.throttling()
            clock.advance(1.0)
        return seen

    (seen,) = anyio.run(main)
    assert (seen.limit, seen.per_minute, seen.source) == ("requests", 30, "API headers")
    assert seen.describe() == (
        "haiku (claude-haiku-4-5) 30 requests/min (from the API's rate-limit headers) · "
        "1 call waiting"
    )
    assert model.throttling() == ()


def test_cancelled_waiters_leave_the_queue_and_take_no_capacity() -> None:
    clock = ManualClock()
    tiers = TierTable().with_tier("haiku", limits=RateLimits(60, None, None))
    model = RateLimitedModel(FakeModel(lambda r: "ok"), tiers, clock=clock)
    sent: list[int] = []

    async def call(order: int) -> None:
        await model.complete(ask(order))
        sent.append(order)

    async def main() -> None:
        async with anyio.create_task_group() as group:
            scopes = {}
            for order in (1, 2, 3, 4, 5):
                scopes[order] = scope = anyio.CancelScope()

                async def in_scope(order: int = order, scope: anyio.CancelScope = scope) -> None:
                    with scope:
                        await call(order)

                group.start_soon(in_scope)
                await anyio.wait_all_tasks_blocked()
            assert sent == [1]  # the one second's burst; 2 drives the queue, 3-5 wait
            scopes[2].cancel()  # the driver
            scopes[4].cancel()
            await anyio.wait_all_tasks_blocked()
            assert model.throttling()[0].waiting == 2
            for _ in range(2):
                clock.advance(1.0)
                await anyio.wait_all_tasks_blocked()

    anyio.run(main)
    assert sent == [1, 3, 5]
    assert clock.time == 2.0  # one call a second: the cancelled calls used no capacity


def test_a_call_cancelled_after_its_turn_came_gives_the_capacity_back() -> None:
    clock = ManualClock()
    tiers = TierTable().with_tier("haiku", limits=RateLimits(60, None, None))
    inner = FakeModel(lambda r: "ok")
    model = RateLimitedModel(inner, tiers, clock=clock)

    async def main() -> None:
        await model.complete(ask(1))  # the one second's burst
        async with anyio.create_task_group() as group:
            group.start_soon(model.complete, ask(3))  # queues first: it drives
            await anyio.wait_all_tasks_blocked()
            late = anyio.CancelScope()

            async def granted_then_cancelled() -> None:
                with late:
                    await model.complete(ask(2))

            group.start_soon(granted_then_cancelled)  # started earlier: the head
            await anyio.wait_all_tasks_blocked()
            # The driver wakes first and hands the second to 2; 2 then sees its cancellation.
            clock.advance(1.0)
            late.cancel()
            await anyio.wait_all_tasks_blocked()

    anyio.run(main)
    assert [r.metadata[RUN_ORDER_LABEL] for r in inner.requests] == ["1", "3"]
    assert clock.time == 1.0  # 3 took the second 2 gave back, without waiting for another
