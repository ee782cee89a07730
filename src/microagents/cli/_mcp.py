"""`microagents mcp serve`: workflows offered as tools to any MCP client.

Each workflow is one tool: its input schema is the workflow's input schema, a call runs the
workflow on the chosen back-end (traced as usual) and returns its output; a failed run comes
back as an MCP tool error with the message `microagents run` would print.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import MicroagentsError
from ._common import make_project, project_options

if TYPE_CHECKING:
    from mcp.server.lowlevel import Server
    from mcp.types import CallToolResult

    from ..graph._compiled import CompiledWorkflow
    from ..runtime._engine import Engine

DEFAULT_PORT = 8000


@click.group("mcp")
def mcp_group() -> None:
    """Model Context Protocol: serve workflows as tools."""


@mcp_group.command("serve")
@click.argument("workflows", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--backend",
    type=click.Choice(["anthropic", "simulate"]),
    default="anthropic",
    show_default=True,
    help="Where the agents' model calls go; simulate answers from their examples.",
)
@click.option("--http", is_flag=True, help="Serve streamable HTTP on 127.0.0.1, not stdio.")
@click.option("--port", type=int, default=DEFAULT_PORT, show_default=True, help="With --http.")
@project_options
def serve(
    workflows: tuple[Path, ...],
    backend: str,
    http: bool,
    port: int,
    agent_dirs: tuple[Path, ...],
    tool_modules: tuple[str, ...],
    sources: tuple[str, ...],
) -> None:
    """Offer WORKFLOW files (default: every workflow in ./workflows) as MCP tools."""
    import os

    import anyio

    from ..project._project import spec_files
    from ..spec._loading import load_any_spec
    from ._run import NO_KEY_MESSAGE

    if backend == "anthropic" and not os.environ.get("ANTHROPIC_API_KEY"):
        raise MicroagentsError(NO_KEY_MESSAGE)
    project = make_project(agent_dirs, tool_modules, sources)
    files = spec_files(workflows or [Path("workflows")])
    offered: dict[str, CompiledWorkflow] = {}
    for file in files:
        if load_any_spec(file)[0] == "workflow":
            compiled = project.load_workflow(file)
            offered[_tool_name(compiled.name)] = compiled
    if not offered:
        raise MicroagentsError("no workflow to serve; name workflow files or a folder of them")
    anyio.run(_serve, offered, backend, http, port)


def _tool_name(workflow: str) -> str:
    return workflow.replace("/", ".")  # team/refunds: MCP tool names have no slash


async def _serve(offered: dict[str, CompiledWorkflow], backend: str, http: bool, port: int) -> None:
    import anyio

    engines: dict[str, Engine] = {}
    try:
        for name, workflow in offered.items():
            engines[name] = _engine(backend, workflow)
        server = _server(offered, engines)
        if http:
            await _serve_http(server, port)
        else:
            from mcp.server.stdio import stdio_server

            async with stdio_server() as (read, write):
                await server.run(read, write, server.create_initialization_options())
    finally:
        with anyio.CancelScope(shield=True):
            for engine in engines.values():
                await engine.aclose()


def _engine(backend: str, workflow: CompiledWorkflow) -> Engine:
    from ..runtime._engine import Engine

    return Engine.for_backend("simulate" if backend == "simulate" else "anthropic", workflow)


def _server(offered: dict[str, CompiledWorkflow], engines: dict[str, Engine]) -> Server[Any]:
    from mcp import types
    from mcp.server.lowlevel import Server

    from ..results._results import jsonable

    async def list_tools(_: Any, __: Any) -> types.ListToolsResult:
        return types.ListToolsResult(
            tools=[
                types.Tool(
                    name=name,
                    description=workflow.spec.description,
                    input_schema={"type": "object", **workflow.spec.input},
                )
                for name, workflow in offered.items()
            ]
        )

    async def call_tool(_: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        workflow = offered.get(params.name)
        if workflow is None:
            return _error(f"no workflow '{params.name}'; offered: {', '.join(offered)}")
        result = await engines[params.name].run(workflow, dict(params.arguments or {}))
        if not result.ok:
            if result.failed_node is None and not result.nodes:
                return _error(f"input: {result.error}")  # as `run --input` says it
            where = f" at node {result.failed_node}" if result.failed_node else ""
            return _error(f"workflow {workflow.name} failed{where}: {result.error}")
        output = jsonable(result.output)
        text = json.dumps(output, ensure_ascii=False)
        return types.CallToolResult(
            content=[types.TextContent(text=text)],
            structured_content=output if isinstance(output, dict) else None,
        )

    return Server("microagents", on_list_tools=list_tools, on_call_tool=call_tool)


def _error(message: str) -> CallToolResult:
    from mcp import types

    return types.CallToolResult(content=[types.TextContent(text=message)], is_error=True)


async def _serve_http(server: Server[Any], port: int) -> None:
    import uvicorn

    app = server.streamable_http_app(host="127.0.0.1")
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    click.echo(f"serving MCP on http://127.0.0.1:{port}/mcp", err=True)
    await uvicorn.Server(config).serve()
