"""`microagents run`: one input printed as JSON, or a JSONL file run as a checkpointed batch.

The command only parses options and shows progress; the work is the library's `Engine` and
`BatchRunner`. Heavy modules (the engine, the SDK) are imported when the command runs, so that
other commands start fast.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .._groups import single_errors
from ..errors import MicroagentsError
from ._common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_WAITING,
    echo_problems,
    make_project,
    project_options,
)

if TYPE_CHECKING:
    import anyio
    from rich.console import Console

    from ..graph._compiled import CompiledWorkflow
    from ..models._protocol import CacheTTL
    from ..models._tiers import TierTable
    from ..results._results import RunResult
    from ..results._summary import BatchSummary
    from ..runtime._batch import BatchProgress
    from ..runtime._engine import Engine

SIMULATED_LATENCY_ENV = "MICROAGENTS_SIMULATED_LATENCY_SCALE"
DEFAULT_SIMULATED_LATENCY_SCALE = 0.05
"""A twentieth of a real model's latency: a dry run shows concurrency without the wait."""
NO_KEY_MESSAGE = "ANTHROPIC_API_KEY is not set: export it, or run with --backend simulate"
PLAIN_PROGRESS_INTERVAL = 5.0
RICH_PROGRESS_INTERVAL = 0.2
DEFAULT_CONCURRENCY = 16  # the engine's default, without importing the engine to say so


