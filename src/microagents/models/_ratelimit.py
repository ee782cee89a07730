"""Client-side rate limits per model: requests, input tokens and output tokens per minute.

Token buckets, one set per model, refilled continuously (as Anthropic's own limits are) with a
burst of at most one second's worth, since the API may enforce 60 RPM as one request per second.
Input tokens are estimated before the call and corrected after; output tokens are charged when
the answer says how many there were, so a bucket can go below zero and make later calls wait.
The buckets adapt to the API's ``anthropic-ratelimit-*`` headers and pause on a 429.

Who goes first. A call that finds capacity and nobody queued goes at once, touching no queue.
Otherwise it queues, per model, by the start order of its run (the request label
``run_order``, which the engine sets; a sub-workflow keeps its parent's), ties in arrival
order: capacity goes to the runs furthest along, so that items finish rather than all advancing
a little. One queued caller at a time, the *driver*, sleeps until the head of the queue can go
and hands capacity out in queue order; the others wait on their own event. A single sleeper
keeps the wait exact (and a fake clock's time right).

What holds a run back. `RateLimitedModel.throttling()` names, for each model with calls
queued, the limit the queue last waited on, its value and where it came from: the default,
the configuration, or the API's headers.
"""

from __future__ import annotations

import heapq
import itertools
import json
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol

import anyio

from ..errors import MicroagentsError, RateLimitedError
from ._protocol import (
    Model,
    ModelRequest,
    ModelResponse,
    StreamEnd,
    StreamEvent,
    TextBlock,
    ToolResultBlock,
    Usage,
    aclose_inner,
    stream_of,
)
from ._tiers import LimitSource as ConfiguredSource
from ._tiers import RateLimits, TierTable

CHARS_PER_TOKEN = 4
BURST_SECONDS = 1.0
RUN_ORDER_LABEL = "run_order"
"""Request label: the start number of the call's run; lower numbers get capacity first."""
RECENT_WAIT_WEIGHT = 0.2
"""Weight of the latest queued call in `Throttling.recent_wait` (about the last ten calls)."""

LimitKind = Literal["requests", "input tokens", "output tokens"]
LimitSource = Literal[ConfiguredSource, "API headers"]
"""Where a limit in force came from: the tier table's word, until the API's headers set it."""
_SETTING: Mapping[LimitKind, str] = {
    "requests": "rpm",
    "input tokens": "input_tpm",
    "output tokens": "output_tpm",
}


