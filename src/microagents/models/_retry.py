"""Retries, in one place: exponential backoff with jitter that honours ``retry-after``.

A wrapper around any `Model`. Retryable failures (429, 529, 5xx, 408/409, timeouts, dropped
connections — or whatever the API marks with ``x-should-retry: true``) are tried again; the
rest (400, 401, 403, 404, 413) fail at once. When the retries are spent the error propagates,
and the agent runner may escalate (the ``error`` trigger).
"""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace

import anyio

from ..errors import ModelError
from ._protocol import Model, ModelRequest, ModelResponse, StreamEvent, aclose_inner, stream_of

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many times to try and how long to wait between tries."""

    max_attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 30.0
    jitter: float = 0.25
    """Each backoff is multiplied by a random factor in [1 - jitter, 1 + jitter]."""
    max_retry_after: float = 120.0
    """A longer ``retry-after`` than this fails the call instead of stalling the run."""

    def delay(self, attempt: int, error: ModelError, rng: random.Random) -> float | None:
        """Seconds to wait before try `attempt + 1`, or None to give up."""
        if attempt >= self.max_attempts or not error.retryable:
            return None
        if error.retry_after is not None:
            return None if error.retry_after > self.max_retry_after else error.retry_after
        backoff: float = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        return backoff * rng.uniform(1 - self.jitter, 1 + self.jitter)


class RetryingModel:
    """Retries `inner` under a `RetryPolicy`; the response records how many tries it took."""

    def __init__(
        self,
        inner: Model,
        policy: RetryPolicy | None = None,
        *,
        sleep: Sleep = anyio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.inner = inner
        self.policy = policy or RetryPolicy()
        self._sleep = sleep
        self._rng = rng or random.Random()

    async def aclose(self) -> None:
        """Close the wrapped model."""
        await aclose_inner(self.inner)

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        """A stream is retried only until its first event: after that, a retry would send
        the listener the same text twice."""
        attempt = 1
        while True:
            started = False
            try:
                async for event in stream_of(self.inner, request):
                    started = True
                    yield event
                return
            except ModelError as error:
                wait = None if started else self.policy.delay(attempt, error, self._rng)
                if wait is None:
                    raise
                await self._sleep(wait)
                attempt += 1

    async def complete(self, request: ModelRequest) -> ModelResponse:
        started = time.perf_counter()
        attempt = 1
        while True:
            try:
                response = await self.inner.complete(request)
            except ModelError as error:
                wait = self.policy.delay(attempt, error, self._rng)
                if wait is None:
                    raise
                await self._sleep(wait)
                attempt += 1
                continue
            if attempt == 1:
                return response
            return replace(response, attempts=attempt, latency=time.perf_counter() - started)
