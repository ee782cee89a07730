"""`microagents runs`: the journal's runs — list them, show one, resume one (answering the
question a waiting run asks).

`runs resume` loads the workflow the way the run was started (the file, back-end, database,
tools and agent folders recorded with it); any of those options given here replaces the
recorded one.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import MicroagentsError
from ._common import EXIT_OK, make_project

if TYPE_CHECKING:
    from ..runtime._journal_store import RunRecord

STATUSES = ("waiting", "failed", "running", "ok")


@click.group("runs")
def runs() -> None:
    """Durable runs in the journal: list, show, resume (and answer) them."""


@runs.command("list")
@click.option("--status", type=click.Choice(STATUSES), help="Only runs with this status.")
@click.option("--workflow", metavar="NAME", help="Only runs of this workflow.")
@click.option("--limit", default=50, show_default=True, help="At most this many, newest first.")
def list_runs(status: str | None, workflow: str | None, limit: int) -> int:
    """The latest runs: id, status, workflow, attempts, and what a waiting run waits for."""
    records = _call(lambda journal: journal.runs(status=status, workflow=workflow, limit=limit))
    if not records:
        click.echo("no runs in the journal" + (f" with status {status}" if status else ""))
        return EXIT_OK
    for record in records:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.updated))
        waiting = record.waiting
        waits = ""
        if waiting is not None:
            what = "a Message Batch result" if waiting.kind == "batch_result" else "a person"
            waits = f"  waits at {waiting.node} for {what}"
        click.echo(
            f"{record.run_id}  {record.status:<8} {record.workflow}  {when}  "
            f"attempt {record.attempts}{waits}"
        )
    return EXIT_OK


@runs.command("show")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print the run as JSON.")
def show(run_id: str, as_json: bool) -> int:
    """A run: its status, input, what it waits for, and every recorded step."""
    record, steps = _call(lambda journal: _run_and_steps(journal, run_id))
    data = _record_json(record, steps)
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return EXIT_OK
    click.echo(
        f"run {record.run_id}: {record.status} ({record.workflow}, attempt {record.attempts})"
    )
    if record.error:
        click.echo(f"error: {record.error}")
    if record.waiting is not None and record.waiting.kind == "batch_result":
        click.echo(f"waiting at node '{record.waiting.node}' for {record.waiting.question}")
        click.echo("collect it: microagents batches collect (or the batch's command + --resume)")
    elif record.waiting is not None:
        click.echo(f"waiting at node '{record.waiting.node}': {record.waiting.question}")
        click.echo(f"answer schema: {json.dumps(dict(record.waiting.schema))}")
        click.echo(f"answer it: microagents runs resume {record.run_id} --answer 'JSON'")
    replayed = sum(1 for step in steps if step["replayed"])
    click.echo(
        f"{len(steps)} recorded steps (a resume replays them without a call)"
        + (f"; {replayed} came from the journal in attempt {record.attempts}:" if replayed else ":")
    )
    for step in steps:
        state = "" if step["finished"] else "  (started, no result)"
        origin = "replayed" if step["replayed"] else "live"
        click.echo(f"  {step['key']}  {step['kind']}  attempt {step['attempt']} {origin}{state}")
    return EXIT_OK


@runs.command("resume")
@click.argument("run_id")
@click.option("--answer", metavar="JSON", help="The answer a waiting run asks for.")
@click.option(
    "--backend",
    type=click.Choice(["anthropic", "simulate"]),
    help="Model back-end (default: the one the run started with).",
)
@click.option("--database", metavar="URL", help="Database for the SQL tools (default: the run's).")
@click.option(
    "--rerun-changed",
    is_flag=True,
    help="Run a step whose request changed since it was recorded (and every later one) again.",
)
@click.option(
    "--rerun-tools",
    is_flag=True,
    help="Call again a tool that had started without a recorded result.",
)
@click.option(
    "--agents",
    "agent_dirs",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Folder of agent specs (default: the run's).",
)
@click.option("--tools", "tool_modules", multiple=True, metavar="MODULE", help="Tool modules.")
@click.option("--source", "sources", multiple=True, metavar="SOURCE", help="Registry sources.")
def resume(
    run_id: str,
    answer: str | None,
    backend: str | None,
    database: str | None,
    rerun_changed: bool,
    rerun_tools: bool,
    agent_dirs: tuple[Path, ...],
    tool_modules: tuple[str, ...],
    sources: tuple[str, ...],
) -> int:
    """Resume RUN_ID from the journal: recorded steps replay without a call, and the run goes
    on from the first step without a record. --answer answers a waiting run's question.

    \b
    Exit status: as `microagents run` (0 ok, 1 failed, 3 waiting again).
    """
    import anyio

    from ..models._tiers import TierTable
    from ..runtime._journal_store import SQLiteJournal
    from ._run import _engine, _latency_scale, report_result

    parsed = _parse_answer(answer) if answer is not None else None
    record = _call(lambda journal: _existing(journal, run_id))
    origin = dict(record.origin)
    if not origin.get("workflow"):
        raise MicroagentsError(
            f"run '{record.run_id}' was not started by `microagents run`; resume it from Python "
            "with engine.resume(run_id, workflow=...)"
        )
    chosen = backend or origin.get("backend") or "anthropic"
    project = make_project(
        agent_dirs or tuple(Path(p) for p in origin.get("agents", [])),
        tool_modules or tuple(origin.get("tools", [])),
        sources or tuple(origin.get("sources", [])),
        database=database or origin.get("database"),
    )
    workflow = project.load_workflow(Path(origin["workflow"]))
    scale = _latency_scale() if chosen == "simulate" else 0.0
    engine = _engine(
        chosen,
        workflow,
        TierTable.load(),
        cache=False,
        cache_ttl="5m",
        latency_scale=scale,
        origin=origin,
    )
    assert isinstance(engine.journal, SQLiteJournal)

    async def main() -> Any:
        try:
            return await engine.resume(
                record.run_id,
                parsed,
                workflow=workflow,
                rerun_changed=rerun_changed,
                rerun_tools=rerun_tools,
            )
        finally:
            with anyio.CancelScope(shield=True):
                await engine.aclose()

    return report_result(anyio.run(main), workflow.name)


def _parse_answer(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise MicroagentsError(
            f"--answer is not valid JSON: {exc.msg} at column {exc.colno}; "
            """give a value such as '{"approved": true}' (mind the shell's quotes)"""
        ) from None


