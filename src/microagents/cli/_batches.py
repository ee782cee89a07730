"""`microagents batches`: the Message Batches this project's journal knows (Message Batches
mode, `microagents run --batch-api`), as the API sees them; cancel one; collect those in
flight.

The journal (``MICROAGENTS_HOME/journal.sqlite3``) names the batches; their request counts
and states come from the API through the SDK (``ANTHROPIC_API_KEY``, ``ANTHROPIC_BASE_URL``).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import MicroagentsError
from ._common import EXIT_OK, make_project, project_options

if TYPE_CHECKING:
    from ..runtime._batch_calls import BatchCallStore, MessageBatchRecord

COUNTS = ("processing", "succeeded", "errored", "canceled", "expired")


@click.group()
def batches() -> None:
    """The Message Batches of `microagents run --batch-api`: list, show, cancel, collect."""


def _store() -> BatchCallStore:
    from .._settings import microagents_home
    from ..runtime._batch_calls import BatchCallStore
    from ..runtime._journal_store import JOURNAL_FILE

    path = microagents_home() / JOURNAL_FILE
    if not path.is_file():
        raise MicroagentsError(f"no journal at {path}: no batch has run here yet")
    return BatchCallStore(path)


def _records(store: BatchCallStore, batch_id: str | None = None) -> list[MessageBatchRecord]:
    records = store.message_batches()
    if batch_id is None:
        return records
    found = [r for r in records if r.id == batch_id]
    if not found:
        raise MicroagentsError(
            f"the journal knows no Message Batch '{batch_id}': see microagents batches list"
        )
    return found


def _retrieve(ids: list[str], *, cancel: bool = False) -> dict[str, Any]:
    """The API's view of each Message Batch (canceling each first, with `cancel`)."""
    import anyio

    from ..models._anthropic import AnthropicModel
    from ._run import NO_KEY_MESSAGE

    if not ids:
        return {}
    if not os.environ.get("ANTHROPIC_API_KEY"):
        raise MicroagentsError(NO_KEY_MESSAGE)

    async def main() -> dict[str, Any]:
        import anthropic

        backend = AnthropicModel()
        client = backend.client
        found: dict[str, Any] = {}
        try:
            for batch_id in ids:
                try:
                    if cancel:
                        found[batch_id] = await client.messages.batches.cancel(batch_id)
                    else:
                        found[batch_id] = await client.messages.batches.retrieve(batch_id)
                except anthropic.APIStatusError as exc:
                    found[batch_id] = exc
        finally:
            await client.close()
        return found

    return anyio.run(main)


def _describe(record: MessageBatchRecord, found: Any) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": record.id,
        "batch": record.batch,
        "round": record.round,
        "requests": record.requests,
        "recorded": record.status,
        "status": None,
        "counts": record.counts,
    }
    if isinstance(found, Exception):
        view["error"] = str(found)
    elif found is not None:
        view["status"] = found.processing_status
        view["counts"] = {name: getattr(found.request_counts, name) for name in COUNTS}
    return view


def _line(view: dict[str, Any]) -> str:
    counts = view["counts"] or {}
    described = ", ".join(f"{n} {k}" for k, n in counts.items() if n) or "-"
    status = view["status"] or ("unreachable" if "error" in view else "-")
    return (
        f"{view['id']}  round {view['round']}  {view['requests']:>7,} requests  "
        f"{status:<11}  (journal: {view['recorded']})  {described}"
    )


@batches.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--all", "show_all", is_flag=True, help="Ask the API about collected batches too.")
def list_batches(as_json: bool, show_all: bool) -> None:
    """The Message Batches the journal knows, with the API's request counts and states."""
    store = _store()
    try:
        records = _records(store)
    finally:
        store.close()
    # Intents (no batch id yet) and, unless --all, collected batches are not asked about.
    ask = [r.id for r in records if r.in_flight or (show_all and r.status == "collected")]
    found = _retrieve(ask)
    for record in records:
        view = _describe(record, found.get(record.id))
        click.echo(json.dumps(view) if as_json else _line(view))
    if not records and not as_json:
        click.echo("no Message Batches in the journal", err=True)


