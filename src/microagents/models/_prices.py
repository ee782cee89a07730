"""Model prices from `genai-prices`, the maintained price database, with project overrides.

A `Price` is resolved once per model id and then costs a response in a few microseconds:
`genai-prices` computes a price in ~80 µs, more than the engine's whole overhead per call, so
its rates are read once (per model, standard and Message Batches) and applied here with the
same rules it uses — a long-context tier's rate applies to *all* tokens once the request's input
passes the tier's threshold. A test checks our costs against `genai_prices.calc_price`.

A model that neither the database nor the project prices has no `Price`: its cost is unknown
(`None`), never $0, and a budget cannot be enforced on it (see `TierTable.unpriced`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Any

from ..errors import MicroagentsError
from ._protocol import Usage

PER_MILLION = 1_000_000
# Anthropic's multipliers of the input price, for prices a project gives only in part.
CACHE_WRITE_5M = 1.25
CACHE_WRITE_1H = 2.0
CACHE_READ = 0.1
BATCH_DISCOUNT = 0.5

Rate = float | tuple[tuple[int, float], ...]
"""USD per million tokens: flat, or ``((0, base), (threshold, rate), ...)`` by total input."""


@dataclass(frozen=True, slots=True)
class Rates:
    """USD per million tokens for each kind of token one call can use."""

    input: Rate
    output: Rate
    cache_write_5m: Rate
    cache_write_1h: Rate
    cache_read: Rate

    @classmethod
    def from_input(cls, input: float, output: float) -> Rates:
        """Rates from the input and output prices, with Anthropic's cache multipliers."""
        return cls(
            input, output, input * CACHE_WRITE_5M, input * CACHE_WRITE_1H, input * CACHE_READ
        )

    def scaled(self, factor: float) -> Rates:
        return Rates(*(_scale(rate, factor) for rate in self._all()))

    def cost(self, usage: Usage) -> float:
        total_input = usage.total_input_tokens
        write_1h = usage.cache_creation_1h_input_tokens
        write_5m = usage.cache_creation_input_tokens - write_1h
        return (
            usage.input_tokens * _at(self.input, total_input)
            + write_5m * _at(self.cache_write_5m, total_input)
            + write_1h * _at(self.cache_write_1h, total_input)
            + usage.cache_read_input_tokens * _at(self.cache_read, total_input)
            + usage.output_tokens * _at(self.output, total_input)
        ) / PER_MILLION

    def _all(self) -> tuple[Rate, ...]:
        return (self.input, self.output, self.cache_write_5m, self.cache_write_1h, self.cache_read)


@dataclass(frozen=True, slots=True)
class Price:
    """What a model's calls cost: standard rates, and the Message Batches rates.

    ```python
    price = price_of_model("claude-haiku-4-5")
    price.cost(ma.models.Usage(input_tokens=1000, output_tokens=200))   # 0.002
    price.cost(usage, batch=True)                                # half of that
    ```
    """

    standard: Rates
    batch: Rates
    source: str
    """Where the price came from: ``genai-prices <version>`` or the project file."""

    @classmethod
    def per_million(
        cls, input: float, output: float, *, source: str = "given", **rates: float
    ) -> Price:
        """A flat price in USD per million tokens; cache rates default to Anthropic's
        multipliers of `input` (`cache_write_5m`, `cache_write_1h`, `cache_read` override them)
        and batch rates to half of everything (`batch_discount` overrides that)."""
        discount = rates.pop("batch_discount", BATCH_DISCOUNT)
        unknown = set(rates) - {"cache_write_5m", "cache_write_1h", "cache_read"}
        if unknown:
            raise MicroagentsError(f"unknown price keys {sorted(unknown)}")
        standard = Rates(
            input,
            output,
            rates.get("cache_write_5m", input * CACHE_WRITE_5M),
            rates.get("cache_write_1h", input * CACHE_WRITE_1H),
            rates.get("cache_read", input * CACHE_READ),
        )
        return cls(standard, standard.scaled(discount), source)

    @property
    def input(self) -> float:
        """The base input price (USD per million tokens), for tables."""
        return _base(self.standard.input)

    @property
    def output(self) -> float:
        """The base output price (USD per million tokens), for tables."""
        return _base(self.standard.output)

    def cost(self, usage: Usage, *, batch: bool = False) -> float:
        """The USD cost of `usage`, at Message Batches rates when `batch`."""
        return (self.batch if batch else self.standard).cost(usage)


