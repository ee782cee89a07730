"""What a batch (or a single run) added up to: items, escalation per node, tokens and cost per
tier, cache hits, latency percentiles.

`BatchStats` is the running tally, updated once per finished item with a few additions, in
memory that does not grow with the number of items (latencies go into a histogram);
`BatchSummary` is its frozen snapshot, as a dict for code (`to_dict`) and as rich tables for
people (`render`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ._results import RunResult


@dataclass(slots=True)
class TierTotals:
    """Calls, tokens and cost on one tier."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0
    cost_usd: float = 0.0
    unpriced_calls: int = 0

    def add(self, other: TierTotals) -> None:
        self.calls += other.calls
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cache_write_tokens += other.cache_write_tokens
        self.cache_read_tokens += other.cache_read_tokens
        self.cost_usd += other.cost_usd
        self.unpriced_calls += other.unpriced_calls

    @property
    def cache_hit_rate(self) -> float:
        """The share of input tokens read from the prompt cache."""
        total = self.input_tokens + self.cache_write_tokens + self.cache_read_tokens
        return self.cache_read_tokens / total if total else 0.0

    @property
    def tokens(self) -> int:
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_write_tokens
            + self.cache_read_tokens
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_hit_rate": round(self.cache_hit_rate, 4),
            "cost_usd": round(self.cost_usd, 8),
            "unpriced_calls": self.unpriced_calls,
        }


@dataclass(frozen=True, slots=True)
class NodeEscalation:
    """How often a node's visits climbed their ladder."""

    node: str
    visits: int
    escalated: int
    why: tuple[tuple[str, int], ...] = ()
    """The escalations' triggers with their counts, most frequent first."""

    @property
    def rate(self) -> float:
        return self.escalated / self.visits if self.visits else 0.0


