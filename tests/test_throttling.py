"""The rate limiter's queue and what it tells: earliest-started runs first, and which limit
(from where) holds calls back, down to the batch's progress line."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

import microagents as ma
from microagents.cli._run import _PlainProgress
from microagents.models._protocol import Message, ModelRequest, ModelResponse, TextBlock, Usage
from microagents.models._ratelimit import RUN_ORDER_LABEL, RateLimitedModel, Throttling
from microagents.models._tiers import RateLimits, TierTable
from microagents.runtime._batch import BatchProgress, BatchRunner
from microagents.testing import FakeAnthropicServer, FakeClock, FakeModel, Reply, ServerRateLimits

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


class ScaledClock:
    """Real time, run `SCALE` times faster: the default 50 requests a minute take a test
    about a second, while calls still go over the wire in real time."""

    SCALE = 20.0

    def now(self) -> float:
        return time.monotonic() * self.SCALE

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds / self.SCALE)


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
    assert held_back(tiers, expected.model) == (expected,)


def test_a_limit_set_in_the_project_file_is_config_even_at_the_default_value(
    tmp_path: Path,
) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.microagents.tiers.haiku]\nrpm = 50\n")
    tiers = TierTable.load(tmp_path, environ={})
    expected = Throttling(HAIKU, "haiku", "requests", 50, "config", 3, 0.0)
    assert held_back(tiers, HAIKU) == (expected,)
    assert expected.describe() == (
        "haiku (claude-haiku-4-5) 50 requests/min (config: rpm under "
        "[tool.microagents.tiers.haiku]) · 3 calls waiting"
    )


def held_back(tiers: TierTable, model_id: str) -> tuple[Throttling, ...]:
    """The limiter's snapshot while four calls of ~1,000 input tokens to `model_id` are in:
    one sent, three queued."""
    model = RateLimitedModel(FakeModel(lambda r: "ok"), tiers, clock=ManualClock())
    # ~1,000 tokens estimated: more than the one second's burst of 6,000 input tokens a minute.
    messages = (Message.user("word " * 800),)

    async def main() -> tuple[Throttling, ...]:
        async with anyio.create_task_group() as group:
            for order in range(1, 5):
                request = ModelRequest(model_id, messages, metadata={RUN_ORDER_LABEL: str(order)})
                group.start_soon(model.complete, request)
            await anyio.wait_all_tasks_blocked()
            seen = model.throttling()
            group.cancel_scope.cancel()
        return seen

    seen = anyio.run(main)
    assert model.throttling() == ()  # the cancelled calls left the queue
    return seen


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


# -- what a batch shows ---------------------------------------------------------------------

DEFAULT_HAIKU = Throttling(HAIKU, "haiku", "requests", 50, "default", 31, 4.25)


def progress(*throttling: Throttling) -> BatchProgress:
    return BatchProgress(
        done=3,
        failed=0,
        escalated=0,
        tokens=1200,
        cost_usd=0.0021,
        elapsed=12.0,
        to_do=200,
        resumed=0,
        skipped_by_budget=0,
        simulated=False,
        lines_read=64,
        throttling=throttling,
    )


def test_the_progress_line_says_what_throttles_and_how_to_change_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    observer = _PlainProgress()
    observer.update(progress(DEFAULT_HAIKU))
    observer.update(progress())
    throttled, calm = capsys.readouterr().err.splitlines()
    assert throttled.endswith(
        " · throttled: haiku (claude-haiku-4-5) 50 requests/min (default — set rpm under "
        "[tool.microagents.tiers.haiku]) · 31 calls waiting, ~4.2 s each"
    )
    assert "throttled" not in calm  # nothing waits: nothing said


def test_the_live_progress_shows_throttling_on_a_line_of_its_own() -> None:
    from rich.console import Console

    from microagents.cli._run import _RichProgress

    observer = _RichProgress(Console(file=None, force_terminal=False), simulated=False)
    config = Throttling(HAIKU, "haiku", "input tokens", 80_000, "config", 2, 0.0)
    observer.update(progress(config))
    counts, throttled = observer._detail.plain.splitlines()
    assert "$0.0021" in counts
    assert throttled == (
        "  throttled: haiku (claude-haiku-4-5) 80,000 input tokens/min "
        "(config: input_tpm under [tool.microagents.tiers.haiku]) · 2 calls waiting"
    )


STEP_AGENT = """\
name: step
version: 1.0.0
description: One short step.
model: haiku
prompt: "Step: {{ text }}"
input:
  type: object
  properties: {text: {type: string}}
  required: [text]
