"""How a project or a workflow declares an MCP server whose tools its agents may call.

```yaml
mcp_servers:
  docs:                                    # its tools are docs.TOOL in the tool registry
    command: [python, servers/docs.py]     # stdio: a subprocess speaking MCP on stdin/stdout
    env: {DOCS_TOKEN: "${DOCS_TOKEN}"}     # only these (and PATH, HOME, ...) reach it
  search:
    url: http://127.0.0.1:8931/mcp         # streamable HTTP
    headers: {Authorization: "Bearer ${SEARCH_TOKEN}"}
    timeout: 10
    idempotent: [lookup]                   # tools safe to call again with the same arguments
```

``${NAME}`` in `env` and `headers` is read from the environment when the server starts, so
that secrets live in the environment, not in the file (and never in a trace).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints, model_validator

from ._agent_spec import Strict

MCP_SERVER_NAME_PATTERN = r"^[a-zA-Z][a-zA-Z0-9_-]*$"
McpServerName = Annotated[str, StringConstraints(pattern=MCP_SERVER_NAME_PATTERN)]
"""No dots: a tool is named ``SERVER.TOOL``, and the server is what comes before the first."""


class McpServerSpec(Strict):
    """One MCP server: a command to start (stdio) or a URL to connect to (streamable HTTP)."""

    command: list[str] | None = Field(
        default=None, min_length=1, description="stdio: the program and its arguments."
    )
    env: dict[str, str] = Field(
        default_factory=dict,
        description="stdio: environment of the server (beyond PATH, HOME, USER and the like); "
        "values may use ${NAME}.",
    )
    cwd: str | None = Field(
        default=None, description="stdio: working folder, relative to the project."
    )
    url: str | None = Field(default=None, description="Streamable HTTP: the endpoint's URL.")
    headers: dict[str, str] = Field(
        default_factory=dict, description="Streamable HTTP: request headers; may use ${NAME}."
    )
    timeout: float = Field(default=30.0, gt=0, description="Seconds one tool call may take.")
    startup_timeout: float = Field(
        default=20.0, gt=0, description="Seconds to start (or connect to) the server."
    )
    idempotent: bool | list[str] = Field(
        default=False,
        description="Tools that may be called again with the same arguments without harm "
        "(true: all of them); a resumed run may repeat them instead of replaying their result.",
    )
    max_result_chars: int = Field(
        default=20_000, ge=100, description="Longer results are cut before they reach a prompt."
    )

    @model_validator(mode="after")
    def _one_transport(self) -> McpServerSpec:
        if (self.command is None) == (self.url is None):
            raise ValueError(
                "an MCP server needs exactly one of `command` (stdio) or `url` (streamable HTTP)"
            )
        if self.url is not None and (self.env or self.cwd):
            raise ValueError("env and cwd are for a stdio server (`command`); use `headers`")
        if self.command is not None and self.headers:
            raise ValueError("headers are for an HTTP server (`url`); use `env`")
        return self

    @property
    def transport(self) -> str:
        """``stdio`` or ``http``."""
        return "stdio" if self.command is not None else "http"

    def is_idempotent(self, tool: str) -> bool:
        """Whether the config says `tool` (its name on the server) is safe to repeat."""
        return self.idempotent if isinstance(self.idempotent, bool) else tool in self.idempotent
