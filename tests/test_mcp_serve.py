"""`microagents mcp serve`, driven by the `mcp` SDK's client over stdio (simulated back-end)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters

ROOT = Path(__file__).resolve().parent.parent


def serve(*args: str) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable,
        args=["-c", "from microagents.cli import main; main()", "mcp", "serve", *args],
        cwd=ROOT,
        env={"MICROAGENTS_TRACE_STORE": "off"},
    )


def test_a_workflow_is_a_tool_with_its_input_schema_and_its_output() -> None:
    async def main() -> tuple[Any, Any, Any]:
        params = serve("workflows/support_triage.yaml", "--backend", "simulate")
        async with Client(params) as client:
            listed = await client.list_tools()
            ran = await client.call_tool("support_triage", {"ticket": "I was charged twice"})
            refused = await client.call_tool("support_triage", {"tickt": "typo"})
            return listed, ran, refused

    listed, ran, refused = anyio.run(main)
    (tool,) = listed.tools
    assert tool.name == "support_triage"
    assert tool.input_schema["required"] == ["ticket"]
    assert tool.input_schema["properties"]["ticket"]["type"] == "string"
    assert not ran.is_error
    assert ran.structured_content["category"] == "billing"
    assert ran.structured_content["routing"]["category"] == "billing"
    # A failed run is an MCP tool error with the message `microagents run` would print.
    assert refused.is_error
    assert refused.content[0].text == (
        "input: input does not match the workflow's input schema: ticket: Field required"
    )