@click.command("run")
@click.argument("workflow", type=click.Path(path_type=Path))
@click.option("--input", "input_json", metavar="JSON", help="One input, as a JSON object.")
@click.option(
    "--input-file",
    type=click.Path(path_type=Path),
    metavar="FILE.jsonl",
    help="Many inputs: one JSON object per line.",
)
@click.option(
    "--out",
    "out_path",
    type=click.Path(path_type=Path),
    metavar="FILE",
    help="Where batch results go (default: <input stem>.results.jsonl in this folder).",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=DEFAULT_CONCURRENCY,
    show_default=True,
    help="Items run at the same time.",
)
@click.option(
    "--backend",
    type=click.Choice(["anthropic", "simulate"]),
    default="anthropic",
    show_default=True,
    help="anthropic needs ANTHROPIC_API_KEY; simulate answers offline from the agents' examples.",
)
@click.option(
    "--resume", is_flag=True, help="Continue an earlier run of this batch: skip what it finished."
)
@click.option(
    "--budget-usd",
    type=click.FloatRange(min=0, min_open=True),
    metavar="X",
    help="Stop starting new items once the batch has spent X dollars (resumes included).",
)
@click.option(
    "--cache",
    is_flag=True,
    help="Answer repeated identical requests from a response cache under MICROAGENTS_HOME.",
)
@click.option(
    "--cache-ttl",
    type=click.Choice(["5m", "1h"]),
    default="5m",
    show_default=True,
    help="How long the prompt cache keeps a repeated prefix: 5m (renewed by every read) or "
    "1h (costs more to write; pays when calls of an agent come more than 5 minutes apart).",
)
@click.option(
    "--database",
    metavar="URL",
    envvar="MICROAGENTS_DATABASE",
    help="What the sql.schema and sql.query tools read, read-only: sqlite:///path.db, "
    "duckdb:///path.duckdb or postgresql://... (default: $MICROAGENTS_DATABASE).",
)
@click.option(
    "--batch-api",
    is_flag=True,
    help="Message Batches mode (with --input-file): half the price, no rate-limit ceiling, "
    "results within hours. Runs advance in rounds of batches; see docs/running.md.",
)
@click.option(
    "--detach",
    is_flag=True,
    help="With --batch-api: exit once a round is submitted; collect later with the same "
    "command and --resume.",
)
@click.option(
    "--standard-tail",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    metavar="N",
    help="With --batch-api: when a round after the first would hold at most N calls, make "
    "them (and the calls after them) on the standard API instead: seconds instead of another "
    "round's wait, at standard prices. The run says what that costs.",
)
@project_options
def run(
    workflow: Path,
    input_json: str | None,
    input_file: Path | None,
    out_path: Path | None,
    concurrency: int,
    backend: str,
    resume: bool,
    budget_usd: float | None,
    cache: bool,
    cache_ttl: CacheTTL,
    database: str | None,
    batch_api: bool,
    detach: bool,
    standard_tail: int,
    agent_dirs: tuple[Path, ...],
    tool_modules: tuple[str, ...],
    sources: tuple[str, ...],
) -> int:
    """Run WORKFLOW on one input (--input) or on every line of a JSONL file (--input-file).

    One input prints its result as JSON, and a summary on stderr. A batch writes one JSON
    line per input line to --out, in the order items finish, each with its line number
    ("index"); checkpoints every finished item under MICROAGENTS_HOME; and with --resume
    skips what an earlier run finished, with no model call and no new line.

    --backend simulate labels everything SIMULATED. Its latency is scaled by
    MICROAGENTS_SIMULATED_LATENCY_SCALE (default 0.05 for a snappy dry run; 0 answers at once).

    \b
    Exit status: 0 every item ok; 1 some items failed, or the budget stopped the batch;
    2 bad input or spec; 3 a run waits for a person (microagents runs resume RUN_ID
    --answer JSON); 130 interrupted (finished items are checkpointed: use --resume).
    """
    if (input_json is None) == (input_file is None):
        raise MicroagentsError(
            "give one input with --input JSON, or a batch with --input-file FILE.jsonl"
        )
    if detach and not batch_api:
        raise MicroagentsError("--detach goes with --batch-api: only a batch round can be left")
    if standard_tail and not batch_api:
        raise MicroagentsError("--standard-tail goes with --batch-api: it ends a run of rounds")
    if batch_api and backend != "anthropic":
        raise MicroagentsError("--batch-api needs --backend anthropic: Message Batches are an API")
    run_input: dict[str, Any] | None = None
    if input_json is not None:
        for flag, given in (
            ("--out", out_path is not None),
            ("--resume", resume),
            ("--budget-usd", budget_usd is not None),
            ("--batch-api", batch_api),
        ):
            if given:
                raise MicroagentsError(f"{flag} goes with --input-file; --input prints its result")
        run_input = _parse_input(input_json)
    scale = _latency_scale() if backend == "simulate" else 0.0
    project = make_project(agent_dirs, tool_modules, sources, database=database)
    if project.database is not None:
        project.database.connection()  # a wrong URL or path is bad input: say so before running
    compiled = project.load_workflow(workflow)
    from ..models._checks import model_problems, uses_of_workflow
    from ..models._tiers import TierTable

    tiers = TierTable.load()
    echo_problems([*compiled.warnings, *model_problems(uses_of_workflow(compiled), tiers)])
    if backend == "anthropic" and not os.environ.get("ANTHROPIC_API_KEY"):
        raise MicroagentsError(NO_KEY_MESSAGE)
    if input_file is not None and not input_file.is_file():
        raise MicroagentsError(f"input file '{input_file}' does not exist or is not a file")
    # Recorded with each run, so that `microagents runs resume` can load it the same way.
    origin = {
        "workflow": str(workflow.resolve()),
        "backend": backend,
        "database": database,
        "tools": list(tool_modules),
        "agents": [str(folder.resolve()) for folder in agent_dirs],
        "sources": list(sources),
        # What `microagents batches collect` needs to go on with a batch in Message Batches mode.
        **(
            {
                "input_file": str(input_file.resolve()),
                "cache": cache,
                "standard_tail": standard_tail,
            }
            if batch_api and input_file is not None
            else {}
        ),
    }
    engine = _engine(
        backend,
        compiled,
        tiers,
        cache=cache,
        cache_ttl=cache_ttl,
        latency_scale=scale,
        origin=origin,
        batch_api=batch_api,
    )
    if run_input is not None:
        return _run_one(engine, compiled, run_input)
    assert input_file is not None
    return _run_batch(
        engine,
        compiled,
        input_file,
        out_path,
        concurrency=concurrency,
        resume=resume,
        budget_usd=budget_usd,
        batch_api=batch_api,
        detach=detach,
        standard_tail=standard_tail,
    )


