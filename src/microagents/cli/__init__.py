"""The `microagents` command: a thin layer over the public Python API.

Exit codes: 0 success, 1 some items failed, 2 bad input or spec, 70 an internal error (a bug in
microagents), 130 interrupted. Errors are one line each, naming the file, line, column and
field; never a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..errors import MicroagentsError, RegistryError, SpecError
from ._agents import agents as agents_group
from ._batches import batches as batches_group
from ._common import (
    EXIT_BAD_INPUT,
    EXIT_INTERNAL_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    echo_problems,
    make_project,
    project_options,
)
from ._eval import eval_command
from ._lock import lock as lock_command
from ._mcp import mcp_group
from ._models import models as models_command
from ._replay import export as export_command
from ._replay import replay as replay_command
from ._run import run as run_command
from ._runs import runs as runs_group
from ._tools import tools as tools_group
from ._trace import trace as trace_group


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="microagents")
def cli() -> None:
    """Declarative workflows of small Claude agents that escalate only when needed."""


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@project_options
def validate(
    paths: tuple[Path, ...],
    agent_dirs: tuple[Path, ...],
    tool_modules: tuple[str, ...],
    sources: tuple[str, ...],
) -> None:
    """Check agent and workflow files (or folders of them) before any token is spent."""
    from ..models._checks import Use, model_problems, uses_of_agent, uses_of_workflow
    from ..models._tiers import TierTable
    from ..project._project import spec_files
    from ..spec._loading import load_any_spec

    project = make_project(agent_dirs, tool_modules, sources)
    tiers = TierTable.load()
    failed = 0
    files = spec_files(paths)
    uses: list[Use] = []
    for file in files:
        try:
            kind, sourced = load_any_spec(file)
            if kind == "workflow":
                compiled = project.compile(sourced.spec, sourced.source)
                warnings = list(compiled.warnings)
                what = f"workflow {compiled.spec.name}@{compiled.spec.version}"
                uses.extend(uses_of_workflow(compiled))
            else:
                agent = project.compile_agent(sourced)
                warnings = list(agent.warnings)
                what = f"agent {agent.reference}"
                uses.extend(uses_of_agent(agent))
        except SpecError as exc:
            failed += 1
            echo_problems(exc.problems)
            click.echo(f"invalid  {file}", err=True)
            continue
        echo_problems(warnings)
        click.echo(f"ok       {file} ({what})")
    # A version published twice is a problem of the folder, not of either file alone.
    validated = {file.resolve() for file in files}
    for problem in project.problems():
        duplicate = problem.location.file
        if problem.code == "MA307" and duplicate and duplicate.resolve() in validated:
            echo_problems([problem])
            click.echo(f"invalid  {duplicate}", err=True)
            failed += 1
    # MCP servers that could not be started (the checks used their cached tools, or none).
    echo_problems(project.tool_problems())
    # About the models the agents run on: each model and each agent once, whatever the files.
    echo_problems(model_problems(uses, tiers, prompt_cache=True))
    click.echo(f"{len(files) - failed} valid, {failed} invalid")
    if failed:
        raise SystemExit(EXIT_BAD_INPUT)


@cli.command()
@click.argument("workflow", type=click.Path(path_type=Path))
@click.option(
    "--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid", show_default=True
)
@project_options
def graph(
    workflow: Path,
    fmt: str,
    agent_dirs: tuple[Path, ...],
    tool_modules: tuple[str, ...],
    sources: tuple[str, ...],
) -> None:
    """Draw a workflow as Mermaid or Graphviz DOT."""
    compiled = make_project(agent_dirs, tool_modules, sources).load_workflow(workflow)
    echo_problems(list(compiled.warnings))
    click.echo(compiled.to_mermaid() if fmt == "mermaid" else compiled.to_dot(), nl=False)


@cli.command()
@click.argument("kind", type=click.Choice(["agent", "workflow"]))
def schema(kind: str) -> None:
    """Print the JSON Schema of agent or workflow YAML (for editor autocompletion)."""
    from ..spec._json_schema import spec_json_schema

    click.echo(json.dumps(spec_json_schema(kind), indent=2))


for command in (
    run_command,
    runs_group,
    batches_group,
    agents_group,
    lock_command,
    trace_group,
    models_command,
    eval_command,
    replay_command,
    tools_group,
    mcp_group,
):
    cli.add_command(command)
runs_group.add_command(export_command)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning our errors into one-line messages and exit codes."""
    try:
        result = cli.main(args=argv, prog_name="microagents", standalone_mode=False)
    except SpecError as exc:
        echo_problems(exc.problems)
        sys.exit(EXIT_BAD_INPUT)
    except RegistryError as exc:
        # The same shape as a problem line, so that the code can be searched for.
        click.echo(f"error {exc.code}: {exc}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    except MicroagentsError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_BAD_INPUT)
    except SystemExit:
        raise
    except Exception as exc:  # the last line of defence against a traceback
        click.echo(
            f"internal error: {type(exc).__name__}: {exc}. This is a bug in microagents; "
            "please report it with the command you ran.",
            err=True,
        )
        sys.exit(EXIT_INTERNAL_ERROR)
    sys.exit(result if isinstance(result, int) else EXIT_OK)


if __name__ == "__main__":  # pragma: no cover
    main()
