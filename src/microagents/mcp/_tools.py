"""An MCP server's tools as `Tool`s named ``SERVER.TOOL``, with the server's JSON Schemas.

Listing the tools starts the server; each successful listing is cached under
``$MICROAGENTS_HOME/mcp/``, so that when a server cannot be started (no network, a missing
binary on a CI runner) the workflows that use it can still be checked against its last known
tools — with a warning that says so.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from .._settings import microagents_home
from ..errors import McpServerError, Problem
from ..graph._tools import TOOL_NAME_PATTERN, Tool
from ..spec._schema import JsonSchema
from ._client import McpServers

if TYPE_CHECKING:
    from mcp.types import CallToolResult

_ABSENT: Any = type("_Absent", (), {"__repr__": lambda self: "<absent>"})()
"""The default of an argument the model left out: it is not sent (not sent as null)."""


class McpArguments(BaseModel):
    """Arguments of an MCP tool: checked against the server's JSON Schema as they are."""

    model_config = ConfigDict(extra="allow")
    mcp_schema: ClassVar[JsonSchema] = {}

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        # The server's schema, unchanged, is what a model is shown and what is checked.
        return dict(cls.mcp_schema)

    @model_validator(mode="before")
    @classmethod
    def _matches_schema(cls, data: Any) -> Any:
        from jsonschema import Draft202012Validator

        errors = sorted(Draft202012Validator(cls.mcp_schema).iter_errors(data), key=str)
        if errors:
            raise ValueError(
                "; ".join(
                    f"{'.'.join(str(p) for p in error.absolute_path) or 'arguments'}: "
                    f"{error.message}"
                    for error in errors[:5]
                )
            )
        return data


@dataclass(frozen=True, slots=True)
class Discovery:
    """What listing the servers found: their tools, and notes for `validate` and lookups."""

    tools: list[Tool] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)
    """Server name → where its list came from, for an unknown ``SERVER.TOOL``'s message."""


def discover(servers: McpServers, names: Iterable[str]) -> Discovery:
    """The tools of the servers `names`, listed live (and cached), or from the cache."""
    found = Discovery()
    for name in names:
        spec = servers.specs[name]
        cache = _cache_path(name)
        try:
            listed = [
                tool.model_dump(mode="json", by_alias=True) for tool in servers.list_tools(name)
            ]
        except McpServerError as exc:
            cached = _read_cache(cache)
            if cached is None:
                found.notes[name] = f"MCP server '{name}' has no tools: {exc}; no cached list"
                found.problems.append(
                    Problem("MA701", f"{exc}; no cached tool list, so its tools are unknown")
                )
                continue
            listed, when = cached
            found.notes[name] = f"MCP server '{name}' could not be started; tools from {cache}"
            found.problems.append(
                Problem(
                    "MA702",
                    f"{exc}; checked against its tools as cached at {when} ({cache})",
                    severity="warning",
                )
            )
        else:
            _write_cache(cache, listed)
            found.notes[name] = f"tools listed by the running MCP server '{name}'"
        for entry in listed:
            made = _make_tool(servers, name, entry, spec.is_idempotent(str(entry["name"])))
            if made is None:
                found.problems.append(
                    Problem(
                        "MA703",
                        f"MCP server '{name}': tool '{entry['name']}' skipped: its name is "
                        "not one a model can call (letters, digits, '_', '.', '-')",
                        severity="warning",
                    )
                )
            else:
                found.tools.append(made)
    return found


def _make_tool(
    servers: McpServers, server: str, entry: dict[str, Any], idempotent: bool
) -> Tool | None:
    remote = str(entry["name"])
    name = f"{server}.{remote}"
    if not re.fullmatch(TOOL_NAME_PATTERN, name):
        return None
    schema: JsonSchema = dict(entry.get("inputSchema") or {"type": "object"})
    properties = list(schema.get("properties") or {})
    # Fields by position, the property name as alias: a property may be any string, even
    # one pydantic reserves ("model_config") or no identifier at all.
    fields: dict[str, Any] = {
        f"p{index}": (Any, Field(default=_ABSENT, alias=prop))
        for index, prop in enumerate(properties)
    }
    arguments: type[McpArguments] = create_model(
        "McpArguments_" + re.sub(r"\W", "_", name), __base__=McpArguments, **fields
    )
    arguments.mcp_schema = schema
    limit = servers.specs[server].max_result_chars

    async def call(**values: Any) -> Any:
        sent = {
            properties[int(key[1:])]: value for key, value in values.items() if value is not _ABSENT
        }
        return _result(name, await servers.call_tool(server, remote, sent), limit)

    output = entry.get("outputSchema")
    description = str(entry.get("description") or entry.get("title") or remote)
    return Tool(
        name,
        description,
        call,
        arguments,
        dict(output) if output else None,
        server=server,
        idempotent=idempotent,
    )


def _result(name: str, result: CallToolResult, limit: int) -> Any:
    """The structured result when there is one, else the text; an error result raises, so
    that the agent sees it as a failed tool call."""
    parts: list[str] = []
    for block in result.content:
        text = getattr(block, "text", None)
        parts.append(text if isinstance(text, str) else f"[{block.type} content omitted]")
    text = "\n".join(parts)
    if result.is_error:
        raise McpServerError(f"the tool reported an error: {_cut(text or '(no message)', limit)}")
    value = result.structured_content
    if value is not None:
        encoded = json.dumps(value, ensure_ascii=False, default=str)
        return value if len(encoded) <= limit else _cut(encoded, limit)
    return _cut(text, limit)


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n[… cut: {len(text) - limit} of {len(text)} characters not shown]"


def _cache_path(name: str) -> Path:
    return microagents_home() / "mcp" / f"{name}.tools.json"


def _read_cache(path: Path) -> tuple[list[dict[str, Any]], str] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return list(data["tools"]), str(data["listed_at"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_cache(path: Path, tools: list[dict[str, Any]]) -> None:
    listed_at = datetime.now(UTC).isoformat(timespec="seconds")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"listed_at": listed_at, "tools": tools}, indent=1), "utf-8")
    except OSError:
        pass  # a cache that cannot be written costs only the offline check
