"""A small MCP server written with the `mcp` SDK, for the tests: over stdio by default, over
streamable HTTP on 127.0.0.1 with ``http PORT``."""

from __future__ import annotations

import os
import sys

import anyio
from mcp.server.mcpserver import MCPServer

server = MCPServer("docs")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two whole numbers."""
    return a + b


@server.tool()
def search(query: str, limit: int = 3) -> str:
    """Search the documentation; one line per hit."""
    return "\n".join(f"{query} hit {n}" for n in range(1, limit + 1))


@server.tool()
def long_text(size: int) -> str:
    """A text of `size` characters."""
    return "x" * size


@server.tool()
async def slow(seconds: float) -> str:
    """Answer after `seconds`."""
    await anyio.sleep(seconds)
    return "done"


@server.tool()
def crash() -> str:
    """End the server's process in the middle of the call."""
    os._exit(3)


@server.tool()
def fail(message: str) -> str:
    """Fail with `message`."""
    raise ValueError(message)


@server.tool()
def env(name: str) -> str:
    """The value of an environment variable in the server's process."""
    return os.environ.get(name, "<unset>")


if __name__ == "__main__":
    if sys.argv[1:2] == ["http"]:
        port = int(sys.argv[2])
        anyio.run(lambda: server.run_streamable_http_async(host="127.0.0.1", port=port))
    else:
        server.run("stdio")