def _parse_input(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MicroagentsError(
            f"--input is not valid JSON: {exc.msg} at column {exc.colno}; "
            """give an object such as '{"ticket": "..."}' (mind the shell's quotes)"""
        ) from None
    if not isinstance(value, dict):
        raise MicroagentsError(
            f"--input must be a JSON object, not {type(value).__name__}; "
            """give an object such as '{"ticket": "..."}'"""
        )
    return value


def _latency_scale() -> float:
    raw = os.environ.get(SIMULATED_LATENCY_ENV, "").strip()
    if not raw:
        return DEFAULT_SIMULATED_LATENCY_SCALE
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise MicroagentsError(
            f"{SIMULATED_LATENCY_ENV} must be a number >= 0 (0 for instant answers), not {raw!r}"
        )
    return value


def _engine(
    backend: str,
    workflow: CompiledWorkflow,
    tiers: TierTable,
    *,
    cache: bool,
    cache_ttl: CacheTTL,
    latency_scale: float,
    origin: Mapping[str, Any] | None = None,
    batch_api: bool = False,
) -> Engine:
    from .._settings import microagents_home
    from ..models._simulate import SimulatedLatency
    from ..runtime._engine import Engine

    if backend == "simulate":
        # Traced like a real run, so that a dry run shows in `microagents trace` too.
        latency = SimulatedLatency(scale=latency_scale)
        return Engine.for_backend("simulate", workflow, tiers=tiers, latency=latency, origin=origin)
    cache_path = str(microagents_home() / "cache.sqlite3") if cache else None
    return Engine.for_backend(
        "anthropic",
        workflow,
        tiers=tiers,
        cache_path=cache_path,
        cache_ttl=cache_ttl,
        origin=origin,
        batch_api=batch_api,
    )


POLL_INTERVAL_ENV = "MICROAGENTS_BATCH_POLL_SECONDS"


def _poll_settings() -> tuple[float, float]:
    """The first poll interval of Message Batches mode, from the environment (tests, or an
    impatient user); the default otherwise."""
    from ..runtime._rounds import BatchApiOptions

    raw = os.environ.get(POLL_INTERVAL_ENV)
    if not raw:
        defaults = BatchApiOptions()
        return defaults.poll_interval, defaults.max_poll_interval
    try:
        value = float(raw)
    except ValueError:
        message = f"{POLL_INTERVAL_ENV} must be a number of seconds, not {raw!r}"
        raise MicroagentsError(message) from None
    return value, max(value, 1.0)


def _stderr_console() -> Console:
    from rich.console import Console

    console = Console(stderr=True)
    if not console.is_terminal:
        console = Console(stderr=True, width=120)  # a log file has no width; keep tables whole
    return console


def _run_one(engine: Engine, workflow: CompiledWorkflow, run_input: dict[str, Any]) -> int:
    import anyio

    async def main() -> Any:
        try:
            return await engine.run(workflow, run_input)
        finally:
            with anyio.CancelScope(shield=True):
                await engine.aclose()

    result = anyio.run(main)
    if result.status == "failed" and result.failed_node is None and not result.nodes:
        # Refused before any node ran: the input does not fit the workflow's input schema.
        raise MicroagentsError(f"--input: {result.error}")
    return report_result(result, workflow.name)


def report_result(result: RunResult, workflow: str) -> int:
    """Print one run's result (stdout) and summary (stderr); its exit status."""
    from ..results._summary import BatchStats

    click.echo(json.dumps(result.to_json(), indent=2, ensure_ascii=False))
    stats = BatchStats()
    stats.add_result(result)
    _stderr_console().print(stats.summary(workflow=workflow, elapsed=result.latency).render())
    if result.trace_id:
        click.echo(f"trace {result.trace_id}: microagents trace show {result.run_id}", err=True)
    if result.waiting_for is not None:
        click.echo(
            f"run {result.run_id} is waiting at node '{result.waiting_for.node}': "
            f"{result.waiting_for.question}\n"
            f"answer it: microagents runs resume {result.run_id} --answer 'JSON' "
            f"(the answer's schema: microagents runs show {result.run_id} --json)",
            err=True,
        )
        return EXIT_WAITING
    return EXIT_OK if result.ok else EXIT_FAILED


def _run_batch(
    engine: Engine,
    workflow: CompiledWorkflow,
    input_file: Path,
    out_path: Path | None,
    *,
    concurrency: int,
    resume: bool,
    budget_usd: float | None,
    batch_api: bool = False,
    detach: bool = False,
    standard_tail: int = 0,
) -> int:
    import gc

    import anyio

    from ..runtime._batch import BatchRunner
    from ..runtime._rounds import BatchApiOptions, RoundDriver

    console = _stderr_console()
    runner: BatchRunner | RoundDriver
    if batch_api:
        poll = _poll_settings()
        runner = RoundDriver(
            engine,
            workflow,
            input_file,
            out_path,
            concurrency=concurrency,
            resume=resume,
            budget_usd=budget_usd,
            options=BatchApiOptions(
                detach=detach,
                poll_interval=poll[0],
                max_poll_interval=poll[1],
                standard_tail=standard_tail,
            ),
        )
    else:
        runner = BatchRunner(
            engine,
            workflow,
            input_file,
            out_path,
            concurrency=concurrency,
            resume=resume,
            budget_usd=budget_usd,
        )
    observer: _RichProgress | _PlainProgress = (
        _RichProgress(console, runner.simulated) if console.is_terminal else _PlainProgress()
    )
    runner.observer = observer
    label = " [SIMULATED]" if runner.simulated else ""
    click.echo(
        f"{workflow.name}@{workflow.spec.version}{label}: {input_file} → {runner.out_path}"
        + (" (resuming)" if resume else ""),
        err=True,
    )

    async def main() -> BatchSummary | None:
        finished: list[BatchSummary] = []
        try:
            with single_errors():  # the signal watcher only watches: what fails is the batch
                async with anyio.create_task_group() as group:
                    group.start_soon(_cancel_on_interrupt, group.cancel_scope)
                    finished.append(await runner.run())
                    group.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await engine.aclose()
        return finished[0] if finished else None

    # Everything built so far lives for the whole run: keep the cyclic GC from rescanning it
    # while thousands of runs are in flight (see PERFORMANCE.md).
    gc.freeze()
    try:
        with observer:
            outcome = anyio.run(main)
            observer.update(runner.progress())
        if outcome is None:
            raise KeyboardInterrupt
        summary = outcome
    except KeyboardInterrupt:
        # anyio cancelled the run on Ctrl-C; the runner has checkpointed what had finished.
        from ..tracing._setup import flush_traces

        flush_traces()
        summary = runner.summary()
        console.print(summary.render())
        click.echo(
            f"interrupted: {summary.ok + summary.failed} items finished in this run are in "
            f"{runner.out_path} and checkpointed; re-run with --resume to continue",
            err=True,
        )
        return EXIT_INTERRUPTED
    finally:
        gc.unfreeze()  # for callers that go on in the same process (tests, notebooks)
    console.print(summary.render())
    click.echo(f"results: {runner.out_path}", err=True)
    if engine.tracing is not None:
        click.echo(f"traces: microagents trace list --workflow {workflow.name}", err=True)
    if summary.batch_api is not None and summary.batch_api.in_flight:
        return EXIT_OK  # detached: `--resume` collects
    if summary.waiting:
        items = f"{summary.waiting} items wait" if summary.waiting > 1 else "1 item waits"
        click.echo(
            f"waiting: {items} for a person: microagents runs list --status waiting "
            f"--workflow {workflow.name}\nanswer each with microagents runs resume RUN_ID "
            "--answer JSON, then run this batch again with --resume to complete their lines",
            err=True,
        )
    # An item routed to a person is the workflow doing its job, not a failure: a batch with
    # waiting items and no failed ones exits 0 (a single waiting run exits 3, having no output).
    return EXIT_OK if summary.all_ok_or_waiting else EXIT_FAILED


async def _cancel_on_interrupt(scope: anyio.CancelScope) -> None:
    """Cancel the batch on the first Ctrl-C (or SIGTERM) through its cancel scope.

    The event loop's own handling cancels the main task once, and a cancellation that one
    await swallows on the way is lost: the batch would run on. A scope's cancellation holds
    until the scope is left. A second Ctrl-C gets Python's default: stop at once."""
    import signal

    import anyio

    try:
        receiver = anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM)
    except NotImplementedError:  # no signal handlers on this event loop (Windows)
        return
    with receiver as signals:
        async for _ in signals:
            scope.cancel()
            return


