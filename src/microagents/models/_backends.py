"""Assembling a model stack: a back-end wrapped in the layers every call goes through.

    CachedModel (opt-in)  →  RetryingModel  →  RateLimitedModel  →  AnthropicModel

The cache is outermost so that a hit skips everything; the limiter is inside the retries so
that every try waits for capacity, and a 429 pauses the bucket before the retry comes round.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from pathlib import Path

from ..graph._agent import CompiledAgent
from ._anthropic import AnthropicModel
from ._cache import CachedModel
from ._protocol import CacheTTL, Model
from ._ratelimit import Clock, RateLimitedModel
from ._retry import RetryingModel, RetryPolicy
from ._simulate import SimulatedLatency, SimulatedModel
from ._tiers import TierTable


def anthropic_model(
    *,
    tiers: TierTable | None = None,
    api_key: str | None = None,
    base_url: str | None = None,
    timeout: float | None = None,
    retry: RetryPolicy | None = None,
    cache_path: Path | str | None = None,
    clock: Clock | None = None,
    cache_ttl: CacheTTL = "5m",
    prompt_cache: bool = True,
) -> Model:
    """Claude through the official SDK, with rate limits, retries and (optionally) a cache."""
    tiers = tiers or TierTable.load()
    # Import the SDK (~1 s) now, while setting up, rather than on the event loop at the
    # first call, where it would stall every run in flight.
    importlib.import_module("anthropic")
    backend = AnthropicModel(
        api_key=api_key,
        base_url=base_url,
        tiers=tiers,
        cache_ttl=cache_ttl,
        prompt_cache=prompt_cache,
    )
    if timeout is not None:
        backend.timeout = timeout
    model: Model = RetryingModel(RateLimitedModel(backend, tiers, clock=clock), retry)
    return CachedModel(model, cache_path) if cache_path is not None else model


def simulated_model(
    agents: Iterable[CompiledAgent],
    *,
    tiers: TierTable | None = None,
    latency: SimulatedLatency | None = None,
    seed: int = 0,
) -> Model:
    """The offline back-end for dry runs (see `SimulatedModel`)."""
    return SimulatedModel(agents, tiers=tiers or TierTable.load(), latency=latency, seed=seed)