class BatchStats:
    """The running tally of a batch, updated as items finish."""

    __slots__ = (
        "cache_hits",
        "cost_usd",
        "duplicates",
        "escalated_items",
        "failed",
        "in_batches",
        "latencies",
        "malformed",
        "nodes",
        "ok",
        "resumed",
        "resumed_cost_usd",
        "resumed_failed",
        "resumed_ok",
        "simulated",
        "skipped_by_budget",
        "tiers",
        "tokens",
        "triggers",
        "waiting",
    )

    def __init__(self, *, simulated: bool = False) -> None:
        self.ok = 0
        self.failed = 0
        self.waiting = 0
        self.in_batches = 0
        self.malformed = 0
        self.duplicates = 0
        self.resumed = 0
        self.resumed_ok = 0
        self.resumed_failed = 0
        self.resumed_cost_usd = 0.0
        self.skipped_by_budget = 0
        self.escalated_items = 0
        self.cost_usd = 0.0
        self.tokens = 0
        self.cache_hits = 0
        self.nodes: dict[str, list[int]] = {}  # node -> [visits, escalated visits]
        self.triggers: dict[str, Counter[str]] = {}  # node -> why its visits climbed
        self.tiers: dict[str, TierTotals] = {}
        self.latencies = LatencyHistogram()
        self.simulated = simulated

    @property
    def done(self) -> int:
        """Items finished in this run (ok or failed, or waiting for a person)."""
        return self.ok + self.failed + self.waiting

    def add_result(self, result: RunResult) -> None:
        """Count one finished run (a run suspended until a Message Batch answers is counted
        as such, and fully once it finishes in a later round)."""
        waiting_for = result.waiting_for
        if waiting_for is not None and waiting_for.kind == "batch_result":
            self.in_batches += 1
            return
        if result.status == "ok":
            self.ok += 1
        elif result.status == "waiting":
            self.waiting += 1
        else:
            self.failed += 1
        self.cost_usd += result.cost_usd
        self.latencies.add(result.latency)
        self.simulated = self.simulated or result.simulated
        if result.escalations:
            self.escalated_items += 1
            # A revisit sent back by a validator starts one rung up: that visit escalated too.
            rejected = {(e.node, e.visit) for e in result.escalations if e.trigger == "rejected"}
        else:
            rejected = set()
        for escalation in result.escalations:
            self.triggers.setdefault(escalation.node, Counter())[escalation.trigger] += 1
        for run in result.nodes:
            counts = self.nodes.get(run.node)
            if counts is None:
                counts = self.nodes[run.node] = [0, 0]
            counts[0] += 1
            attempts = run.attempts
            # Every attempt but the last that ended on a trigger led to a climb.
            if any(a.trigger is not None for a in attempts[:-1]) or (
                rejected and run.item_index is None and (run.node, run.visit) in rejected
            ):
                counts[1] += 1
            for attempt in attempts:
                tier = self.tiers.get(attempt.tier)
                if tier is None:
                    tier = self.tiers[attempt.tier] = TierTotals()
                usage = attempt.usage
                tier.calls += attempt.calls
                tier.input_tokens += usage.input_tokens
                tier.output_tokens += usage.output_tokens
                tier.cache_write_tokens += usage.cache_creation_input_tokens
                tier.cache_read_tokens += usage.cache_read_input_tokens
                tier.cost_usd += attempt.cost_usd
                tier.unpriced_calls += attempt.unpriced_calls
                self.tokens += usage.total_input_tokens + usage.output_tokens
                if attempt.cached:
                    self.cache_hits += 1

    def merge(self, other: BatchStats, *, resumed: bool) -> None:
        """Add `other`'s items to this tally: the rounds of a Message Batches run, one pass
        each. Its `resumed` figures count only if `resumed` (the first pass: later passes
        skip items finished in earlier rounds of the same run, counted already)."""
        self.ok += other.ok
        self.failed += other.failed
        self.waiting += other.waiting
        self.malformed += other.malformed
        self.duplicates += other.duplicates
        self.skipped_by_budget += other.skipped_by_budget
        self.escalated_items += other.escalated_items
        self.cost_usd += other.cost_usd
        self.tokens += other.tokens
        self.cache_hits += other.cache_hits
        self.simulated = self.simulated or other.simulated
        if resumed:
            self.resumed += other.resumed
            self.resumed_ok += other.resumed_ok
            self.resumed_failed += other.resumed_failed
            self.resumed_cost_usd += other.resumed_cost_usd
        for node, (visits, escalated) in other.nodes.items():
            counts = self.nodes.setdefault(node, [0, 0])
            counts[0] += visits
            counts[1] += escalated
        for node, triggers in other.triggers.items():
            self.triggers.setdefault(node, Counter()).update(triggers)
        for name, theirs in other.tiers.items():
            self.tiers.setdefault(name, TierTotals()).add(theirs)
        self.latencies.merge(other.latencies)

    def add_failure(self, *, malformed: bool = False, duplicate: bool = False) -> None:
        """Count an item that failed before any run (a bad line, a repeated id, a crash)."""
        self.failed += 1
        self.malformed += malformed
        self.duplicates += duplicate

    def summary(
        self,
        *,
        workflow: str,
        elapsed: float,
        out_path: str | None = None,
        budget_usd: float | None = None,
        stopped_by_budget: bool = False,
        interrupted: bool = False,
    ) -> BatchSummary:
        """A frozen snapshot of the tally."""
        latencies = self.latencies
        return BatchSummary(
            workflow=workflow,
            simulated=self.simulated,
            ok=self.ok,
            failed=self.failed,
            waiting=self.waiting,
            malformed=self.malformed,
            duplicates=self.duplicates,
            resumed=self.resumed,
            resumed_ok=self.resumed_ok,
            resumed_failed=self.resumed_failed,
            skipped_by_budget=self.skipped_by_budget,
            escalated_items=self.escalated_items,
            escalation=tuple(
                NodeEscalation(
                    node, visits, escalated, tuple(self.triggers.get(node, Counter()).most_common())
                )
                for node, (visits, escalated) in self.nodes.items()
            ),
            tiers={name: replace(totals) for name, totals in self.tiers.items()},
            cache_hits=self.cache_hits,
            tokens=self.tokens,
            cost_usd=self.cost_usd,
            total_cost_usd=self.cost_usd + self.resumed_cost_usd,
            latency_p50=latencies.percentile(0.50),
            latency_p95=latencies.percentile(0.95),
            latency_p99=latencies.percentile(0.99),
            elapsed=elapsed,
            out_path=out_path,
            budget_usd=budget_usd,
            stopped_by_budget=stopped_by_budget,
            interrupted=interrupted,
        )


