"""`microagents trace list|show`: the terminal viewer of the embedded trace store.

`show` draws one run as a tree of its hops in start order. Each span is one line: what ran
(workflow, agent, tool, model call, fan-out), a timeline bar placed within the run's duration,
its own duration, tier, tokens, cost and flags (cache, retries, rate-limit waits);
escalations (``⤴ trigger: haiku → sonnet``) and errors appear as leaves at the moment they
happened. Everything is read through the public `TraceStore` API.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from ..tracing import _semconv as sc

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

    from ..tracing._store import RunRecord, SpanRecord

BAR_WIDTH = 16
MAX_HOP_WIDTH = 48
# Shown another way: as the escalation arrow, or as the "rate-limited" flag of the call.
_QUIET_EVENTS = frozenset({sc.EVENT_ESCALATION, sc.EVENT_RATE_LIMIT_WAIT})
_PLAIN_FINISH = frozenset({"end_turn", "tool_use", "stop_sequence"})


@click.group()
def trace() -> None:
    """Read the traces of past runs from the embedded trace store ($MICROAGENTS_HOME)."""


@trace.command("list")
@click.option("--workflow", metavar="NAME", help="Only runs of this workflow.")
@click.option(
    "--status",
    type=click.Choice(["ok", "error", "failed"]),
    help="Only runs that succeeded (ok) or failed (error and failed are the same).",
)
@click.option(
    "--limit", type=click.IntRange(min=1), default=20, show_default=True, help="Newest N runs."
)
def trace_list(workflow: str | None, status: str | None, limit: int) -> None:
    """List the newest runs, with tokens and cost.

    One line per run: id, workflow, start (local time), duration, status, tokens in and out,
    cost and escalations.
    """
    from rich.table import Table

    from ..tracing._store import TraceStore

    store = TraceStore()
    runs = store.list_runs(workflow=workflow, status=status, limit=limit)
    if not runs:
        if store.count_runs():
            click.echo("no runs match these filters")
        else:
            click.echo(_EMPTY_STORE.format(path=store.path))
        return
    table = Table(box=None, pad_edge=False)
    widest_id = max(len(run.run_id) for run in runs)
    for header, justify in _LIST_COLUMNS:
        # The run id is what a reader copies into `trace show`: it is never cut short.
        minimum = widest_id if header == "run" else None
        table.add_column(header, justify=justify, no_wrap=True, min_width=minimum)
    for run in runs:
        status_text = _status_text(run.status)
        if run.simulated:
            status_text.append(" (simulated)", style="dim")
        workflow_text = f"{run.workflow}@{run.version}" if run.version else run.workflow
        if run.batch_index is not None:
            workflow_text += f" #{run.batch_index}"
        table.add_row(
            run.run_id,
            workflow_text,
            _local_time(run.start_ns),
            _duration(run.duration_s),
            status_text,
            f"{run.input_tokens:,} / {run.output_tokens:,}",
            _money(run.cost_usd),
            str(run.escalations) if run.escalations else "·",
        )
    _console().print(table)


_LIST_COLUMNS: tuple[tuple[str, Any], ...] = (
    ("run", "left"),
    ("workflow", "left"),
    ("start", "left"),
    ("duration", "right"),
    ("status", "left"),
    ("tokens in / out", "right"),
    ("cost", "right"),
    ("escalations", "right"),
)
_EMPTY_STORE = (
    "no traces yet in {path}. Run a workflow (`microagents run WORKFLOW --input JSON`, "
    "or `--backend simulate` offline) and its trace is recorded here; set MICROAGENTS_HOME "
    "if your runs keep their traces elsewhere."
)


@trace.command("show")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print the run and its spans as JSON.")
@click.option("--content", is_flag=True, help="Also print captured prompts and completions.")
def trace_show(run_id: str, as_json: bool, content: bool) -> None:
    """Show one run as a tree of its hops.

    RUN_ID is a run id, a trace id, or a unique prefix of either.
    """
    from ..tracing._store import TraceStore

    store = TraceStore()
    spans = store.get_trace(run_id)
    run = store.get_run(run_id)
    if as_json:
        # Everything stored, captured content included: machines filter for themselves.
        document = {
            "run": run.to_json() if run else None,
            "spans": [span.to_json() for span in spans],
        }
        click.echo(json.dumps(document, indent=2, ensure_ascii=False))
        return
    console = _console()
    for line in _header(run, spans):
        console.print(line, highlight=False)
    console.print()
    for line in render_tree(spans):
        console.print(line, no_wrap=True, overflow="ellipsis", highlight=False)
    if content:
        console.print()
        lines = list(_content_lines(spans))
        for line in lines or [_no_content()]:
            console.print(line, highlight=False)


# -- the tree ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Row:
    guide: str
    label: str
    span: SpanRecord | None = None
    """None for an event leaf (escalation, error), whose label is the whole line."""
    style: str = ""


def render_tree(spans: Sequence[SpanRecord]) -> list[Text]:
    """The spans of one run as lines of a tree with aligned columns (header line first)."""
    from rich.text import Text

    if not spans:
        return []
    ids = {span.span_id for span in spans}
    children: dict[str | None, list[SpanRecord]] = {}
    for span in spans:
        parent = span.parent_span_id if span.parent_span_id in ids else None
        children.setdefault(parent, []).append(span)
    start = min(span.start_ns for span in spans)
    total = max(max(span.end_ns for span in spans) - start, 1)
    simulated_run = any(s.attributes.get(sc.SIMULATED) for s in children[None])

    rows = [row for root in children[None] for row in _walk(root, children, "", "")]
    hop_width = min(max(len(r.guide) + len(r.label) for r in rows if r.span), MAX_HOP_WIDTH)
    span_rows = [r.span for r in rows if r.span is not None]
    tier_width = max(len("tier"), *(len(_tier(s)) for s in span_rows))
    token_width = max(len("tokens in / out"), *(len(_tokens(s)) for s in span_rows))

    header = Text(style="bold")
    header.append("hop".ljust(hop_width) + "  " + "timeline".ljust(BAR_WIDTH) + "  ")
    header.append("time".rjust(6) + "  " + "tier".ljust(tier_width) + "  ")
    header.append("tokens in / out".rjust(token_width))
    header.append("  " + "cost".rjust(8))
    lines = [header]
    for row in rows:
        line = Text(row.guide, style="dim")
        hop = row.span
        if hop is None:
            line.append(row.label, style=row.style)
            lines.append(line)
            continue
        room = max(hop_width - len(row.guide), 2)
        label = row.label if len(row.label) <= room else row.label[: room - 1] + "…"
        line.append(label.ljust(room), style=row.style)
        line.append("  ")
        line.append_text(_bar(hop, start, total))
        line.append("  " + _duration(hop.duration_s).rjust(6) + "  ")
        line.append(_tier(hop).ljust(tier_width) + "  ", style="cyan")
        line.append(_tokens(hop).rjust(token_width) + "  ")
        cost = hop.attributes.get(sc.COST_USD)
        line.append((_money(cost) if isinstance(cost, int | float) else "").rjust(8))
        flags = _flags(hop, simulated_run)
        if flags:
            line.append("  " + flags, style="dim")
        line.rstrip()
        lines.append(line)
    return lines


def _walk(
    span: SpanRecord, children: Mapping[str | None, list[SpanRecord]], guide: str, below: str
) -> Iterator[_Row]:
    """Rows depth-first: the span, then its child spans and its events merged in time order.

    `guide` prefixes the span's own line; `below` prefixes the lines of what hangs under it.
    """
    yield _Row(guide, _label(span), span, "bold red" if span.status_code == "ERROR" else "")
    # An escalation happens between two model calls: merged by time it shows up between them.
    # Map items that start together keep their item order.
    leaves: list[tuple[int, int, int, SpanRecord | _Row]] = [
        (child.start_ns, 0, _int(child.attributes.get(sc.ITEM_INDEX)), child)
        for child in children.get(span.span_id, [])
    ]
    leaves += [(time_ns, 1, 0, row) for time_ns, row in _event_rows(span)]
    leaves.sort(key=lambda leaf: leaf[:3])
    for index, (_, _, _, leaf) in enumerate(leaves):
        last = index == len(leaves) - 1
        branch = below + ("└── " if last else "├── ")
        if isinstance(leaf, _Row):
            yield replace(leaf, guide=branch)
        else:
            yield from _walk(leaf, children, branch, below + ("    " if last else "│   "))


def _event_rows(span: SpanRecord) -> Iterator[tuple[int, _Row]]:
    recorded_exception = False
    for event in span.events:
        attributes = event.attributes
        if event.name == sc.EVENT_ESCALATION:
            trigger = attributes.get(sc.ESCALATION_TRIGGER, "?")
            from_tier = attributes.get(sc.TIER, "?")
            to_tier = attributes.get(sc.ESCALATION_TO, "?")
            text = f"⤴ {trigger}: {from_tier} → {to_tier}"
            yield event.time_ns, _Row("", text, None, "yellow")
        elif event.name == "exception":
            recorded_exception = True
            kind = attributes.get("exception.type", "error")
            message = attributes.get("exception.message", "")
            text = f"✗ {kind}: {message}" if message else f"✗ {kind}"
            yield event.time_ns, _Row("", text, None, "red")
        elif event.name not in _QUIET_EVENTS:
            yield event.time_ns, _Row("", f"• {event.name}", None, "dim")
    if span.status_code == "ERROR" and not recorded_exception:
        kind = span.attributes.get(sc.ERROR_TYPE, "error")
        message = span.status_message or "failed"
        yield span.end_ns, _Row("", f"✗ {kind}: {message}", None, "red")


def _label(span: SpanRecord) -> str:
    attributes = span.attributes
    operation = attributes.get(sc.OPERATION_NAME)
    node = attributes.get(sc.NODE_ID)
    if sc.RUN_ID in attributes:
        name = attributes.get(sc.WORKFLOW_NAME, span.name)
        version = attributes.get(sc.WORKFLOW_VERSION)
        return f"workflow {name}@{version}" if version else f"workflow {name}"
    if operation == sc.OP_CHAT:
        return f"chat {_model(span)}".rstrip()
    if operation is None and span.name.startswith("fan_out "):
        items = attributes.get(sc.FAN_OUT_ITEMS)
        return f"fan-out {node}" + (f" ({items} items)" if items is not None else "")
    if operation == sc.OP_AGENT:
        label = _named("agent", node, attributes.get(sc.AGENT_NAME))
    elif operation == sc.OP_TOOL:
        label = _named("tool", node, attributes.get(sc.TOOL_NAME))
    elif operation == sc.OP_WORKFLOW and node is not None:
        label = f"subflow {node}"
    elif operation == sc.OP_HUMAN:
        label = f"person {node}"
    else:
        return span.name  # a span of someone else's instrumentation (a tool's HTTP call...)
    item = attributes.get(sc.ITEM_INDEX)
    if item is not None:
        label += f" [{item}]"
    visit = attributes.get(sc.NODE_VISIT)
    if isinstance(visit, int) and visit > 1:
        label += f" #{visit}"
    return label


def _named(kind: str, node: object, target: object) -> str:
    """``agent classify (router)``: the node id, and what it runs when that differs."""
    if node is None:
        return f"{kind} {target}"
    if target is None or target == node:
        return f"{kind} {node}"
    return f"{kind} {node} ({target})"


def _bar(span: SpanRecord, start: int, total: int) -> Text:
    """Where the span sits within the run: dots for the run, blocks for the span."""
    from rich.text import Text

    offset = (span.start_ns - start) / total
    length = (span.end_ns - span.start_ns) / total
    first = min(int(offset * BAR_WIDTH), BAR_WIDTH - 1)
    last = max(first + 1, min(BAR_WIDTH, round((offset + length) * BAR_WIDTH)))
    operation = span.attributes.get(sc.OPERATION_NAME)
    style = "red" if span.status_code == "ERROR" else _BAR_STYLES.get(str(operation), "blue")
    bar = Text("·" * first, style="dim")
    bar.append("█" * (last - first), style=style)
    bar.append("·" * (BAR_WIDTH - last), style="dim")
    return bar


_BAR_STYLES = {sc.OP_CHAT: "magenta", sc.OP_AGENT: "cyan", sc.OP_TOOL: "green"}


def _int(value: object) -> int:
    return value if isinstance(value, int) else 0


def _tier(span: SpanRecord) -> str:
    return str(span.attributes.get(sc.TIER, ""))


def _model(span: SpanRecord) -> str:
    attributes = span.attributes
    return str(attributes.get(sc.RESPONSE_MODEL) or attributes.get(sc.REQUEST_MODEL) or "")


def _tokens(span: SpanRecord) -> str:
    attributes = span.attributes
    if sc.USAGE_INPUT_TOKENS not in attributes and sc.USAGE_OUTPUT_TOKENS not in attributes:
        return ""
    tokens_in = attributes.get(sc.USAGE_INPUT_TOKENS, 0)
    tokens_out = attributes.get(sc.USAGE_OUTPUT_TOKENS, 0)
    return f"{tokens_in:,} / {tokens_out:,}"


def _flags(span: SpanRecord, simulated_run: bool) -> str:
    attributes = span.attributes
    flags: list[str] = []
    batch = attributes.get(sc.BATCH_ID)
    waited_in_batch = attributes.get(sc.BATCH_WAITED)
    if batch and isinstance(waited_in_batch, int | float):
        # A result collected from a Message Batch, replayed into the run by the next round.
        flags.append(f"Message Batch {batch}, waited {_duration(waited_in_batch)}")
    elif attributes.get(sc.REPLAYED):
        flags.append("replayed from the journal")
    if attributes.get(sc.CACHE_HIT):
        flags.append("cache hit")
    cache_read = attributes.get(sc.USAGE_CACHE_READ)
    if isinstance(cache_read, int) and cache_read > 0:
        flags.append(f"cache read {cache_read:,}")
    if attributes.get(sc.SIMULATED) and not simulated_run:
        flags.append("simulated")
    attempts = attributes.get(sc.ATTEMPTS)
    if isinstance(attempts, int) and attempts > 1:
        flags.append(f"{attempts} attempts")
    waited = attributes.get(sc.RATE_LIMIT_WAIT)
    if isinstance(waited, int | float) and waited > 0:
        flags.append(f"rate-limited {_duration(waited)}")
    reasons = attributes.get(sc.RESPONSE_FINISH_REASONS) or []
    flags.extend(str(r) for r in reasons if r not in _PLAIN_FINISH)
    return " · ".join(flags)


# -- header and content --------------------------------------------------------------------


def _header(run: RunRecord | None, spans: Sequence[SpanRecord]) -> list[Text]:
    from rich.text import Text

    if run is None:
        start = min((s.start_ns for s in spans), default=0)
        trace_id = spans[0].trace_id if spans else "?"
        return [
            Text(
                f"trace {trace_id} · {len(spans)} span{'' if len(spans) == 1 else 's'}",
                style="bold",
            ),
            Text(
                f"started {_local_time(start)} · no finished microagents run in this trace "
                "(still running, killed, or recorded by other instrumentation)",
                style="dim",
            ),
        ]
    title = Text(f"workflow {run.workflow}" + (f"@{run.version}" if run.version else ""))
    title.stylize("bold")
    title.append(f" · run {run.run_id} · ")
    title.append_text(_status_text(run.status))
    if run.batch_index is not None:
        title.append(f" · batch item {run.batch_index}")
    if run.simulated:
        title.append(" · simulated back-end: no model was called", style="yellow")
    escalations = f"{run.escalations} escalation" + ("" if run.escalations == 1 else "s")
    calls = [s.attributes for s in spans if s.attributes.get(sc.OPERATION_NAME) == sc.OP_CHAT]
    read = sum(int(a.get(sc.USAGE_CACHE_READ) or 0) for a in calls)
    total = sum(int(a.get(sc.USAGE_INPUT_TOKENS) or 0) for a in calls)
    unknown = sum(1 for a in calls if a.get(sc.COST_UNKNOWN))
    cost = _money(run.cost_usd) + (f" + {unknown} of unknown price" if unknown else "")
    summary = Text(
        f"started {_local_time(run.start_ns)} · took {_duration(run.duration_s)} · "
        f"tokens {run.input_tokens:,} in / {run.output_tokens:,} out"
        + (f" ({read / total:.0%} from the prompt cache)" if read and total else "")
        + f" · {cost} · {escalations}"
    )
    lines = [title, summary, Text(f"trace {run.trace_id}", style="dim")]
    # Only a resumed run's span has an attempt number.
    resumed = next((s.attributes for s in spans if s.attributes.get(sc.RUN_ATTEMPT)), None)
    if resumed is not None:
        replayed = sum(1 for a in calls if a.get(sc.REPLAYED))
        lines.append(
            Text(
                f"attempt {resumed[sc.RUN_ATTEMPT]}: resumed from trace "
                f"{resumed.get(sc.RUN_RESUMED_FROM)} (its run span is linked) · {replayed} of "
                f"{len(calls)} model calls replayed from the journal, no call made",
                style="dim",
            )
        )
    return lines


_CONTENT_KEYS = (
    ("system", sc.SYSTEM_INSTRUCTIONS),
    ("input", sc.INPUT_MESSAGES),
    ("output", sc.OUTPUT_MESSAGES),
    ("arguments", sc.TOOL_CALL_ARGUMENTS),
    ("result", sc.TOOL_CALL_RESULT),
)


def _content_lines(spans: Sequence[SpanRecord]) -> Iterator[Text]:
    """Captured prompts, completions, tool arguments and results, span by span."""
    from rich.text import Text

    by_id = {span.span_id: span for span in spans}
    for span in spans:
        found = [
            (what, span.attributes[key]) for what, key in _CONTENT_KEYS if key in span.attributes
        ]
        if not found:
            continue
        parent = by_id.get(span.parent_span_id or "")
        where = f"{_label(parent)} › " if parent is not None else ""
        yield Text(f"── {where}{_label(span)}", style="bold")
        for what, raw in found:
            for role, text in _messages(what, raw):
                line = Text("  ")
                line.append(f"{role}: ", style="bold cyan")
                line.append(text)
                yield line


def _messages(what: str, raw: object) -> Iterator[tuple[str, str]]:
    """(role, text) pairs from a GenAI content attribute (JSON text) or a plain string.

    Reads both the conventions' part shapes (``content``, ``tool_call``...) and the Anthropic
    block shapes (``text``, ``tool_use``, ``tool_result``).
    """
    try:
        data = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        data = raw
    if what in ("input", "output") and isinstance(data, list):
        for message in data:
            if isinstance(message, dict) and "role" in message:
                parts = message.get("parts", message.get("content"))
                yield str(message["role"]), _parts_text(parts)
            else:
                yield what, _parts_text(message)
        return
    role = "system" if what == "system" else what
    yield role, _parts_text(data)


def _parts_text(parts: object) -> str:
    if isinstance(parts, str):
        return parts
    if isinstance(parts, dict):
        parts = [parts]
    if not isinstance(parts, list):
        return json.dumps(parts, ensure_ascii=False)
    texts: list[str] = []
    for part in parts:
        kind = part.get("type") if isinstance(part, dict) else None
        if not isinstance(part, dict):
            texts.append(part if isinstance(part, str) else json.dumps(part, ensure_ascii=False))
        elif kind == "text":
            texts.append(str(part.get("content", part.get("text", ""))))
        elif kind in ("tool_use", "tool_call"):
            arguments = part.get("arguments", part.get("input", {}))
            texts.append(f"→ {part.get('name')}({json.dumps(arguments, ensure_ascii=False)})")
        elif kind in ("tool_result", "tool_call_response"):
            result = part.get("response", part.get("content", ""))
            shown = result if isinstance(result, str) else json.dumps(result, ensure_ascii=False)
            texts.append(f"← {shown}" + (" (error)" if part.get("is_error") else ""))
        else:
            texts.append(json.dumps(part, ensure_ascii=False))
    return "\n".join(texts)


def _no_content() -> Text:
    from rich.text import Text

    return Text(
        f"no content was captured for this run; set {sc.CAPTURE_CONTENT_ENV}=true to record "
        "prompts, completions and tool arguments",
        style="dim",
    )


# -- formatting ----------------------------------------------------------------------------


def _console() -> Console:
    from rich.console import Console

    if not sys.stdout.isatty():
        # Piped or logged (`make run`, CI): nothing to fit, so no column is cut short.
        return Console(width=PIPED_WIDTH, highlight=False)
    width = shutil.get_terminal_size((100, 20)).columns
    return Console(width=max(width, 80), highlight=False)


PIPED_WIDTH = 200


def _status_text(status: str) -> Text:
    from rich.text import Text

    return Text(status, style="green" if status == "ok" else "bold red")


def _local_time(time_ns: int) -> str:
    return datetime.fromtimestamp(time_ns / 1e9).strftime("%Y-%m-%d %H:%M:%S")


def _duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.2f}s"
    minutes, rest = divmod(seconds, 60)
    if minutes >= 60:  # a Message Batch's wait can be hours
        hours, minutes = divmod(minutes, 60)
        return f"{hours:.0f}h{minutes:02.0f}m"
    return f"{minutes:.0f}m{rest:02.0f}s"


def _money(cost: float) -> str:
    if cost == 0:
        return "$0"
    if cost < 0.0001:
        return "<$0.0001"
    return f"${cost:.4f}"