def price_of_model(model: str) -> Price | None:
    """The price of `model` in the `genai-prices` database; None when it does not know it."""
    return _from_database(model)


def database_version() -> str:
    from importlib.metadata import version

    return f"genai-prices {version('genai-prices')}"


@cache
def _from_database(model: str) -> Price | None:
    # Imported here: the database takes ~0.1 s to load, and a run prices only a few models.
    from genai_prices import data_snapshot

    snapshot = data_snapshot.get_snapshot()
    try:
        provider, info = snapshot.find_provider_model(model, None, "anthropic", None)
    except LookupError:
        return None
    if provider.id != "anthropic":
        return None
    from datetime import UTC, datetime

    now = datetime.now(tz=UTC)
    standard = _rates(info.get_prices(now))
    batch = _rates(info.get_prices(now, {"processing": "batch"}))
    if standard is None:
        return None
    if batch is None or batch == standard:
        batch = standard.scaled(BATCH_DISCOUNT)
    return Price(standard, batch, database_version())


def _rates(model_price: Any) -> Rates | None:
    fields = (
        "input_mtok",
        "output_mtok",
        "cache_write_mtok",
        "cache_write_1h_mtok",
        "cache_read_mtok",
    )
    values = [_rate(getattr(model_price, name, None)) for name in fields]
    if values[0] is None or values[1] is None:
        return None
    input_rate = values[0]
    base = _base(input_rate)
    # A database entry without a cache price: Anthropic's multipliers of the input price.
    defaults = (CACHE_WRITE_5M, CACHE_WRITE_1H, CACHE_READ)
    for index, multiplier in zip((2, 3, 4), defaults, strict=True):
        if values[index] is None:
            values[index] = base * multiplier
    return Rates(*(v for v in values if v is not None))


def _rate(value: Any) -> Rate | None:
    if value is None:
        return None
    if isinstance(value, Decimal | int | float):
        return float(value)
    tiers = getattr(value, "tiers", None)
    if tiers is None:
        return None
    steps = [(0, float(value.base))]
    steps.extend((int(t.start), float(t.price)) for t in tiers)
    return tuple(steps)


def _at(rate: Rate, total_input: int) -> float:
    if isinstance(rate, float | int):
        return rate
    chosen = rate[0][1]
    for threshold, value in rate[1:]:
        if total_input > threshold:
            chosen = value
    return chosen


def _base(rate: Rate) -> float:
    return rate if isinstance(rate, float | int) else rate[0][1]


def _scale(rate: Rate, factor: float) -> Rate:
    if isinstance(rate, float | int):
        return rate * factor
    return tuple((threshold, value * factor) for threshold, value in rate)


def price_from_settings(settings: Mapping[str, Any], where: str) -> Price:
    """A price from a project file's table (USD per million tokens)."""
    known = {"input", "output", "cache_write_5m", "cache_write_1h", "cache_read", "batch_discount"}
    unknown = set(settings) - known
    if unknown or "input" not in settings or "output" not in settings:
        raise MicroagentsError(
            f"{where}: a price needs `input` and `output` (USD per million tokens) and may set "
            f"{sorted(known - {'input', 'output'})}"
            + (f"; unknown keys {sorted(unknown)}" if unknown else "")
        )
    try:
        numbers = {key: float(value) for key, value in settings.items()}
    except (TypeError, ValueError):
        raise MicroagentsError(
            f"{where}: prices must be numbers (USD per million tokens)"
        ) from None
    input_price, output_price = numbers.pop("input"), numbers.pop("output")
    return Price.per_million(input_price, output_price, source=where, **numbers)
