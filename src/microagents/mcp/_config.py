"""A project's MCP servers, from ``microagents.toml`` or ``[tool.microagents]``.

```toml
[tool.microagents.mcp_servers.docs]      # in microagents.toml: [mcp_servers.docs]
command = ["python", "servers/docs.py"]
env = { DOCS_TOKEN = "${DOCS_TOKEN}" }
timeout = 10
```
"""

from __future__ import annotations

from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from .._settings import project_setting
from ..errors import McpServerError
from ..spec._mcp_spec import McpServerName, McpServerSpec
from ..spec._schema import validation_problems

_SERVERS: TypeAdapter[dict[McpServerName, McpServerSpec]] = TypeAdapter(
    dict[McpServerName, McpServerSpec]
)


def configured_mcp_servers(root: Path) -> dict[str, McpServerSpec]:
    """The MCP servers the project at `root` configures (none when it configures none)."""
    found = project_setting(root, "mcp_servers")
    if found is None:
        return {}
    path, servers = found
    try:
        return dict(_SERVERS.validate_python(servers))
    except ValidationError as exc:
        raise McpServerError(
            f"{path}: mcp_servers: {validation_problems(exc, 'mcp_servers')}; each server "
            'needs command = ["program", "arg"] or url = "http://..."'
        ) from None
