"""`microagents replay RUN_ID`: a recorded run through the current workflow, node by node what
changed; and `microagents runs export`, recorded runs as files for a regression suite.

The workflow is the one the run was started with (its file, agent folders, tools and back-end,
recorded in the journal), or WORKFLOW; any project option given here replaces the recorded one.
Model calls whose request is unchanged are answered from the run's recorded responses; the
others go to the back-end — so an unchanged workflow replays offline, without an API key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import MicroagentsError
from ._common import EXIT_FAILED, EXIT_OK, make_project, project_options

if TYPE_CHECKING:
    from ..evals._replay import ReplayReport


@click.command("replay")
@click.argument("run_id")
@click.argument("workflow", required=False, type=click.Path(path_type=Path))
@click.option(
    "--backend",
    type=click.Choice(["anthropic", "simulate"]),
    help="Back-end for the calls that changed (default: the one the run was started with).",
)
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Write the report here.")
@click.option("--check", is_flag=True, help="Exit 1 if any node's output or status changed.")
@project_options
def replay(
    run_id: str,
    workflow: Path | None,
    backend: str | None,
    json_path: Path | None,
    check: bool,
    agent_dirs: tuple[Path, ...],
    tool_modules: tuple[str, ...],
    sources: tuple[str, ...],
) -> int:
    """Replay RUN_ID (from the journal) through the current workflow: recorded answers where a
    request is unchanged, live calls where it changed, and a report of what changed.

    \b
    Exit status: 0, or 1 with --check when a node's output or status changed.
    """
    import anyio

    from ..evals._replay import recorded_run
    from ..evals._replay import replay as replay_run
    from ..models._backends import anthropic_model, simulated_model
    from ..models._protocol import aclose_inner
    from ..models._tiers import TierTable

    recorded = anyio.run(recorded_run, run_id)
    origin = dict(recorded.origin)
    if workflow is None and not origin.get("workflow"):
        raise MicroagentsError(
            f"run '{recorded.run_id}' was not started by `microagents run`, so its workflow "
            "file is not recorded: give it, `microagents replay RUN_ID WORKFLOW`"
        )
    project = make_project(
        agent_dirs or tuple(Path(p) for p in origin.get("agents", [])),
        tool_modules or tuple(origin.get("tools", [])),
        sources or tuple(origin.get("sources", [])),
        database=origin.get("database"),
    )
    compiled = project.load_workflow(workflow or Path(origin["workflow"]))
    tiers = TierTable.load()
    chosen = backend or origin.get("backend") or "anthropic"
    model = (
        simulated_model(compiled.agents, tiers=tiers)
        if chosen == "simulate"
        else anthropic_model(tiers=tiers)
    )

    async def main() -> ReplayReport:
        try:
            return await replay_run(recorded, compiled, model=model, tiers=tiers)
        finally:
            with anyio.CancelScope(shield=True):
                await aclose_inner(model)

    report = anyio.run(main)
    click.echo(describe(report))
    if json_path is not None:
        text = json.dumps(report.to_json(), indent=2, ensure_ascii=False)
        json_path.write_text(text + "\n", encoding="utf-8")
    return EXIT_FAILED if check and report.changed else EXIT_OK


def describe(report: ReplayReport) -> str:
    """The report as the terminal shows it: a headline, then a line per node, with the diff
    of each changed output."""
    lines = [
        f"replay of {report.run_id} ({report.workflow}): "
        + ("changed" if report.changed else "no change")
        + f"; {report.replayed_calls} calls replayed, {report.live_calls} live"
        + f" (${report.live_cost_usd:.5f})"
    ]
    for node in report.nodes:
        state = "changed" if node.changed else "same"
        why = f"  ({node.changed_request} changed)" if node.changed_request else ""
        lines.append(
            f"  {node.label:<24} {state:<8} replayed {node.replayed}, live {node.live}"
            f" (${node.live_cost_usd:.5f}){why}"
        )
        if node.changed:
            lines.extend(f"      {line}" for line in node.diff().splitlines())
    if report.output_changed:
        before = json.dumps(report.recorded.output, sort_keys=True, default=str)
        after = json.dumps(report.result.output, sort_keys=True, default=str)
        lines.append(f"  output: {before} -> {after}")
    return "\n".join(lines)


@click.command("export")
@click.argument("run_ids", nargs=-1)
@click.option(
    "--to",
    "folder",
    required=True,
    type=click.Path(path_type=Path),
    help="Folder to write RUN_ID.json files in.",
)
@click.option("--workflow", metavar="NAME", help="Without RUN_IDs: the latest runs of NAME.")
@click.option("--limit", default=50, show_default=True, help="Without RUN_IDs: at most this many.")
def export(run_ids: tuple[str, ...], folder: Path, workflow: str | None, limit: int) -> int:
    """Write recorded runs (RUN_IDs, or the latest finished ones) to FOLDER, one JSON file
    each: cases for `microagents.testing.replay_cases`, replayed by `pytest`."""
    import anyio

    from ..evals._replay import export_run, recorded_run
    from ..runtime._journal_store import SQLiteJournal

    async def main() -> list[Path]:
        journal = SQLiteJournal()
        try:
            ids = list(run_ids)
            if not ids:
                records = await journal.runs(status="ok", workflow=workflow, limit=limit)
                ids = [record.run_id for record in records]
            return [export_run(await recorded_run(i, journal), folder) for i in ids]
        finally:
            await journal.aclose()

    written: list[Any] = anyio.run(main)
    for path in written:
        click.echo(str(path))
    click.echo(f"{len(written)} runs exported to {folder}", err=True)
    return EXIT_OK
