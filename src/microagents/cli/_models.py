"""`microagents models`: the tier table as a run will use it — models, prices, limits,
capabilities and deprecations — so that nothing about cost or speed is a surprise."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:  # loaded when the command runs, so that `microagents --help` stays quick
    from ..models._prices import Price, Rate
    from ..models._tiers import Tier, TierTable


@click.command("models")
@click.option("--json", "as_json", is_flag=True, help="Print the table as JSON.")
def models(as_json: bool) -> None:
    """Show each tier's model, its prices (USD per million tokens: input, output, cache
    writes and reads, Message Batches), the client-side rate limits and where they come
    from, what the model can be asked for, and whether the installed SDK deprecates it.

    \b
    The table is the defaults, then [tool.microagents.tiers] and [tool.microagents.models]
    in pyproject.toml (or microagents.toml), then MICROAGENTS_TIER_<NAME> variables.
    """
    from ..models._tiers import TierTable

    tiers = TierTable.load()
    rows = [_row(tier, tiers) for tier in tiers.tiers]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(100, _width()), highlight=False)
    prices = Table(
        "tier", "model", "input", "output", "cache write 5m", "cache write 1h", "cache read",
        "batch in / out", "status", box=None, title="prices (USD per million tokens)",
        title_justify="left",
    )  # fmt: skip
    for row in rows:
        price = row["price"]
        if price is None:
            cells = ["unknown"] + [""] * 5
        else:
            cells = [
                _money(price["input"]),
                _money(price["output"]),
                _money(price["cache_write_5m"]),
                _money(price["cache_write_1h"]),
                _money(price["cache_read"]),
                f"{_money(price['batch_input'])} / {_money(price['batch_output'])}",
            ]
        prices.add_row(row["tier"], row["model"], *cells, _status(row))
    console.print(prices)
    console.print()
    limits = Table(
        "tier", "requests/min", "input tokens/min", "output tokens/min", "limits from",
        "structured output", "effort", "caches from", box=None,
        title="limits and capabilities", title_justify="left",
    )  # fmt: skip
    for row in rows:
        limit = row["limits"]
        capability = row["capabilities"]
        limits.add_row(
            row["tier"],
            _count(limit["requests_per_minute"]),
            _count(limit["input_tokens_per_minute"]),
            _count(limit["output_tokens_per_minute"]),
            limit["source"],
            "native" if capability["structured_outputs"] else "answer tool",
            (row["effort"] or "model default") if capability["effort"] else "not offered",
            f"{capability['min_cacheable_tokens']:,} tokens",
        )
    console.print(limits)
    console.print()
    for row in rows:
        if row["deprecated"]:
            console.print(
                f"{row['tier']}: the installed anthropic SDK deprecates {row['model']} (end of "
                f"life {row['deprecated']}); choose another with [tool.microagents.tiers."
                f'{row["tier"]}] model = "..." or MICROAGENTS_TIER_{row["tier"].upper()}=...',
                markup=False,
            )
    sources = sorted({row["price"]["source"] for row in rows if row["price"] is not None})
    console.print(
        f"Prices from {', '.join(sources) or 'nowhere'}. Limits hold until the API's "
        "anthropic-ratelimit-* headers say otherwise; a run's progress line says which limit "
        "holds it back. Set them under [tool.microagents.tiers.NAME] (rpm, input_tpm, "
        'output_tpm), prices and capabilities under [tool.microagents.models."MODEL-ID"].',
        markup=False,
    )


def _row(tier: Tier, tiers: TierTable) -> dict[str, Any]:
    from ..models._capabilities import deprecation_of

    price = tiers.price_of(tier.model)
    capabilities = tiers.capabilities_of(tier.model)
    deprecation = deprecation_of(tier.model)
    limits = tier.limits
    return {
        "tier": tier.name,
        "model": tier.model,
        "price": _price(price) if price is not None else None,
        "limits": {
            "requests_per_minute": limits.requests_per_minute,
            "input_tokens_per_minute": limits.input_tokens_per_minute,
            "output_tokens_per_minute": limits.output_tokens_per_minute,
            "source": limits.source,
        },
        "capabilities": {
            "structured_outputs": capabilities.structured_outputs,
            "forced_tool_choice": capabilities.forced_tool_choice,
            "effort": capabilities.effort,
            "min_cacheable_tokens": capabilities.min_cacheable_tokens,
        },
        "effort": tier.effort,
        "deprecated": deprecation.end_of_life if deprecation is not None else None,
    }


def _price(price: Price) -> dict[str, Any]:
    standard, batch = price.standard, price.batch
    return {
        "input": _base(standard.input),
        "output": _base(standard.output),
        "cache_write_5m": _base(standard.cache_write_5m),
        "cache_write_1h": _base(standard.cache_write_1h),
        "cache_read": _base(standard.cache_read),
        "batch_input": _base(batch.input),
        "batch_output": _base(batch.output),
        "long_context": not isinstance(standard.input, float | int),
        "source": price.source,
    }


def _base(rate: Rate) -> float:
    return float(rate) if isinstance(rate, float | int) else rate[0][1]


def _status(row: dict[str, Any]) -> str:
    status = "deprecated" if row["deprecated"] else "current"
    if row["price"] is not None and row["price"]["long_context"]:
        status += ", long-context rates"
    return status


def _money(value: float) -> str:
    return f"${value:g}"


def _count(value: float | None) -> str:
    return "unlimited" if value is None else f"{value:,.0f}"


def _width() -> int:
    import shutil

    return shutil.get_terminal_size((120, 20)).columns
