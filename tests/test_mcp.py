"""MCP servers as a tool source, against real servers written with the `mcp` SDK
(tests/mcp_servers/docs_server.py) over stdio and streamable HTTP on loopback."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from click.testing import CliRunner
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from syrupy.assertion import SnapshotAssertion

import microagents as ma
from microagents.cli import cli
from microagents.mcp import McpServerSpec
from microagents.models._backends import anthropic_model
from microagents.runtime._engine import Engine
from microagents.runtime._tool_calls import call_tool
from microagents.testing import FakeAnthropicServer, Reply
from microagents.tracing._tracing import Tracing
from test_tracing import tree

SERVER = Path(__file__).parent / "mcp_servers" / "docs_server.py"
STDIO = McpServerSpec(command=[sys.executable, str(SERVER)], timeout=1)
FAKE_KEY = "sk-ant-api03-THIS-IS-A-FAKE-KEY-0000000000"

AGENT = """\
name: helper
version: 1.0.0
description: Answer with the docs' help.
prompt: "{{ question }}"
tools: [%s]
input: {type: object, properties: {question: {type: string}}, required: [question]}
output: {type: object, properties: {answer: {type: string}}, required: [answer]}
"""
WORKFLOW = """\
name: ask
version: 1.0.0
description: Ask the helper.
input: {type: object, properties: {question: {type: string}}, required: [question]}
nodes:
  help: {agent: helper, input: {question: "{{ input.question }}"}}