@batches.command("show")
@click.argument("batch_id")
@click.option("--json", "as_json", is_flag=True, help="The batch and its calls as JSON.")
def show_batch(batch_id: str, as_json: bool) -> None:
    """One Message Batch: the API's view, and the state of each of its calls."""
    store = _store()
    try:
        record = _records(store, batch_id)[0]
        calls = store.calls_of(batch_id)
    finally:
        store.close()
    ask = [record.id] if record.status != "submitting" else []
    view = _describe(record, _retrieve(ask).get(record.id))
    states = Counter(state for _, _, _, state, _, _ in calls)
    view["calls"] = [
        {"custom_id": c, "run_id": r, "node": n, "state": s, "outcome": o, "error": e}
        for c, r, n, s, o, e in calls
    ]
    if as_json:
        click.echo(json.dumps(view, indent=2))
        return
    click.echo(_line(view))
    click.echo("calls: " + (", ".join(f"{n} {s}" for s, n in sorted(states.items())) or "none"))
    for call in view["calls"]:
        outcome = f"  {call['outcome']}" if call["outcome"] else ""
        error = f"  {call['error']}" if call["error"] else ""
        click.echo(
            f"  {call['custom_id']}  {call['run_id']}  {call['node']}  {call['state']}"
            f"{outcome}{error}"
        )


@batches.command("cancel")
@click.argument("batch_id")
def cancel_batch(batch_id: str) -> None:
    """Cancel a Message Batch in flight; the next collect fails its canceled items."""
    store = _store()
    try:
        record = _records(store, batch_id)[0]
        if not record.in_flight:
            raise MicroagentsError(
                f"Message Batch '{batch_id}' is {record.status}: only one in flight can be canceled"
            )
        found = _retrieve([batch_id], cancel=True)[batch_id]
        if isinstance(found, Exception):
            raise MicroagentsError(f"the API refused to cancel {batch_id}: {found}")
        store.cancel(batch_id)
    finally:
        store.close()
    click.echo(
        f"{batch_id}: {found.processing_status} (cancel requested); collect it with "
        "microagents batches collect"
    )


@batches.command("collect")
@click.option(
    "--detach", is_flag=True, help="Exit once the next round is submitted, instead of finishing."
)
@click.option("--concurrency", type=click.IntRange(min=1), default=16, show_default=True)
@project_options
def collect(
    detach: bool,
    concurrency: int,
    agent_dirs: tuple[Path, ...],
    tool_modules: tuple[str, ...],
    sources: tuple[str, ...],
) -> int:
    """Collect the Message Batches in flight and go on, as `microagents run ... --batch-api
    --resume` would for each batch they belong to (its workflow and input are those the
    journal recorded; --agents/--tools/--source override how the workflow is loaded).

    \b
    Exit status: as `microagents run` (the worst of the batches collected).
    """
    from ..models._tiers import TierTable
    from ..runtime._journal import batch_key
    from ._run import NO_KEY_MESSAGE, _engine, _run_batch

    store = _store()
    try:
        origins = store.origins()
    finally:
        store.close()
    if not origins:
        click.echo("no Message Batches in flight", err=True)
        return EXIT_OK
    if not os.environ.get("ANTHROPIC_API_KEY"):
        raise MicroagentsError(NO_KEY_MESSAGE)
    worst = EXIT_OK
    for key, label, out_path, origin_text in origins:
        origin: dict[str, Any] = json.loads(origin_text) if origin_text else {}
        if not origin.get("workflow") or " < " not in label:
            raise MicroagentsError(
                f"batch {key} was not started by `microagents run`: collect it from Python "
                "with run_batch(..., batch_api=..., resume=True)"
            )
        # Recorded by `microagents run`; a journal from before names it only in the label.
        input_file = Path(origin.get("input_file") or label.split(" < ", 1)[1])
        project = make_project(
            agent_dirs or tuple(Path(p) for p in origin.get("agents", [])),
            tool_modules or tuple(origin.get("tools", [])),
            sources or tuple(origin.get("sources", [])),
            database=origin.get("database"),
        )
        workflow = project.load_workflow(Path(origin["workflow"]))
        if batch_key(workflow, input_file) != key:
            where = (
                ""
                if input_file.is_absolute()
                else f", or the input path {input_file} is relative to another folder (run "
                "collect from the folder `microagents run` ran in)"
            )
            raise MicroagentsError(
                f"batch {key} ({label}) cannot be collected: the workflow {origin['workflow']} "
                f"or its agents changed since it was submitted{where}"
            )
        tiers = TierTable.load()
        engine = _engine(
            "anthropic",
            workflow,
            tiers,
            cache=bool(origin.get("cache")),
            cache_ttl="5m",
            latency_scale=0.0,
            origin=origin,
            batch_api=True,
        )
        code = _run_batch(
            engine,
            workflow,
            input_file,
            Path(out_path) if out_path else None,
            concurrency=concurrency,
            resume=True,
            budget_usd=None,
            batch_api=True,
            detach=detach,
            standard_tail=int(origin.get("standard_tail") or 0),
        )
        worst = max(worst, code)
    return worst
