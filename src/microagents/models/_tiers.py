"""Model tiers: one table that maps `haiku`/`sonnet`/`opus` to model ids, with each model's
price, capabilities and client-side rate limits, so that every response gets a cost, every
request the right shape and every call a limit.

The table is data, resolved once: the defaults below, then the project's
``[tool.microagents.tiers]`` and ``[tool.microagents.models]`` (pyproject.toml or
microagents.toml), then environment variables (``MICROAGENTS_TIER_HAIKU=claude-haiku-4-5``),
then whatever Python passes in. Prices come from `genai-prices` unless the project gives one
(`_prices`); capabilities from our table unless the project overrides them (`_capabilities`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from .._settings import project_setting
from ..errors import MicroagentsError, suggest
from ..spec._agent_spec import Effort
from ._capabilities import EFFORT_LEVELS, Capabilities, capabilities_of
from ._prices import Price, price_from_settings, price_of_model

LimitSource = Literal["default", "config"]


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Client-side limits per model: requests, input and output tokens per minute
    (None: unlimited). The defaults are Anthropic's first usage tier; they hold until the
    API's `anthropic-ratelimit-*` headers say otherwise. Set yours from your console."""

    requests_per_minute: float | None = 50
    input_tokens_per_minute: float | None = 50_000
    output_tokens_per_minute: float | None = 10_000
    source: LimitSource = "default"
    """Where these numbers came from: the built-in defaults or the project's configuration."""


@dataclass(frozen=True, slots=True)
class Tier:
    """A named tier: the model it runs, and what the project says about it."""

    name: str
    model: str
    limits: RateLimits = field(default_factory=RateLimits)
    effort: Effort | None = None
    """The `effort` level sent with this tier's calls (models that offer it); None: the
    model's default."""
    price_override: Price | None = None
    capabilities_override: Capabilities | None = None

    @property
    def price(self) -> Price | None:
        """The project's price for this model, else `genai-prices`'; None when unknown."""
        return self.price_override or price_of_model(self.model)

    @property
    def capabilities(self) -> Capabilities:
        return self.capabilities_override or capabilities_of(self.model)


# Current, non-deprecated models (a test checks them against the installed SDK's deprecation
# list, so that an upgrade which deprecates one fails the suite rather than every user's run).
DEFAULT_TIERS: Mapping[str, Tier] = {
    "haiku": Tier("haiku", "claude-haiku-4-5"),
    "sonnet": Tier("sonnet", "claude-sonnet-4-6"),
    "opus": Tier("opus", "claude-opus-4-8"),
}
TIER_KEYS = frozenset({"model", "rpm", "input_tpm", "output_tpm", "effort"})
MODEL_KEYS = frozenset({"price", *Capabilities.__dataclass_fields__})


