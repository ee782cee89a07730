"""What every `microagents` command shares: exit codes, the project options, how problems
are printed. The commands import it; it imports none of them."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ..errors import MicroagentsError, Problem

if TYPE_CHECKING:  # the project (graph, networkx, pydantic) loads when a command needs it
    from ..project._project import Project

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
EXIT_WAITING = 3  # a run waits for a person: `microagents runs resume RUN_ID --answer ...`
EXIT_INTERNAL_ERROR = 70  # EX_SOFTWARE: a bug in microagents, never "some items failed"
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C

F = TypeVar("F", bound=Callable[..., Any])


def project_options(command: F) -> F:
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


def make_project(
    agent_dirs: tuple[Path, ...],
    tool_modules: tuple[str, ...],
    sources: tuple[str, ...] = (),
    *,
    use_lock: bool = True,
    database: str | None = None,
) -> Project:
    from ..project._project import Project
    from ..registry._config import SourceSpec, configured_sources

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
    project = Project(root, sources=specs, tools=tools, use_lock=use_lock, database=database)
    context = click.get_current_context(silent=True)
    if context is not None:  # its MCP servers stop when the command ends
        context.call_on_close(project.close)
    return project


def echo_problems(problems: list[Problem]) -> None:
    for problem in problems:
        click.echo(str(problem), err=True)


def terminal_width() -> int:
    import shutil

    return shutil.get_terminal_size((100, 20)).columns
