"""Model tiers and prices: one table that maps `haiku`/`sonnet`/`opus` to model ids, list
prices and rate limits, so that every response gets a cost and every call a limit.

The table is data, resolved once: the defaults below, then the project's
``[tool.microagents.tiers]`` (pyproject.toml or microagents.toml), then environment variables
(``MICROAGENTS_TIER_HAIKU=claude-haiku-4-5-20251001``), then whatever Python passes in.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ._errors import MicroagentsError, suggest
from ._model import Usage
from ._settings import project_setting

PER_MILLION = 1_000_000


@dataclass(frozen=True, slots=True)
class Price:
    """List price in USD per million tokens, with Anthropic's cache and batch multipliers."""

    input: float
    output: float
    cache_write_5m_multiplier: float = 1.25
    cache_write_1h_multiplier: float = 2.0
    cache_read_multiplier: float = 0.1
    batch_discount: float = 0.5

    def cost(self, usage: Usage, *, batch: bool = False, cache_ttl_1h: bool = False) -> float:
        """The USD cost of `usage` at this price."""
        write = self.cache_write_1h_multiplier if cache_ttl_1h else self.cache_write_5m_multiplier
        dollars = (
            usage.input_tokens * self.input
            + usage.cache_creation_input_tokens * self.input * write
            + usage.cache_read_input_tokens * self.input * self.cache_read_multiplier
            + usage.output_tokens * self.output
        ) / PER_MILLION
        return dollars * self.batch_discount if batch else dollars


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Client-side limits per model: requests, input and output tokens per minute
    (None: unlimited). Defaults are conservative; set yours from your Anthropic console."""

    requests_per_minute: float | None = 50
    input_tokens_per_minute: float | None = 50_000
    output_tokens_per_minute: float | None = 10_000


@dataclass(frozen=True, slots=True)
class Tier:
    """A named tier: the model it runs and what that costs."""

    name: str
    model: str
    price: Price | None
    limits: RateLimits = field(default_factory=RateLimits)


# Known list prices by model id prefix (USD per million tokens), so that an explicit model id
# on a tier or a node still has a cost. Longest prefix wins.
KNOWN_PRICES: Mapping[str, Price] = {
    "claude-haiku-4-5": Price(1.0, 5.0),
    "claude-sonnet-4-5": Price(3.0, 15.0),
    "claude-opus-4-5": Price(5.0, 25.0),
    "claude-sonnet-4-6": Price(3.0, 15.0),
    "claude-opus-4-6": Price(5.0, 25.0),
    "claude-sonnet-4": Price(3.0, 15.0),
    "claude-opus-4-1": Price(15.0, 75.0),
    "claude-opus-4": Price(15.0, 75.0),
    "claude-3-7-sonnet": Price(3.0, 15.0),
    "claude-3-5-haiku": Price(0.8, 4.0),
    "claude-3-haiku": Price(0.25, 1.25),
}

# The smallest prefix Anthropic will cache, by model id prefix; below it a cache_control mark
# is accepted but nothing is cached, so we do not send one.
MIN_CACHEABLE_TOKENS: Mapping[str, int] = {
    "claude-haiku-4-5": 4096,
    "claude-opus-4-5": 4096,
    "claude-opus-4-6": 4096,
    "claude-3-5-haiku": 2048,
    "claude-3-haiku": 2048,
}
DEFAULT_MIN_CACHEABLE_TOKENS = 1024

DEFAULT_TIERS: Mapping[str, Tier] = {
    "haiku": Tier("haiku", "claude-haiku-4-5", KNOWN_PRICES["claude-haiku-4-5"]),
    "sonnet": Tier("sonnet", "claude-sonnet-4-6", KNOWN_PRICES["claude-sonnet-4-6"]),
    "opus": Tier("opus", "claude-opus-4-5", KNOWN_PRICES["claude-opus-4-5"]),
}


def _by_prefix(model: str, table: Mapping[str, Any]) -> Any:
    matches = [prefix for prefix in table if model.startswith(prefix)]
    return table[max(matches, key=len)] if matches else None


def price_for_model(model: str) -> Price | None:
    """The list price of a model id, by its longest known prefix; None when unknown."""
    price: Price | None = _by_prefix(model, KNOWN_PRICES)
    return price


def min_cacheable_tokens(model: str) -> int:
    """The smallest prompt prefix, in tokens, that the model will cache."""
    found: int | None = _by_prefix(model, MIN_CACHEABLE_TOKENS)
    return found or DEFAULT_MIN_CACHEABLE_TOKENS


class TierTable:
    """Resolves a tier alias or a model id to a `Tier`.

    ```python
    tiers = TierTable.load()                       # defaults + project file + environment
    tiers = tiers.with_tier("haiku", model="claude-haiku-4-5-20251001")
    tiers.resolve("haiku").model                   # 'claude-haiku-4-5-20251001'
    tiers.resolve("claude-sonnet-4-5").price       # known model ids have prices too
    ```
    """

    def __init__(self, tiers: Mapping[str, Tier] = DEFAULT_TIERS) -> None:
        self._tiers = dict(tiers)
        self._by_model = {tier.model: tier for tier in self._tiers.values()}

    @property
    def names(self) -> list[str]:
        return list(self._tiers)

    def resolve(self, tier_or_model: str) -> Tier:
        """The tier named `tier_or_model`, or an ad-hoc tier for an explicit model id."""
        tier = self._tiers.get(tier_or_model) or self._by_model.get(tier_or_model)
        if tier is not None:
            return tier
        if "-" not in tier_or_model:
            raise MicroagentsError(
                f"unknown tier '{tier_or_model}'; {suggest(tier_or_model, self.names, 'tiers')}"
                " (or give a full model id such as claude-haiku-4-5)"
            )
        return Tier(tier_or_model, tier_or_model, price_for_model(tier_or_model))

    def price_of(self, model: str) -> Price | None:
        """The price of a model id (a tier's own price wins); None when unknown. Never
        raises: it is asked after a call has been paid for."""
        tier = self._by_model.get(model)
        return tier.price if tier is not None else price_for_model(model)

    def limits_of(self, model: str) -> RateLimits:
        """The rate limits of a model id: its tier's, else the defaults."""
        tier = self._by_model.get(model) or self._tiers.get(model)
        return tier.limits if tier is not None else RateLimits()

    def with_tier(
        self,
        name: str,
        *,
        model: str | None = None,
        price: Price | None = None,
        limits: RateLimits | None = None,
    ) -> TierTable:
        """A copy with tier `name` added or changed."""
        current = self._tiers.get(name)
        chosen_model = model or (current.model if current else name)
        tier = Tier(
            name,
            chosen_model,
            price or (current.price if current and not model else price_for_model(chosen_model)),
            limits or (current.limits if current else RateLimits()),
        )
        return TierTable({**self._tiers, name: tier})

    @classmethod
    def load(cls, root: Path | str = ".", environ: Mapping[str, str] | None = None) -> TierTable:
        """Defaults, then ``[tool.microagents.tiers]`` from the project, then the environment."""
        table = cls()
        for name, settings in _project_tiers(Path(root)).items():
            table = table._with_settings(name, settings)
        env = os.environ if environ is None else environ
        for key, value in env.items():
            if key.startswith("MICROAGENTS_TIER_") and value:
                table = table.with_tier(key.removeprefix("MICROAGENTS_TIER_").lower(), model=value)
        return table

    def _with_settings(self, name: str, settings: Mapping[str, Any]) -> TierTable:
        known = {"model", "input_price", "output_price", "rpm", "input_tpm", "output_tpm"}
        unknown = set(settings) - known
        if unknown:
            raise MicroagentsError(
                f"[tool.microagents.tiers.{name}] has unknown keys {sorted(unknown)}; "
                f"use {sorted(known)}"
            )
        base = self.with_tier(name, model=settings.get("model"))
        tier = base._tiers[name]
        price = tier.price
        if "input_price" in settings or "output_price" in settings:
            fallback = price or Price(0.0, 0.0)
            price = replace(
                fallback,
                input=float(settings.get("input_price", fallback.input)),
                output=float(settings.get("output_price", fallback.output)),
            )
        limits = replace(
            tier.limits,
            requests_per_minute=settings.get("rpm", tier.limits.requests_per_minute),
            input_tokens_per_minute=settings.get("input_tpm", tier.limits.input_tokens_per_minute),
            output_tokens_per_minute=settings.get(
                "output_tpm", tier.limits.output_tokens_per_minute
            ),
        )
        return base.with_tier(name, model=tier.model, price=price, limits=limits)


def _project_tiers(root: Path) -> Mapping[str, Mapping[str, Any]]:
    found = project_setting(root, "tiers")
    tiers = found[1] if found is not None else None
    return dict(tiers) if isinstance(tiers, dict) else {}