class Clock(Protocol):
    """Time for the limiter; tests pass a fake one so that nothing really sleeps."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real monotonic clock."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


@dataclass(slots=True)
class TokenBucket:
    """`rate` units per second, holding at most `capacity`; the level may go negative."""

    rate: float
    capacity: float
    level: float
    updated: float

    @classmethod
    def per_minute(cls, limit: float, now: float) -> TokenBucket:
        rate = limit / 60.0
        capacity = max(1.0, rate * BURST_SECONDS)
        return cls(rate, capacity, capacity, now)

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
        self.updated = now

    def wait_time(self, amount: float, now: float) -> float:
        """Seconds until `amount` can be taken (a request larger than the bucket waits only
        for a full bucket, then overdraws it)."""
        self.refill(now)
        needed = min(amount, self.capacity)
        # Within a nanosecond's worth counts as enough: float rounding must not leave a
        # waiter sleeping for 1e-17 s forever.
        shortfall = needed - self.level
        return 0.0 if shortfall <= self.rate * 1e-9 else shortfall / self.rate


@dataclass(frozen=True, slots=True)
class Throttling:
    """Calls to one model held back by the client-side rate limiter, as a progress line says
    it: ``haiku (claude-haiku-4-5) 50 requests/min (default — set rpm under
    [tool.microagents.tiers.haiku]) · 31 calls waiting, ~4.2 s each``."""

    model: str
    tier: str | None
    """The tier that runs `model`; None for a model id that no tier names."""
    limit: LimitKind
    """The limit the first call in the queue last waited for."""
    per_minute: float
    source: LimitSource
    """Where the limit's value came from: `RateLimits`' defaults, the configuration (the
    project's tier table or `limits=`), or the API's ``anthropic-ratelimit-*`` headers."""
    waiting: int
    """Calls queued now."""
    recent_wait: float
    """Seconds a queued call has waited lately (a running mean; 0 until one has gone)."""

    def describe(self) -> str:
        """One line for a person: the model, the limit, where it came from, the queue."""
        name = f"{self.tier} ({self.model})" if self.tier else self.model
        amount = f"{self.per_minute:,.0f}" if self.per_minute >= 10 else f"{self.per_minute:g}"
        setting = _SETTING[self.limit]
        section = f"[tool.microagents.tiers.{self.tier or '<name>'}]"
        if self.source == "default":
            origin = f"default — set {setting} under {section}"
            if self.tier is None:
                origin += f' with model = "{self.model}"'
        elif self.source == "config":
            origin = f"config: {setting} under {section}" if self.tier else "config"
        else:
            origin = "from the API's rate-limit headers"
        calls = "call" if self.waiting == 1 else "calls"
        line = f"{name} {amount} {self.limit}/min ({origin}) · {self.waiting} {calls} waiting"
        return line + (f", ~{self.recent_wait:.1f} s each" if self.recent_wait else "")


@dataclass(slots=True)
class _Limit:
    kind: LimitKind
    bucket: TokenBucket
    source: LimitSource


@dataclass(slots=True, eq=False)
class _Waiter:
    input_tokens: int
    woken: anyio.Event = field(default_factory=anyio.Event)
    granted: bool = False


_Entry = tuple[float, int, _Waiter]
"""A queued call: (its run's start order, its arrival number, the waiter) — a heap item."""


@dataclass(slots=True)
class _ModelLimits:
    model: str
    tier: str | None
    requests: _Limit | None
    input_tokens: _Limit | None
    output_tokens: _Limit | None
    queue: list[_Entry] = field(default_factory=list)
    driving: bool = False
    """A queued caller is handing out capacity (and is the only one sleeping)."""
    nap: anyio.CancelScope | None = None
    """The driver's sleep, cut short when capacity comes back early."""
    binding: _Limit | None = None
    """The limit the head of the queue last waited for."""
    recent_wait: float = 0.0

    def all(self) -> list[_Limit]:
        return [x for x in (self.requests, self.input_tokens, self.output_tokens) if x is not None]

    def shortfall(self, input_tokens: int, now: float) -> tuple[float, _Limit | None]:
        """Seconds until a call of `input_tokens` can go, and the limit it waits for."""
        longest, binding = 0.0, None
        for limit, amount in (
            (self.requests, 1),
            (self.input_tokens, input_tokens),
            # Output is charged afterwards; only wait while it is overdrawn.
            (self.output_tokens, 0),
        ):
            if limit is not None:
                wait = limit.bucket.wait_time(amount, now)
                if wait > longest:
                    longest, binding = wait, limit
        return longest, binding

    def take(self, input_tokens: int) -> None:
        """Charge a call's request and its estimated input tokens."""
        if self.requests is not None:
            self.requests.bucket.level -= 1
        if self.input_tokens is not None:
            self.input_tokens.bucket.level -= input_tokens

    def give_back(self, input_tokens: int) -> None:
        """Undo `take` for a call that was never sent."""
        for limit, amount in ((self.requests, 1), (self.input_tokens, input_tokens)):
            if limit is not None:
                limit.bucket.level = min(limit.bucket.capacity, limit.bucket.level + amount)


class RateLimitedModel:
    """Waits for capacity before each call to `inner`, earliest-started runs first; the wait
    shows in the response, and `throttling()` says what holds calls back."""

    def __init__(
        self,
        inner: Model,
        tiers: TierTable | None = None,
        *,
        limits: Mapping[str, RateLimits] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.inner = inner
        self.tiers = tiers or TierTable()
        self._limits = dict(limits or {})
        self.clock = clock or SystemClock()
        self._buckets: dict[str, _ModelLimits] = {}
        self._arrivals = itertools.count()

    async def aclose(self) -> None:
        """Close the wrapped model."""
        await aclose_inner(self.inner)

    async def complete(self, request: ModelRequest) -> ModelResponse:
        buckets = self._buckets_for(request.model)
        estimate = estimate_input_tokens(request)
        waited = await self._acquire(buckets, estimate, request)
        try:
            response = await self.inner.complete(request)
        except RateLimitedError as error:
            # Everyone calling this model waits, not only the caller that was refused.
            self._pause(buckets, error.retry_after or 1.0)
            raise
        self._settle(buckets, estimate, response.usage)
        self._observe(buckets, response.rate_limits)
        if waited == 0.0:
            return response
        return replace(response, rate_limit_wait=waited, latency=response.latency + waited)

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        """`complete`'s limits around a streamed call (the inner model must stream)."""
        buckets = self._buckets_for(request.model)
        estimate = estimate_input_tokens(request)
        await self._acquire(buckets, estimate, request)
        async for event in stream_of(self.inner, request):
            if isinstance(event, StreamEnd):
                self._settle(buckets, estimate, event.response.usage)
                self._observe(buckets, event.response.rate_limits)
            yield event

    def throttling(self) -> tuple[Throttling, ...]:
        """The models whose calls are queued for capacity now, each with the limit that
        holds them back; empty when nothing waits."""
        return tuple(
            Throttling(
                model=limits.model,
                tier=limits.tier,
                limit=limits.binding.kind,
                per_minute=limits.binding.bucket.rate * 60.0,
                source=limits.binding.source,
                waiting=len(limits.queue),
                recent_wait=limits.recent_wait,
            )
            for limits in self._buckets.values()
            if limits.queue and limits.binding is not None
        )

    def _buckets_for(self, model: str) -> _ModelLimits:
        buckets = self._buckets.get(model)
        if buckets is None:
            configured = self._limits.get(model)
            limits = configured or self.tiers.limits_of(model)
            defaults = RateLimits()
            now = self.clock.now()

            def limit(kind: LimitKind, value: float | None, default: float | None) -> _Limit | None:
                if not value:
                    return None
                # Passed in, set in the project's tier table, or built in Python to differ from
                # the default (RateLimits(...) says "default" unless told otherwise).
                chosen = configured is not None or limits.source == "config" or value != default
                return _Limit(
                    kind, TokenBucket.per_minute(value, now), "config" if chosen else "default"
                )

            buckets = _ModelLimits(
                model,
                self._tier_of(model),
                limit("requests", limits.requests_per_minute, defaults.requests_per_minute),
                limit(
                    "input tokens",
                    limits.input_tokens_per_minute,
                    defaults.input_tokens_per_minute,
                ),
                limit(
                    "output tokens",
                    limits.output_tokens_per_minute,
                    defaults.output_tokens_per_minute,
                ),
            )
            self._buckets[model] = buckets
        return buckets

    def _tier_of(self, model: str) -> str | None:
        try:
            tier = self.tiers.resolve(model)
        except MicroagentsError:
            return None
        return tier.name if tier.name != model else None

    async def _acquire(
        self, buckets: _ModelLimits, input_tokens: int, request: ModelRequest
    ) -> float:
        if not buckets.queue:
            wait, _ = buckets.shortfall(input_tokens, self.clock.now())
            if wait <= 0:
                buckets.take(input_tokens)
                return 0.0
        return await self._queue(buckets, input_tokens, _run_order(request))

    async def _queue(self, buckets: _ModelLimits, input_tokens: int, order: float) -> float:
        started = self.clock.now()
        waiter = _Waiter(input_tokens)
        entry = (order, next(self._arrivals), waiter)
        heapq.heappush(buckets.queue, entry)
        try:
            while not waiter.granted:
                if buckets.driving:
                    await waiter.woken.wait()
                    waiter.woken = anyio.Event()
                    continue
                buckets.driving = True
                try:
                    await self._drive(buckets, waiter)
                finally:
                    buckets.driving, buckets.nap = False, None
        except BaseException:
            if waiter.granted:
                # Granted, then cancelled before the call: the driver may use it at once.
                buckets.give_back(input_tokens)
                if buckets.nap is not None:
                    buckets.nap.cancel()
            else:
                buckets.queue.remove(entry)
                heapq.heapify(buckets.queue)
            raise
        finally:
            # Whoever heads the queue now takes over the driving, unless someone drives.
            if buckets.queue and not buckets.driving:
                buckets.queue[0][2].woken.set()
        waited = self.clock.now() - started
        recent = buckets.recent_wait
        buckets.recent_wait = recent + RECENT_WAIT_WEIGHT * (waited - recent) if recent else waited
        return waited

    async def _drive(self, buckets: _ModelLimits, mine: _Waiter) -> None:
        """Hand capacity to the head of the queue, in order, until `mine` has had its turn."""
        while not mine.granted:
            head = buckets.queue[0][2]
            wait, binding = buckets.shortfall(head.input_tokens, self.clock.now())
            if wait > 0:
                buckets.binding = binding
                with anyio.CancelScope() as buckets.nap:
                    await self.clock.sleep(wait)
                continue
            heapq.heappop(buckets.queue)
            buckets.take(head.input_tokens)
            head.granted = True
            head.woken.set()

    def _settle(self, buckets: _ModelLimits, estimate: int, usage: Usage) -> None:
        if buckets.input_tokens:
            # Cache reads do not count towards Anthropic's input-tokens-per-minute limit.
            counted = usage.input_tokens + usage.cache_creation_input_tokens
            buckets.input_tokens.bucket.level -= counted - estimate
        if buckets.output_tokens:
            buckets.output_tokens.bucket.level -= usage.output_tokens

    def _pause(self, buckets: _ModelLimits, seconds: float) -> None:
        now = self.clock.now()
        for limit in buckets.all():
            limit.bucket.refill(now)
            limit.bucket.level = min(limit.bucket.level, -seconds * limit.bucket.rate)

    def _observe(self, buckets: _ModelLimits, headers: Mapping[str, str]) -> None:
        """Take the API's word: its limit sets our rate (up or down: our configured limits
        are only the guess before the first answer), and we never believe we have more
        capacity left than it says."""
        if not headers:
            return
        now = self.clock.now()
        for kind, limit in (
            ("requests", buckets.requests),
            ("input-tokens", buckets.input_tokens),
            ("output-tokens", buckets.output_tokens),
        ):
            if limit is None:
                continue
            bucket = limit.bucket
            per_minute = _number(headers.get(f"anthropic-ratelimit-{kind}-limit"))
            if per_minute is not None and per_minute > 0:
                bucket.rate = per_minute / 60.0
                bucket.capacity = max(1.0, bucket.rate * BURST_SECONDS)
                limit.source = "API headers"
            remaining = _number(headers.get(f"anthropic-ratelimit-{kind}-remaining"))
            if remaining is not None:
                bucket.refill(now)
                bucket.level = min(bucket.level, remaining)


def estimate_input_tokens(request: ModelRequest) -> int:
    """A quick upper-ish estimate of a request's input tokens (characters / 4)."""
    chars = len(request.system or "")
    for message in request.messages:
        for block in message.content:
            if isinstance(block, TextBlock):
                chars += len(block.text)
            elif isinstance(block, ToolResultBlock):
                chars += len(block.content)
            else:
                chars += len(json.dumps(block.input))
    for tool in request.tools:
        chars += len(tool.description) + len(json.dumps(tool.input_schema))
    return max(1, chars // CHARS_PER_TOKEN)


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _run_order(request: ModelRequest) -> float:
    """Where a call queues: its run's start order; a call outside any run goes first."""
    label = request.metadata.get(RUN_ORDER_LABEL)
    if label is None:
        return 0.0
    try:
        return float(label)
    except ValueError:
        return 0.0