class _RichProgress:
    """A live progress bar on a terminal, with the running counts on a line of their own so
    that both fit an 80-column terminal."""

    interval = RICH_PROGRESS_INTERVAL

    def __init__(self, console: Console, simulated: bool) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.text import Text

        detail = self._detail = Text()

        class TwoLines(Progress):
            def get_renderables(self) -> Any:
                yield self.make_tasks_table(self.tasks)
                yield detail

        self._progress = TwoLines(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
        )
        description = "[bold yellow]SIMULATED[/]" if simulated else "items"
        self._task = self._progress.add_task(description, total=None)

    def __enter__(self) -> _RichProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._progress.stop()

    def update(self, progress: BatchProgress, **future_kwargs: Any) -> None:
        total = progress.to_do
        if total is not None:
            total = max(0, total - progress.skipped_by_budget)
        throttled = _throttled(progress)
        rounds = f"\n  {progress.rounds.describe()}" if progress.rounds is not None else ""
        self._detail.plain = (
            "  " + _detail(progress) + rounds + (f"\n  {throttled}" if throttled else "")
        )
        self._progress.update(self._task, completed=progress.done, total=total)

    def note(self, message: str, **future_kwargs: Any) -> None:
        self._progress.console.print(message, markup=False, highlight=False)


class _PlainProgress:
    """A line every few seconds, for logs and pipes; while nothing changes (a Message Batch
    being processed for hours), one a minute."""

    interval = PLAIN_PROGRESS_INTERVAL
    unchanged_interval = 60.0

    def __init__(self) -> None:
        self._last = ""
        self._last_at = -math.inf

    def __enter__(self) -> _PlainProgress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass

    def update(self, progress: BatchProgress, **future_kwargs: Any) -> None:
        to_do = "?" if progress.to_do is None else str(progress.to_do)
        eta = ""
        if progress.to_do is not None and progress.done and progress.elapsed > 0:
            left = progress.to_do - progress.done - progress.skipped_by_budget
            if left > 0:
                eta = f", ETA {left * progress.elapsed / progress.done:.0f}s"
        throttled = _throttled(progress)
        rounds = f" · {progress.rounds.describe()}" if progress.rounds is not None else ""
        said = f"{progress.done}/{to_do} items: {_detail(progress)}"
        tail = rounds + (f" · {throttled}" if throttled else "")
        if said + tail == self._last and (
            progress.elapsed - self._last_at < self.unchanged_interval
        ):
            return
        self._last, self._last_at = said + tail, progress.elapsed
        # A short write to stderr every few seconds: not worth a thread hop.
        click.echo(f"[{progress.elapsed:7.1f}s] {said}{eta}{tail}", err=True)

    def note(self, message: str, **future_kwargs: Any) -> None:
        click.echo(message, err=True)


def _detail(progress: BatchProgress) -> str:
    return (
        f"{progress.failed} failed · {progress.escalated} escalated · "
        f"{progress.tokens:,} tokens · ${progress.cost_usd:.4f}"
    )


def _throttled(progress: BatchProgress) -> str:
    """What the client-side rate limiter holds back, or "" while nothing waits for it."""
    if not progress.throttling:
        return ""
    return "throttled: " + "; ".join(t.describe() for t in progress.throttling)
