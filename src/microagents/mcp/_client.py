"""Connections to MCP servers, started on first use, shared by every caller, closed together.

The connections live in one event loop on a thread of their own, under one task group.
A project outlives event loops (``run_sync`` starts one per call, ``validate`` none), and an
MCP session is tied to the loop and the task that opened it; on a loop of their own, one
session per server serves the synchronous tool discovery of the compiler and the runs of any
number of engines, on any loop, until `McpServers.close`. Every call is bounded (a start-up
timeout, a per-call timeout), and a server that dies fails the calls in flight at once and is
started again on the next call.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import anyio
import anyio.to_thread
from anyio.from_thread import BlockingPortal

from .._settings import microagents_home
from ..errors import McpServerError
from ..spec._mcp_spec import McpServerSpec

if TYPE_CHECKING:
    import mcp
    from mcp.types import CallToolResult
    from mcp.types import Tool as McpTool

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(slots=True)
class _Connection:
    client: mcp.Client
    scope: anyio.CancelScope
    """Cancelling it closes the session and ends (or disconnects from) the server."""


class McpServers:
    """The MCP servers a project declares, by name.

    Nothing starts until a server's tools are listed or called; `close` (or leaving a
    ``with`` block) stops every server started. Safe to use from any thread and any event
    loop.
    """

    def __init__(self, specs: Mapping[str, McpServerSpec] = {}, *, root: Path = Path()) -> None:
        self.root = root
        self.specs: dict[str, McpServerSpec] = dict(specs)
        self._guard = threading.Lock()
        self._portal: BlockingPortal | None = None
        self._stopped = threading.Event()
        self._connections: dict[str, _Connection] = {}
        self._starting: dict[str, anyio.Lock] = {}
        self._group: anyio.abc.TaskGroup | None = None
        self._logs: list[TextIO] = []

    def add(self, name: str, spec: McpServerSpec, where: str) -> None:
        """Declare one more server (a workflow's); the same name declared otherwise is an
        error, since both would be called as ``NAME.TOOL``."""
        known = self.specs.get(name)
        if known is not None and known != spec:
            raise McpServerError(
                f"{where}: MCP server '{name}' is declared differently elsewhere (in the "
                "project config or another workflow); give one of them another name"
            )
        self.specs[name] = spec

    # -- the host: one loop, one task group -----------------------------------------------------

    def _host(self) -> BlockingPortal:
        with self._guard:
            if self._portal is None:
                ready = threading.Event()
                thread = threading.Thread(
                    target=anyio.run, args=(self._serve, ready), name="microagents-mcp", daemon=True
                )
                thread.start()
                ready.wait()
                self._thread = thread
            assert self._portal is not None
            return self._portal

    async def _serve(self, ready: threading.Event) -> None:
        async with BlockingPortal() as portal, anyio.create_task_group() as group:
            self._portal, self._group = portal, group
            ready.set()
            await portal.sleep_until_stopped()
            group.cancel_scope.cancel()  # every session ends, every stdio server stops

    def close(self) -> None:
        """Stop every server started (a no-op when none was)."""
        with self._guard:
            portal, self._portal = self._portal, None
        if portal is None:
            return
        portal.call(portal.stop)
        self._thread.join()
        self._connections.clear()
        for log in self._logs:
            log.close()
        self._logs.clear()

    def __enter__(self) -> McpServers:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- what callers use -----------------------------------------------------------------------

    def list_tools(self, name: str) -> list[McpTool]:
        """Every tool server `name` offers (starting it if needed); blocks."""
        spec = self._spec(name)
        portal = self._host()
        return portal.call(self._list_tools, name, spec)

    async def call_tool(self, name: str, tool: str, arguments: Mapping[str, Any]) -> CallToolResult:
        """Call `tool` on server `name` from any event loop; `McpServerError` when the server
        cannot be started, times out, or dies."""
        spec = self._spec(name)
        portal = self._host()
        # The server's own loop enforces the timeout; if this caller is cancelled meanwhile,
        # it stops waiting and the call ends there at its timeout.
        return await anyio.to_thread.run_sync(
            partial(portal.call, self._call_tool, name, spec, tool, dict(arguments)),
            abandon_on_cancel=True,
        )

    def _spec(self, name: str) -> McpServerSpec:
        spec = self.specs.get(name)
        if spec is None:
            raise McpServerError(
                f"no MCP server '{name}'; declare it under `mcp_servers` in microagents.toml "
                "or the workflow"
            )
        return spec

    # -- in the host loop -----------------------------------------------------------------------

    async def _list_tools(self, name: str, spec: McpServerSpec) -> list[McpTool]:
        connection = await self._connect(name, spec)
        found: list[McpTool] = []
        cursor: str | None = None
        try:
            with anyio.fail_after(spec.startup_timeout):
                while True:
                    page = await connection.client.list_tools(cursor=cursor)
                    found.extend(page.tools)
                    cursor = page.next_cursor
                    if not cursor:
                        return found
        except TimeoutError:
            raise McpServerError(
                f"MCP server '{name}' did not list its tools within {spec.startup_timeout:g} s"
            ) from None
        except Exception as exc:
            self._drop(name, connection)
            raise McpServerError(f"MCP server '{name}' could not list its tools: {exc}") from None

    async def _call_tool(
        self, name: str, spec: McpServerSpec, tool: str, arguments: dict[str, Any]
    ) -> CallToolResult:
        from mcp import MCPError

        connection = await self._connect(name, spec)
        try:
            with anyio.fail_after(spec.timeout):
                return await connection.client.call_tool(tool, arguments)
        except TimeoutError:
            raise McpServerError(
                f"MCP server '{name}' did not answer {tool} within {spec.timeout:g} s; "
                f"raise `timeout` under mcp_servers.{name} if the tool is slow"
            ) from None
        except MCPError as exc:
            if _closed(exc):
                self._drop(name, connection)
                raise McpServerError(
                    f"MCP server '{name}' closed the connection during {tool} (it may have "
                    f"crashed; see {self._log_path(name)}); it is started again on the next call"
                ) from None
            raise McpServerError(f"MCP server '{name}' refused {tool}: {exc}") from None
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            self._drop(name, connection)
            raise McpServerError(f"MCP server '{name}' is unreachable: {exc}") from None

    async def _connect(self, name: str, spec: McpServerSpec) -> _Connection:
        lock = self._starting.setdefault(name, anyio.Lock())
        async with lock:  # one start per server, however many calls wait for it
            connection = self._connections.get(name)
            if connection is None:
                connection = await self._start(name, spec)
                self._connections[name] = connection
            return connection

    async def _start(self, name: str, spec: McpServerSpec) -> _Connection:
        assert self._group is not None
        started = anyio.Event()
        scope = anyio.CancelScope()
        outcome: list[mcp.Client | BaseException] = []

        async def hold() -> None:
            with scope:
                try:
                    async with AsyncExitStack() as stack:
                        client = await stack.enter_async_context(
                            await self._client(name, spec, stack)
                        )
                        outcome.append(client)
                        started.set()
                        await anyio.sleep_forever()
                except Exception as exc:  # told to the caller waiting for the start
                    outcome.append(exc)
            started.set()

        self._group.start_soon(hold)
        with anyio.move_on_after(spec.startup_timeout):
            await started.wait()
        first = outcome[0] if outcome else None
        if first is None or isinstance(first, BaseException):
            scope.cancel()
            reason = (
                f"did not start within {spec.startup_timeout:g} s"
                if first is None
                else f"could not be started: {_describe(first)}"
            )
            raise McpServerError(
                f"MCP server '{name}' ({_what(spec)}) {reason}; check the command or URL "
                f"under mcp_servers.{name} (server log: {self._log_path(name)})"
            )
        return _Connection(first, scope)

    def _drop(self, name: str, connection: _Connection) -> None:
        if self._connections.get(name) is connection:
            del self._connections[name]
        connection.scope.cancel()

    async def _client(self, name: str, spec: McpServerSpec, stack: AsyncExitStack) -> mcp.Client:
        from mcp import Client, StdioServerParameters
        from mcp.client.stdio import stdio_client

        if spec.command is not None:
            env = {key: _expand(value, f"{name}.env.{key}") for key, value in spec.env.items()}
            cwd = self.root / spec.cwd if spec.cwd is not None else self.root
            parameters = StdioServerParameters(
                command=spec.command[0], args=spec.command[1:], env=env, cwd=cwd
            )
            return Client(stdio_client(parameters, errlog=self._log(name)))
        from mcp.client.streamable_http import streamable_http_client
        from mcp.shared._httpx_utils import create_mcp_http_client

        assert spec.url is not None
        headers = {
            key: _expand(value, f"{name}.headers.{key}") for key, value in spec.headers.items()
        }
        # Passed in, the HTTP client is ours to close (with the session, on the same stack).
        http = await stack.enter_async_context(create_mcp_http_client(headers=headers))
        return Client(streamable_http_client(spec.url, http_client=http))

    def _log_path(self, name: str) -> Path:
        return microagents_home() / "mcp" / f"{name}.log"

    def _log(self, name: str) -> TextIO:
        """A stdio server's stderr goes to a file: it would garble a command's output, and the
        file is what to read when the server fails."""
        path = self._log_path(name)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            log = path.open("a", encoding="utf-8")
        except OSError:
            return sys.stderr
        self._logs.append(log)
        return log


def _expand(value: str, where: str) -> str:
    def variable(match: re.Match[str]) -> str:
        found = os.environ.get(match[1])
        if found is None:
            raise McpServerError(
                f"mcp_servers.{where} uses ${{{match[1]}}}, which is not set in the "
                "environment; set it before starting"
            )
        return found

    return _VARIABLE.sub(variable, value)


def _closed(exc: Exception) -> bool:
    from mcp.types import CONNECTION_CLOSED

    return getattr(exc, "code", None) == CONNECTION_CLOSED


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):  # the SDK's task groups wrap the real cause
        return "; ".join(_describe(e) for e in exc.exceptions)
    return f"{type(exc).__name__}: {exc}" if not isinstance(exc, McpServerError) else str(exc)


def _what(spec: McpServerSpec) -> str:
    return " ".join(spec.command) if spec.command is not None else str(spec.url)