def _call(work: Any) -> Any:
    """Run `work(journal)` against the default journal, closing it after."""
    import anyio

    from ..runtime._journal_store import SQLiteJournal

    async def main() -> Any:
        journal = SQLiteJournal()
        try:
            return await work(journal)
        finally:
            await journal.aclose()

    return anyio.run(main)


async def _existing(journal: Any, run_id: str) -> RunRecord:
    from ..errors import RunNotFound

    record: RunRecord | None = await journal.run(run_id)
    if record is None:
        raise RunNotFound(run_id)
    return record


async def _run_and_steps(journal: Any, run_id: str) -> tuple[RunRecord, list[dict[str, Any]]]:
    record = await _existing(journal, run_id)
    steps = await journal.steps(record.run_id)
    # A step recorded by an earlier attempt came from the journal in the last one.
    listed = [
        {
            "key": s.key,
            "kind": s.kind,
            "finished": s.result is not None,
            "attempt": s.attempt,
            "replayed": s.attempt < record.attempts and s.result is not None,
        }
        for s in sorted(steps.values(), key=lambda s: s.key)
    ]
    return record, listed


def _record_json(record: RunRecord, steps: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "run_id": record.run_id,
        "workflow": record.workflow,
        "status": record.status,
        "attempts": record.attempts,
        "input": dict(record.input),
        "error": record.error,
        "trace_id": record.trace,
        "span_id": record.span,
        "batch": record.batch,
        "waiting_for": record.waiting.to_json() if record.waiting is not None else None,
        "steps": steps,
    }
