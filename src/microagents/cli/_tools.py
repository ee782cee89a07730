"""`microagents tools list`: every tool agents may call, and where it comes from."""

from __future__ import annotations

from pathlib import Path

import click

from ._common import echo_problems, make_project, project_options


@click.group("tools")
def tools() -> None:
    """The tools agents may call: built-in, SQL, Python (--tools) and MCP servers."""


@tools.command("list")
@project_options
def list_tools(
    agent_dirs: tuple[Path, ...], tool_modules: tuple[str, ...], sources: tuple[str, ...]
) -> None:
    """List every tool with its source; starts the configured MCP servers to list theirs."""
    from ..graph._builtin_tools import BUILTIN_TOOLS
    from ..graph._tools import Tool

    project = make_project(agent_dirs, tool_modules, sources)
    builtin = {t.name for t in BUILTIN_TOOLS}

    def source(tool: Tool) -> str:
        if tool.server is not None:
            return f"mcp:{tool.server}" + (" (idempotent)" if tool.idempotent else "")
        if tool.name in builtin or tool.name.startswith("sql."):
            return "built-in"
        return f"python:{getattr(tool.function, '__module__', '?')}"

    listed = project.tools
    echo_problems(project.tool_problems())
    width = max((len(name) for name in listed), default=4)
    for name in sorted(listed):
        tool = listed[name]
        click.echo(f"{name:<{width}}  {source(tool):<16}  {tool.description}")