class TierTable:
    """Resolves a tier alias or a model id to a `Tier`, and prices and describes models.

    ```python
    tiers = TierTable.load()                       # defaults + project file + environment
    tiers = tiers.with_tier("haiku", model="claude-haiku-4-5-20251001")
    tiers.resolve("haiku").model                   # 'claude-haiku-4-5-20251001'
    tiers.price_of("claude-sonnet-4-6")            # any model id has a price if one is known
    ```
    """

    def __init__(
        self,
        tiers: Mapping[str, Tier] = DEFAULT_TIERS,
        *,
        prices: Mapping[str, Price] | None = None,
        capabilities: Mapping[str, Capabilities] | None = None,
    ) -> None:
        self._tiers = dict(tiers)
        self._prices = dict(prices or {})
        self._capabilities = dict(capabilities or {})
        self._by_model = {tier.model: tier for tier in self._tiers.values()}

    @property
    def names(self) -> list[str]:
        return list(self._tiers)

    @property
    def tiers(self) -> list[Tier]:
        """Every tier, in the table's order."""
        return [self.resolve(name) for name in self._tiers]

    def resolve(self, tier_or_model: str) -> Tier:
        """The tier named `tier_or_model`, or an ad-hoc tier for an explicit model id."""
        tier = self._tiers.get(tier_or_model) or self._by_model.get(tier_or_model)
        if tier is None:
            if "-" not in tier_or_model:
                raise MicroagentsError(
                    f"unknown tier '{tier_or_model}'; "
                    f"{suggest(tier_or_model, self.names, 'tiers')}"
                    " (or give a full model id such as claude-haiku-4-5)"
                )
            tier = Tier(tier_or_model, tier_or_model)
        return self._with_model_facts(tier)

    def price_of(self, model: str) -> Price | None:
        """The price of a model id (the project's, else `genai-prices`'); None when unknown.
        Never raises: it is asked after a call has been paid for."""
        tier = self._by_model.get(model)
        if tier is not None and tier.price_override is not None:
            return tier.price_override
        return self._prices.get(model) or price_of_model(model)

    def capabilities_of(self, model: str) -> Capabilities:
        """What requests to `model` may ask for (the project's word over our table)."""
        tier = self._by_model.get(model)
        if tier is not None and tier.capabilities_override is not None:
            return tier.capabilities_override
        return self._capabilities.get(model) or capabilities_of(model)

    def limits_of(self, model: str) -> RateLimits:
        """The rate limits of a model id: its tier's, else the defaults."""
        tier = self._by_model.get(model) or self._tiers.get(model)
        return tier.limits if tier is not None else RateLimits()

    def unpriced(self, tiers_or_models: list[str] | None = None) -> list[str]:
        """The model ids, among these tiers (all, by default), that have no known price."""
        names = self.names if tiers_or_models is None else tiers_or_models
        models = dict.fromkeys(self.resolve(name).model for name in names)
        return [model for model in models if self.price_of(model) is None]

    def with_tier(
        self,
        name: str,
        *,
        model: str | None = None,
        price: Price | None = None,
        limits: RateLimits | None = None,
        effort: Effort | None = None,
    ) -> TierTable:
        """A copy with tier `name` added or changed."""
        current = self._tiers.get(name)
        chosen_model = model or (current.model if current else name)
        same_model = current is not None and chosen_model == current.model
        tier = Tier(
            name,
            chosen_model,
            limits or (current.limits if current else RateLimits()),
            effort or (current.effort if current else None),
            price or (current.price_override if same_model and current else None),
            current.capabilities_override if same_model and current else None,
        )
        return self._copy(tiers={**self._tiers, name: tier})

    def with_model(
        self, model: str, *, price: Price | None = None, capabilities: Capabilities | None = None
    ) -> TierTable:
        """A copy that prices `model` or describes what it can do (any model id, in a tier
        or not)."""
        prices = {**self._prices, model: price} if price is not None else self._prices
        known = self._capabilities
        if capabilities is not None:
            known = {**known, model: capabilities}
        return self._copy(prices=prices, capabilities=known)

    def _copy(
        self,
        *,
        tiers: Mapping[str, Tier] | None = None,
        prices: Mapping[str, Price] | None = None,
        capabilities: Mapping[str, Capabilities] | None = None,
    ) -> TierTable:
        return TierTable(
            self._tiers if tiers is None else tiers,
            prices=self._prices if prices is None else prices,
            capabilities=self._capabilities if capabilities is None else capabilities,
        )

    def _with_model_facts(self, tier: Tier) -> Tier:
        price = self._prices.get(tier.model)
        known = self._capabilities.get(tier.model)
        if (price is None or tier.price_override) and (known is None or tier.capabilities_override):
            return tier
        return replace(
            tier,
            price_override=tier.price_override or price,
            capabilities_override=tier.capabilities_override or known,
        )

    @classmethod
    def load(cls, root: Path | str = ".", environ: Mapping[str, str] | None = None) -> TierTable:
        """Defaults, then the project's ``tiers`` and ``models`` tables, then the environment."""
        table = cls()
        found = project_setting(Path(root), "models")
        if found is not None:
            table = table._with_model_settings(found[1], found[0])
        found = project_setting(Path(root), "tiers")
        if found is not None:
            path, tiers = found
            if not isinstance(tiers, dict):
                raise MicroagentsError(f"{path}: `tiers` must be a table of tiers")
            for name, settings in tiers.items():
                table = table._with_settings(name, settings, path)
        env = os.environ if environ is None else environ
        for key, value in env.items():
            if key.startswith("MICROAGENTS_TIER_") and value:
                table = table.with_tier(key.removeprefix("MICROAGENTS_TIER_").lower(), model=value)
        return table

    def _with_settings(self, name: str, settings: Any, path: Path) -> TierTable:
        where = f"{path}: [tiers.{name}]"
        if not isinstance(settings, dict):
            raise MicroagentsError(f"{where} must be a table")
        unknown = set(settings) - TIER_KEYS
        if unknown:
            hint = ""
            if unknown & {"input_price", "output_price"}:
                hint = (
                    f'; prices belong to the model: [models."{settings.get("model", "MODEL-ID")}"]'
                    " price = {input = ..., output = ...}"
                )
            raise MicroagentsError(
                f"{where} has unknown keys {sorted(unknown)}; use {sorted(TIER_KEYS)}{hint}"
            )
        effort = settings.get("effort")
        if effort is not None and effort not in EFFORT_LEVELS:
            raise MicroagentsError(f"{where}: effort must be one of {', '.join(EFFORT_LEVELS)}")
        base = self.with_tier(name, model=settings.get("model"), effort=effort)
        tier = base._tiers[name]
        limit_keys = {"rpm", "input_tpm", "output_tpm"} & set(settings)
        if not limit_keys:
            return base
        limits = replace(
            tier.limits,
            requests_per_minute=settings.get("rpm", tier.limits.requests_per_minute),
            input_tokens_per_minute=settings.get("input_tpm", tier.limits.input_tokens_per_minute),
            output_tokens_per_minute=settings.get(
                "output_tpm", tier.limits.output_tokens_per_minute
            ),
            source="config",
        )
        return base.with_tier(name, limits=limits)

    def _with_model_settings(self, models: Any, path: Path) -> TierTable:
        if not isinstance(models, dict):
            raise MicroagentsError(f'{path}: `models` must be a table of model ids ([models."id"])')
        table = self
        for model, settings in models.items():
            where = f'{path}: [models."{model}"]'
            if not isinstance(settings, dict):
                raise MicroagentsError(f"{where} must be a table")
            unknown = set(settings) - MODEL_KEYS
            if unknown:
                raise MicroagentsError(
                    f"{where} has unknown keys {sorted(unknown)}; use {sorted(MODEL_KEYS)}"
                )
            facts = {k: v for k, v in settings.items() if k != "price"}
            price_settings = settings.get("price")
            price = None
            if price_settings is not None:
                if not isinstance(price_settings, dict):
                    raise MicroagentsError(f"{where}: `price` must be a table")
                price = price_from_settings(price_settings, f"{where} price")
            known = capabilities_of(model).with_settings(facts, where) if facts else None
            table = table.with_model(model, price=price, capabilities=known)
        return table
