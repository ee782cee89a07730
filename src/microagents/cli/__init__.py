"""The `microagents` command: a thin layer over the public Python API.

Exit codes: 0 success, 1 some items failed, 2 bad input or spec, 70 an internal error (a bug in
microagents), 130 interrupted. Errors are one line each, naming the file, line, column and
field; never a traceback.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from .._errors import MicroagentsError, Problem, RegistryError, SpecError

if TYPE_CHECKING:  # the project (graph, networkx, pydantic) loads when a command needs it
    from .._project import Project

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
EXIT_INTERNAL_ERROR = 70  # EX_SOFTWARE: a bug in microagents, never "some items failed"
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C

F = TypeVar("F", bound=Callable[..., Any])


def _project_options(command: F) -> F:
    command = click.option(
        "--agents",
        "agent_dirs",
        multiple=True,
        type=click.Path(path_type=Path),
        help="Folder of agent specs, instead of the configured sources (repeatable).",
    )(command)
    command = click.option(
        "--source",
        "sources",
        multiple=True,
        metavar="SOURCE",
        help="Registry source ahead of the configured ones: a folder, git+URL@REF[#DIR], "
        "or packages[:NAME] (repeatable; earlier wins).",
    )(command)
    command = click.option(
        "--tools",
        "tool_modules",
        multiple=True,
        metavar="MODULE",
        help="Python module whose @tool functions workflows may use (repeatable).",
    )(command)
    return command


def _make_project(
    agent_dirs: tuple[Path, ...],
    tool_modules: tuple[str, ...],
    sources: tuple[str, ...] = (),
    *,
    use_lock: bool = True,
    database: str | None = None,
) -> Project:
    from .._config import SourceSpec, configured_sources
    from .._project import Project

    for folder in agent_dirs:
        if not folder.is_dir():
            raise MicroagentsError(f"agent folder '{folder}' does not exist; check --agents")
    if tool_modules and "" not in sys.path and "." not in sys.path:
        # Like `python -m`, let --tools name a module in the working folder.
        sys.path.insert(0, "")
    tools = Project.tools_from_modules(tool_modules)
    root = Path()
    # --agents replaces the configured sources; --source goes ahead of them.
    configured = [str(f) for f in agent_dirs] if agent_dirs else configured_sources(root)
    specs: list[SourceSpec] = [*sources, *configured]
    return Project(root, sources=specs, tools=tools, use_lock=use_lock, database=database)


def _echo_problems(problems: list[Problem]) -> None:
    for problem in problems:
        click.echo(str(problem), err=True)


def _terminal_width() -> int:
    import shutil

    return shutil.get_terminal_size((100, 20)).columns


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="microagents")
def cli() -> None:
    """Declarative workflows of small Claude agents that escalate only when needed."""


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@_project_options
def validate(
    paths: tuple[Path, ...],
    agent_dirs: tuple[Path, ...],
    tool_modules: tuple[str, ...],
    sources: tuple[str, ...],
) -> None:
    """Check agent and workflow files (or folders of them) before any token is spent."""
    from .._loading import load_any_spec
    from .._model_checks import Use, model_problems, uses_of_agent, uses_of_workflow
    from .._project import spec_files
    from .._tiers import TierTable

    project = _make_project(agent_dirs, tool_modules, sources)
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
            _echo_problems(exc.problems)
            click.echo(f"invalid  {file}", err=True)
            continue
        _echo_problems(warnings)
        click.echo(f"ok       {file} ({what})")
    # A version published twice is a problem of the folder, not of either file alone.
    validated = {file.resolve() for file in files}
    for problem in project.problems():
        duplicate = problem.location.file
        if problem.code == "MA307" and duplicate and duplicate.resolve() in validated:
            _echo_problems([problem])
            click.echo(f"invalid  {duplicate}", err=True)
            failed += 1
    # About the models the agents run on: each model and each agent once, whatever the files.
    _echo_problems(model_problems(uses, tiers, prompt_cache=True))
    click.echo(f"{len(files) - failed} valid, {failed} invalid")
    if failed:
        raise SystemExit(EXIT_BAD_INPUT)


@cli.command()
@click.argument("workflow", type=click.Path(path_type=Path))
@click.option(
    "--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid", show_default=True
)
@_project_options
def graph(
    workflow: Path,
    fmt: str,
    agent_dirs: tuple[Path, ...],
    tool_modules: tuple[str, ...],
    sources: tuple[str, ...],
) -> None:
    """Draw a workflow as Mermaid or Graphviz DOT."""
    compiled = _make_project(agent_dirs, tool_modules, sources).load_workflow(workflow)
    _echo_problems(list(compiled.warnings))
    click.echo(compiled.to_mermaid() if fmt == "mermaid" else compiled.to_dot(), nl=False)


@cli.command()
@click.argument("kind", type=click.Choice(["agent", "workflow"]))
def schema(kind: str) -> None:
    """Print the JSON Schema of agent or workflow YAML (for editor autocompletion)."""
    from .._json_schema import spec_json_schema

    click.echo(json.dumps(spec_json_schema(kind), indent=2))


# Registered here, after the helpers that `_run` imports from this module.
from ._run import run as _run_command  # noqa: E402

cli.add_command(_run_command)


# The registry: `agents list|show|search|new|package` and `lock`.
from ._agents import agents as _agents_group  # noqa: E402
from ._lock import lock as _lock_command  # noqa: E402

cli.add_command(_agents_group)
cli.add_command(_lock_command)


# The trace viewer (`trace list|show`); it imports nothing from this module.
from ._trace import trace as _trace_group  # noqa: E402

cli.add_command(_trace_group)

# The tier table: `models`.
from ._models import models as _models_command  # noqa: E402

cli.add_command(_models_command)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning our errors into one-line messages and exit codes."""
    try:
        result = cli.main(args=argv, prog_name="microagents", standalone_mode=False)
    except SpecError as exc:
        _echo_problems(exc.problems)
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
