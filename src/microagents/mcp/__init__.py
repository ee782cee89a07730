"""MCP servers as a tool source: their tools, named ``SERVER.TOOL``, join a project's tool
registry with the servers' JSON Schemas, and agents call them like any tool.

Imports: `graph` (the tools plug into its tool registry) and below."""

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from ..spec._mcp_spec import McpServerSpec as McpServerSpec
    from ._client import McpServers as McpServers
    from ._config import configured_mcp_servers as configured_mcp_servers
    from ._tools import Discovery as Discovery
    from ._tools import discover as discover

_EXPORTS = {
    # declaring servers
    "configured_mcp_servers": "._config",
    "McpServerSpec": "..spec._mcp_spec",
    # connections and their tools
    "discover": "._tools",
    "Discovery": "._tools",
    "McpServers": "._client",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