output:
  type: object
  properties: {text: {type: string}}
  required: [text]
"""

THREE_STEPS = """\
name: three_steps
version: 1.0.0
description: Three calls in a row, like route, extract and check.
input:
  type: object
  properties: {text: {type: string}}
  required: [text]
entry: first
nodes:
  first: {agent: step@^1, input: {text: "{{ input.text }}"}}
  second: {agent: step@^1, input: {text: "{{ nodes.first.output.text }}"}}
  third: {agent: step@^1, input: {text: "{{ nodes.second.output.text }}"}}
edges:
  - {from: first, to: second}
  - {from: second, to: third}
output:
  text: "{{ nodes.third.output.text }}"
"""


class Watch:
    """A batch observer that keeps every throttling it was shown."""

    interval = 0.01

    def __init__(self) -> None:
        self.seen: list[Throttling] = []

    def update(self, progress: BatchProgress, **future_kwargs: Any) -> None:
        self.seen.extend(progress.throttling)

    def note(self, message: str, **future_kwargs: Any) -> None:
        pass


def test_a_batch_through_a_gateway_without_rate_limit_headers_finishes_items_in_order(
    tmp_path: Path,
) -> None:
    """The default 50 requests a minute hold (no headers come to adapt them): items finish
    in the order they started, and the progress says the default limit is why it is slow."""
    (tmp_path / "agents").mkdir()
    (tmp_path / "agents" / "step.yaml").write_text(STEP_AGENT)
    (tmp_path / "three_steps.yaml").write_text(THREE_STEPS)
    workflow = ma.Project(tmp_path).load_workflow(tmp_path / "three_steps.yaml")
    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps({"text": f"item {i}"}) + "\n" for i in range(1, 9)))
    out = tmp_path / "items.results.jsonl"
    gateway = ServerRateLimits(send_headers=False)
    watch = Watch()
    sent: list[int] = []

    async def main() -> None:
        with FakeAnthropicServer(rate_limits=gateway) as server:
            # Each step answers with its input, so that every call names its item.
            server.on(lambda r: Reply.structured({"text": r.last_user_text.removeprefix("Step: ")}))
            tiers = TierTable()
            model = ma.models.anthropic_model(
                api_key="sk-test", base_url=server.base_url, tiers=tiers, clock=ScaledClock()
            )
            async with ma.Engine(model, tiers=tiers, tracing=None) as engine:
                runner = BatchRunner(engine, workflow, items, out, concurrency=8, observer=watch)
                summary = await runner.run()
            assert summary.ok == 8
            sent.extend(int(r.last_user_text.rsplit(" ", 1)[1]) for r in server.requests)

    anyio.run(main)
    assert len(sent) == 24
    # The first item's three calls went early — in arrival order they would come after
    # everyone's first and second calls (the 17th). Within the first eight, not exactly the
    # first three: the 60 ms between two calls here leaves room for a loaded machine to let a
    # later item's ready call slip in (the first call also opens the connection).
    assert max(i for i, item in enumerate(sent, 1) if item == 1) <= 8
    finished = [json.loads(line)["index"] for line in out.read_text().splitlines()]
    assert finished == list(range(1, 9))
    assert watch.seen, "the progress never showed the limiter holding calls back"
    # Still the default: no header ever came to adapt it.
    assert {(t.tier, t.model, t.limit, t.per_minute, t.source) for t in watch.seen} == {
        ("haiku", HAIKU, "requests", 50, "default")
    }


def test_the_progress_line_is_not_repeated_while_nothing_changes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from dataclasses import replace

    observer = _PlainProgress()
    for elapsed in (5.0, 10.0, 15.0, 64.0, 66.0):  # a batch waiting: the same counts
        observer.update(replace(progress(), elapsed=elapsed))
    observer.update(replace(progress(), elapsed=70.0, done=13))  # something happened
    lines = capsys.readouterr().err.splitlines()
    assert [line.split("]")[0].strip("[ ") for line in lines] == ["5.0s", "66.0s", "70.0s"]
