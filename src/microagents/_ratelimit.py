"""Client-side rate limits per model: requests, input tokens and output tokens per minute.

Token buckets, one set per model, refilled continuously (as Anthropic's own limits are) with a
burst of at most one second's worth, since the API may enforce 60 RPM as one request per second.
Input tokens are estimated before the call and corrected after; output tokens are charged when
the answer says how many there were, so a bucket can go below zero and make later calls wait.
The buckets adapt to the API's ``anthropic-ratelimit-*`` headers and pause on a 429.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from typing import Protocol

import anyio

from ._errors import RateLimitedError
from ._model import (
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
from ._tiers import RateLimits, TierTable

CHARS_PER_TOKEN = 4
BURST_SECONDS = 1.0


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


@dataclass(slots=True)
class _ModelBuckets:
    requests: TokenBucket | None
    input_tokens: TokenBucket | None
    output_tokens: TokenBucket | None
    lock: anyio.Lock

    def all(self) -> list[TokenBucket]:
        return [b for b in (self.requests, self.input_tokens, self.output_tokens) if b is not None]


class RateLimitedModel:
    """Waits for capacity before each call to `inner`; the wait shows in the response."""

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
        self._buckets: dict[str, _ModelBuckets] = {}

    async def aclose(self) -> None:
        """Close the wrapped model."""
        await aclose_inner(self.inner)

    async def complete(self, request: ModelRequest) -> ModelResponse:
        buckets = self._buckets_for(request.model)
        estimate = estimate_input_tokens(request)
        waited = await self._acquire(buckets, estimate)
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
        await self._acquire(buckets, estimate)
        async for event in stream_of(self.inner, request):
            if isinstance(event, StreamEnd):
                self._settle(buckets, estimate, event.response.usage)
                self._observe(buckets, event.response.rate_limits)
            yield event

    def _buckets_for(self, model: str) -> _ModelBuckets:
        buckets = self._buckets.get(model)
        if buckets is None:
            limits = self._limits.get(model) or self.tiers.limits_of(model)
            now = self.clock.now()

            def bucket(limit: float | None) -> TokenBucket | None:
                return TokenBucket.per_minute(limit, now) if limit else None

            buckets = _ModelBuckets(
                bucket(limits.requests_per_minute),
                bucket(limits.input_tokens_per_minute),
                bucket(limits.output_tokens_per_minute),
                anyio.Lock(),
            )
            self._buckets[model] = buckets
        return buckets

    async def _acquire(self, buckets: _ModelBuckets, input_tokens: int) -> float:
        # One caller at a time per model, in arrival order: the wait computed is then exact.
        waited = 0.0
        async with buckets.lock:
            while True:
                now = self.clock.now()
                wait = max(
                    buckets.requests.wait_time(1, now) if buckets.requests else 0.0,
                    buckets.input_tokens.wait_time(input_tokens, now)
                    if buckets.input_tokens
                    else 0.0,
                    # Output is charged afterwards; only wait while it is overdrawn.
                    buckets.output_tokens.wait_time(0, now) if buckets.output_tokens else 0.0,
                )
                if wait <= 0:
                    break
                await self.clock.sleep(wait)
                waited += wait
            if buckets.requests:
                buckets.requests.level -= 1
            if buckets.input_tokens:
                buckets.input_tokens.level -= input_tokens
        return waited

    def _settle(self, buckets: _ModelBuckets, estimate: int, usage: Usage) -> None:
        if buckets.input_tokens:
            # Cache reads do not count towards Anthropic's input-tokens-per-minute limit.
            counted = usage.input_tokens + usage.cache_creation_input_tokens
            buckets.input_tokens.level -= counted - estimate
        if buckets.output_tokens:
            buckets.output_tokens.level -= usage.output_tokens

    def _pause(self, buckets: _ModelBuckets, seconds: float) -> None:
        now = self.clock.now()
        for bucket in buckets.all():
            bucket.refill(now)
            bucket.level = min(bucket.level, -seconds * bucket.rate)

    def _observe(self, buckets: _ModelBuckets, headers: Mapping[str, str]) -> None:
        """Take the API's word: its limit sets our rate (up or down: our configured limits
        are only the guess before the first answer), and we never believe we have more
        capacity left than it says."""
        if not headers:
            return
        now = self.clock.now()
        for kind, bucket in (
            ("requests", buckets.requests),
            ("input-tokens", buckets.input_tokens),
            ("output-tokens", buckets.output_tokens),
        ):
            if bucket is None:
                continue
            limit = _number(headers.get(f"anthropic-ratelimit-{kind}-limit"))
            if limit is not None and limit > 0:
                bucket.rate = limit / 60.0
                bucket.capacity = max(1.0, bucket.rate * BURST_SECONDS)
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