"""


@pytest.fixture(scope="module")
def docs() -> Iterator[ma.Project]:
    """One project, one server over stdio, shared by the tests that only call it."""
    with ma.Project(Path(__file__).parent, mcp_servers={"docs": STDIO}) as project:
        yield project


def write_project(root: Path, allowed: str, servers: str) -> None:
    (root / "agents").mkdir()
    (root / "agents" / "helper.yaml").write_text(AGENT % allowed)
    (root / "workflows").mkdir()
    (root / "workflows" / "ask.yaml").write_text(WORKFLOW)
    (root / "microagents.toml").write_text(servers)


def stdio_config(command: list[str] | None = None) -> str:
    return f"[mcp_servers.docs]\ncommand = {json.dumps(command or STDIO.command)}\n"


def call(tool: ma.Tool, arguments: dict[str, Any]) -> tuple[str, bool, float]:
    started = time.monotonic()
    outcome = anyio.run(call_tool, tool, arguments)
    return outcome.content, outcome.error is not None, time.monotonic() - started


# -- discovery and static checks ---------------------------------------------------------------


def test_a_servers_tools_join_the_registry_with_its_schemas(docs: ma.Project) -> None:
    add = docs.tools["docs.add"]
    assert add.server == "docs"
    assert not add.idempotent  # not unless the config says so
    assert add.description == "Add two whole numbers."
    assert add.input_schema["properties"]["a"]["type"] == "integer"
    assert add.input_schema["required"] == ["a", "b"]
    assert {"docs.search", "docs.slow", "docs.crash"} <= set(docs.tools)


def test_tools_list_shows_every_tool_with_its_source(tmp_path: Path, monkeypatch: Any) -> None:
    write_project(tmp_path, "docs.add", stdio_config())
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["tools", "list"])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line.split()[1] for line in result.output.splitlines()}
    assert lines["docs.add"] == "mcp:docs"
    assert lines["review.enqueue"] == "built-in"
    assert lines["sql.query"] == "built-in"


def test_validate_fails_on_an_unknown_tool_of_a_running_server(
    tmp_path: Path, monkeypatch: Any
) -> None:
    write_project(tmp_path, "docs.ad", stdio_config())
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["validate", "agents", "workflows"])
    assert result.exit_code == 2
    assert "unknown tool 'docs.ad' (did you mean 'docs.add'?" in result.output
    assert "tools listed by the running MCP server 'docs'" in result.output


def test_validate_uses_the_cached_list_when_the_server_cannot_start(
    tmp_path: Path, monkeypatch: Any
) -> None:
    write_project(tmp_path, "docs.add, docs.nope", stdio_config())
    monkeypatch.chdir(tmp_path)
    CliRunner().invoke(cli, ["tools", "list"])  # lists, and caches, the live server's tools
    (tmp_path / "microagents.toml").write_text(stdio_config(["no-such-mcp-server"]))
    result = CliRunner().invoke(cli, ["validate", "agents"])
    assert result.exit_code == 2
    assert "warning MA702" in result.output
    assert "checked against its tools as cached at" in result.output
    assert "unknown tool 'docs.nope'" in result.output
    assert "unknown tool 'docs.add'" not in result.output  # known from the cache


def test_without_a_server_or_a_cache_its_tools_are_unknown_and_it_says_why(
    tmp_path: Path, monkeypatch: Any
) -> None:
    write_project(tmp_path, "docs.add", stdio_config(["no-such-mcp-server"]))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["validate", "agents"])
    assert result.exit_code == 2
    assert "error MA701" in result.output
    assert "MCP server 'docs'" in result.output
    assert "could not be started" in result.output


def test_a_workflow_declares_its_own_server(tmp_path: Path) -> None:
    write_project(tmp_path, "docs.add", "")
    spec = (tmp_path / "workflows" / "ask.yaml").read_text()
    server = json.dumps({"docs": {"command": STDIO.command, "idempotent": ["add"]}})
    (tmp_path / "workflows" / "ask.yaml").write_text(f"{spec}mcp_servers: {server}\n")
    with ma.Project(tmp_path) as project:
        workflow = project.load_workflow(tmp_path / "workflows" / "ask.yaml")
        (agent,) = workflow.agents
        assert agent.spec.tools == ["docs.add"]
        with pytest.raises(ma.SpecError, match=r"unknown tool 'docs\.add'"):
            project.load_agent(tmp_path / "agents" / "helper.yaml")  # not the project's


# -- calls ---------------------------------------------------------------------------------------


def test_arguments_are_checked_against_the_schema_before_the_call(docs: ma.Project) -> None:
    text, failed, _ = call(docs.tools["docs.add"], {"a": "one"})
    assert failed
    assert "invalid arguments for docs.add" in text
    assert "'b' is a required property" in text
    assert "'one' is not of type 'integer'" in text
    assert call(docs.tools["docs.add"], {"a": 1, "b": 2})[:2] == ('{"result": 3}', False)
    # An optional argument left out is not sent (the server's default applies).
    assert call(docs.tools["docs.search"], {"query": "q"})[0].count("hit") == 3


def test_a_tool_error_a_timeout_and_a_crash_are_tool_errors_without_a_hang(
    docs: ma.Project,
) -> None:
    text, failed, _ = call(docs.tools["docs.fail"], {"message": "no such page"})
    assert failed
    assert "docs.fail failed" in text
    assert "the tool reported an error" in text

    text, failed, took = call(docs.tools["docs.slow"], {"seconds": 30})
    assert failed
    assert "MCP server 'docs' did not answer slow within 1 s" in text
    assert took < 5

    text, failed, took = call(docs.tools["docs.crash"], {})
    assert failed
    assert "MCP server 'docs' closed the connection during crash" in text
    assert took < 5
    # The next call starts the server again.
    assert call(docs.tools["docs.add"], {"a": 2, "b": 2})[:2] == ('{"result": 4}', False)


def test_long_results_are_cut_before_they_reach_a_prompt(tmp_path: Path) -> None:
    spec = STDIO.model_copy(update={"max_result_chars": 100})
    with ma.Project(tmp_path, mcp_servers={"docs": spec}) as project:
        text, failed, _ = call(project.tools["docs.long_text"], {"size": 5000})
    assert not failed
    assert len(text) < 200
    assert "cut:" in text


def test_a_stdio_server_gets_only_the_environment_it_is_given(
    tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setenv("MA_TEST_SECRET", "s3cret")
    monkeypatch.setenv("MA_TEST_OTHER", "leak")
    spec = STDIO.model_copy(update={"env": {"TOKEN": "${MA_TEST_SECRET}"}})
    with ma.Project(tmp_path, mcp_servers={"docs": spec}) as project:
        assert call(project.tools["docs.env"], {"name": "TOKEN"})[0] == '{"result": "s3cret"}'
        assert call(project.tools["docs.env"], {"name": "MA_TEST_OTHER"})[0] == (
            '{"result": "<unset>"}'
        )


# -- over streamable HTTP ----------------------------------------------------------------------


@pytest.fixture
def http_server() -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, str(SERVER), "http", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as attempt:
                if attempt.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_server_over_streamable_http(http_server: str, tmp_path: Path) -> None:
    spec = McpServerSpec(url=http_server, headers={"X-Team": "docs"})
    with ma.Project(tmp_path, mcp_servers={"web": spec}) as project:
        assert project.tools["web.add"].server == "web"
        assert call(project.tools["web.add"], {"a": 20, "b": 22})[:2] == ('{"result": 42}', False)


# -- an agent calling two tools, end to end ---------------------------------------------------


@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_an_agent_calls_two_mcp_tools_through_the_anthropic_sdk(
    transport: str,
    tmp_path: Path,
    fake_anthropic: FakeAnthropicServer,
    monkeypatch: Any,
    snapshot: SnapshotAssertion,
    request: pytest.FixtureRequest,
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", FAKE_KEY)
    servers = (
        stdio_config()
        if transport == "stdio"
        else f'[mcp_servers.docs]\nurl = "{request.getfixturevalue("http_server")}"\n'
    )
    write_project(tmp_path, "docs.add, docs.search", servers)
    fake_anthropic.on(
        [
            Reply.tool_calls(("docs.add", {"a": 2, "b": 3}), ("docs.search", {"query": "tax"})),
            Reply.structured({"answer": "5, see tax hit 1"}),
        ]
    )
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with ma.Project(tmp_path) as project:
        workflow = project.load_workflow(tmp_path / "workflows" / "ask.yaml")

        async def main() -> ma.RunResult:
            model = anthropic_model(base_url=fake_anthropic.base_url)
            async with Engine(model, tracing=Tracing.from_provider(provider)) as engine:
                return await engine.run(workflow, {"question": "2 + 3, and tax?"})

        result = anyio.run(main)
    assert result.ok, result.error
    assert result.to_json()["output"] == {"help": {"answer": "5, see tax hit 1"}}
    # The model got both results back, in request order.
    second = fake_anthropic.requests[1].body["messages"][-1]["content"]
    assert [block["content"] for block in second] == [
        '{"result": 5}',
        '{"result": "tax hit 1\\ntax hit 2\\ntax hit 3"}',
    ]
    tools = [s for s in exporter.get_finished_spans() if s.name.startswith("execute_tool")]
    assert sorted(
        (s.name, dict(s.attributes or {})["microagents.mcp.server"], s.status.status_code.name)
        for s in tools
    ) == [("execute_tool docs.add", "docs", "OK"), ("execute_tool docs.search", "docs", "OK")]
    assert all(dict(s.attributes or {})["mcp.method.name"] == "tools/call" for s in tools)
    # The whole tree, reviewed: the run, the agent's hop, its two model calls and, between
    # them, the two MCP tool calls (started together: ordered by name here).
    assert sorted_children(tree(exporter.get_finished_spans())) == snapshot


def sorted_children(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Sibling tool calls start concurrently; order them by name so the snapshot is stable."""
    tools = iter(sorted((n for n in nodes if is_tool(n)), key=lambda n: str(n["name"])))
    ordered = []
    for node in nodes:
        chosen = next(tools) if is_tool(node) else node
        # The client-side rate limiter's wait is a matter of timing, not of the tree.
        attributes = {k: v for k, v in chosen["attributes"].items() if "rate_limit" not in k}
        events = [e for e in chosen["events"] if "rate_limit" not in e["name"]]
        children = sorted_children(chosen["children"])
        ordered.append({**chosen, "attributes": attributes, "events": events, "children": children})
    return ordered


def is_tool(node: dict[str, Any]) -> bool:
    return str(node["name"]).startswith("execute_tool")