def percentile(ordered: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile of sorted values (None when there are none)."""
    if not ordered:
        return None
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


class LatencyHistogram:
    """Latencies in buckets 1% wide: a few thousand counters at most, whatever the number of
    items, and nearest-rank percentiles within 1% of the exact ones."""

    __slots__ = ("_buckets", "_count", "_zero")

    GROWTH = 1.01
    _LOG_GROWTH = math.log(GROWTH)
    _TINY = 1e-6
    """Latencies below a microsecond (instant fakes) count as zero."""

    def __init__(self) -> None:
        self._buckets: dict[int, int] = {}
        self._count = 0
        self._zero = 0

    def __len__(self) -> int:
        return self._count

    def add(self, seconds: float) -> None:
        self._count += 1
        if seconds < self._TINY:
            self._zero += 1
            return
        bucket = math.floor(math.log(seconds) / self._LOG_GROWTH)
        self._buckets[bucket] = self._buckets.get(bucket, 0) + 1

    def merge(self, other: LatencyHistogram) -> None:
        self._count += other._count
        self._zero += other._zero
        for bucket, count in other._buckets.items():
            self._buckets[bucket] = self._buckets.get(bucket, 0) + count

    def percentile(self, fraction: float) -> float | None:
        """The nearest-rank percentile (the middle of its bucket); None when empty."""
        if not self._count:
            return None
        rank = max(1, math.ceil(fraction * self._count))
        seen = self._zero
        if rank <= seen:
            return 0.0
        for bucket in sorted(self._buckets):
            seen += self._buckets[bucket]
            if seen >= rank:
                return float(self.GROWTH ** (bucket + 0.5))
        return None  # unreachable: the buckets add up to the count


@dataclass(frozen=True, slots=True)
class BatchApiFigures:
    """What a batch run in Message Batches mode adds to its summary."""

    rounds: int
    message_batches: int
    calls: int
    """Requests answered (succeeded) in Message Batches, all rounds."""
    cost_usd: float
    """What they cost at batch rates."""
    standard_cost_usd: float
    """What the same calls would have cost at standard rates."""
    pending: int = 0
    """Calls deferred but not submitted (the run was detached or stopped by the budget)."""
    in_flight: int = 0
    """Message Batches submitted and not collected yet."""
    items_waiting: int = 0
    """Items whose runs wait for a result of a batch still in flight (detached)."""
    by_node: tuple[BatchApiCost, ...] = ()
    """The calls and their cost, node by node and model by model."""
    waited_p50: float | None = None
    """How long a call waited for its result (deferred to collected), median, seconds."""
    waited_max: float | None = None
    duplicates: int = 0
    """With the response cache on: calls answered with the result of the same request,
    asked once in its round."""
    standard_calls: int = 0
    """Calls made on the standard API to finish a small tail (`standard_tail`)."""
    standard_calls_cost_usd: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "rounds": self.rounds,
            "message_batches": self.message_batches,
            "calls": self.calls,
            "cost_usd": round(self.cost_usd, 8),
            "standard_cost_usd": round(self.standard_cost_usd, 8),
            "pending": self.pending,
            "in_flight": self.in_flight,
            "items_waiting": self.items_waiting,
            "by_node": [
                {
                    "node": c.node,
                    "model": c.model,
                    "calls": c.calls,
                    "cost_usd": round(c.cost_usd, 8),
                    "standard_cost_usd": round(c.standard_cost_usd, 8),
                }
                for c in self.by_node
            ],
            "waited_s": {"p50": self.waited_p50, "max": self.waited_max},
            "duplicates": self.duplicates,
            "standard_calls": self.standard_calls,
            "standard_calls_cost_usd": round(self.standard_calls_cost_usd, 8),
        }

    def describe(self) -> str:
        saved = self.standard_cost_usd - self.cost_usd
        text = (
            f"Message Batches: {self.rounds} rounds, {self.message_batches} batches, "
            f"{self.calls:,} calls ${self.cost_usd:.4f} at batch rates "
            f"(${self.standard_cost_usd:.4f} at standard rates, ${saved:.4f} saved)"
        )
        if self.duplicates:
            text += f"; {self.duplicates:,} repeated requests answered once"
        if self.standard_calls:
            text += (
                f"; the last {self.standard_calls:,} calls on the standard API "
                f"${self.standard_calls_cost_usd:.4f}"
            )
        if self.waited_p50 is not None and self.waited_max is not None:
            text += f"; a call waited {duration_text(self.waited_p50)} for its result "
            text += f"(median; longest {duration_text(self.waited_max)})"
        if self.in_flight:
            text += (
                f"; {self.in_flight} batches in flight, {self.items_waiting:,} items waiting "
                "(collect with --resume)"
            )
        elif self.items_waiting:
            text += f"; {self.items_waiting:,} items still wait for results (go on with --resume)"
        return text

    def table(self) -> Any:
        """Calls and cost node by node, model by model, at batch and at standard rates."""
        from rich.table import Table

        rows = Table("node", "model", "batch calls", "batch cost", "standard cost", box=None)
        for c in self.by_node:
            rows.add_row(
                c.node, c.model, f"{c.calls:,}", f"${c.cost_usd:.4f}", f"${c.standard_cost_usd:.4f}"
            )
        return rows


@dataclass(frozen=True, slots=True)
class BatchApiCost:
    """What one node's calls on one model cost in Message Batches."""

    node: str
    model: str
    calls: int
    cost_usd: float
    standard_cost_usd: float


def duration_text(seconds: float) -> str:
    """A wait in the unit a person reads it in: seconds, minutes or hours."""
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@dataclass(frozen=True, slots=True)
class BatchSummary:
    """The outcome of a batch run, for code (`to_dict`) and for people (`render`).

    `ok`, `failed` and the usage figures count this run; `resumed` counts items an earlier run
    had finished (skipped now, at no cost); `total_cost_usd` includes what those cost.
    """

    workflow: str
    simulated: bool
    ok: int
    failed: int
    waiting: int = 0
    """Items whose runs wait for a person (`microagents runs list --status waiting`); their
    lines say ``waiting`` until they are answered and the batch is resumed."""
    malformed: int = 0
    duplicates: int = 0
    resumed: int = 0
    resumed_ok: int = 0
    resumed_failed: int = 0
    skipped_by_budget: int = 0
    escalated_items: int = 0
    escalation: tuple[NodeEscalation, ...] = ()
    tiers: Mapping[str, TierTotals] = field(default_factory=dict)
    cache_hits: int = 0
    tokens: int = 0
    cost_usd: float = 0.0
    total_cost_usd: float = 0.0
    latency_p50: float | None = None
    latency_p95: float | None = None
    latency_p99: float | None = None
    elapsed: float = 0.0
    out_path: str | None = None
    budget_usd: float | None = None
    stopped_by_budget: bool = False
    interrupted: bool = False
    batch_api: BatchApiFigures | None = None
    """Message Batches mode: its rounds, and its calls at batch against standard rates."""

    @property
    def cache_hit_rate(self) -> float:
        """The share of all input tokens read from the prompt cache."""
        read = sum(t.cache_read_tokens for t in self.tiers.values())
        total = sum(
            t.input_tokens + t.cache_write_tokens + t.cache_read_tokens for t in self.tiers.values()
        )
        return read / total if total else 0.0

    @property
    def unpriced_calls(self) -> int:
        """Calls of models with no known price: the cost figures leave them out."""
        return sum(t.unpriced_calls for t in self.tiers.values())

    @property
    def all_ok(self) -> bool:
        """Every item of the batch has an ok result (resumed ones included) and none is left."""
        return (
            self.failed == 0
            and self.waiting == 0
            and self.resumed_failed == 0
            and not self.stopped_by_budget
            and not self.interrupted
            and (self.batch_api is None or not self.batch_api.items_waiting)
        )

    @property
    def all_ok_or_waiting(self) -> bool:
        """As `all_ok`, but items waiting for a person count as done: the batch exits 0."""
        return (
            self.failed == 0
            and self.resumed_failed == 0
            and not self.stopped_by_budget
            and not self.interrupted
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready figures."""
        return {
            "workflow": self.workflow,
            "simulated": self.simulated,
            "items": {
                "ok": self.ok,
                "failed": self.failed,
                "waiting": self.waiting,
                "malformed": self.malformed,
                "duplicates": self.duplicates,
                "resumed": self.resumed,
                "resumed_ok": self.resumed_ok,
                "resumed_failed": self.resumed_failed,
                "skipped_by_budget": self.skipped_by_budget,
                "escalated": self.escalated_items,
            },
            "escalation": {
                e.node: {
                    "visits": e.visits,
                    "escalated": e.escalated,
                    "rate": round(e.rate, 4),
                    "why": dict(e.why),
                }
                for e in self.escalation
            },
            "tiers": {name: totals.to_dict() for name, totals in self.tiers.items()},
            "cache_hits": self.cache_hits,
            "cache_hit_rate": round(self.cache_hit_rate, 4),
            "tokens": self.tokens,
            "cost_usd": round(self.cost_usd, 8),
            "unpriced_calls": self.unpriced_calls,
            "total_cost_usd": round(self.total_cost_usd, 8),
            "latency_s": {
                "p50": self.latency_p50,
                "p95": self.latency_p95,
                "p99": self.latency_p99,
            },
            "elapsed_s": round(self.elapsed, 3),
            "out_path": self.out_path,
            "budget_usd": self.budget_usd,
            "stopped_by_budget": self.stopped_by_budget,
            "interrupted": self.interrupted,
            **({"batch_api": self.batch_api.to_dict()} if self.batch_api else {}),
        }

    def render(self) -> Any:
        """Rich renderables: a headline, escalation per node and usage per tier."""
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        title = Text()
        if self.simulated:
            title.append("SIMULATED ", style="bold yellow")
        title.append(f"{self.workflow}: ", style="bold")
        title.append(
            f"{self.ok} ok, {self.failed} failed"
            + (f" ({self.malformed} malformed lines)" if self.malformed else "")
            + (f", {self.waiting} waiting for a person" if self.waiting else "")
            + (f", {self.resumed} resumed" if self.resumed else "")
            + (f", {self.skipped_by_budget} not started (budget)" if self.skipped_by_budget else "")
            + f" in {self.elapsed:.1f} s"
        )
        lines: list[Any] = [title]
        if self.simulated:
            lines.append(
                Text(
                    "answers were made up by the simulated back-end from the agents' examples; "
                    "tokens, costs and latencies are estimates",
                    style="yellow",
                )
            )
        cost = f"cost ${self.cost_usd:.4f}"
        if self.unpriced_calls:
            cost += f" + {self.unpriced_calls:,} calls of unknown price"
        if self.resumed:
            cost += f" (batch total ${self.total_cost_usd:.4f})"
        if self.budget_usd is not None:
            cost += f" of a ${self.budget_usd:g} budget"
        latency = "latency " + " ".join(
            f"{name} {_seconds(value)}"
            for name, value in (
                ("p50", self.latency_p50),
                ("p95", self.latency_p95),
                ("p99", self.latency_p99),
            )
        )
        lines.append(
            Text(
                f"{cost}  ·  {self.tokens:,} tokens  ·  prompt cache {self.cache_hit_rate:.0%} "
                f"of input read  ·  {self.cache_hits} response-cache hits"
            )
        )
        if self.batch_api is None:  # in rounds, an item's run time is its replay's
            lines.append(Text(latency))
        if self.batch_api is not None:
            lines.append(Text(self.batch_api.describe()))
            if self.batch_api.by_node:
                lines.append(self.batch_api.table())
        if self.escalation:
            nodes = Table("node", "visits", "escalated", "rate", "why", box=None)
            for e in self.escalation:
                why = ", ".join(f"{trigger} {count}" for trigger, count in e.why)
                nodes.add_row(e.node, str(e.visits), str(e.escalated), f"{e.rate:.1%}", why)
            lines.append(nodes)
        if self.tiers:
            tiers = Table(
                "tier", "calls", "input", "output", "cache write", "cache read", "hit rate",
                "cost", box=None,
            )  # fmt: skip
            for name, t in self.tiers.items():
                tiers.add_row(
                    name, f"{t.calls:,}", f"{t.input_tokens:,}", f"{t.output_tokens:,}",
                    f"{t.cache_write_tokens:,}", f"{t.cache_read_tokens:,}",
                    f"{t.cache_hit_rate:.0%}",
                    f"${t.cost_usd:.4f}" + (" + ?" if t.unpriced_calls else ""),
                )  # fmt: skip
            lines.append(tiers)
        return Group(*lines)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}s"
