"""The model layer as the API stands: deprecations, prices, structured output, prompt caching,
effort — end to end through the official SDK and the loopback fake server."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import anyio
import genai_prices
import pytest
from syrupy.assertion import SnapshotAssertion

import microagents as ma
from cli_runner import run_cli
from microagents.models._anthropic import AnthropicModel
from microagents.models._protocol import Message, ModelRequest, ModelResponse, ToolDefinition, Usage
from microagents.runtime._batch import run_batch
from microagents.runtime._engine import Engine
from microagents.testing import FakeAnthropicServer, Reply

UNLIMITED = ma.models.RateLimits(None, None, None)
TICKET = {"type": "object", "properties": {"ticket": {"type": "string"}}, "required": ["ticket"]}
# Well over Haiku 4.5's 4,096-token minimum: instructions that never change.
POLICY = "".join(
    f"Rule {i}: a message that mentions topic {i} belongs to queue {i % 5}; quote it.\n"
    for i in range(320)
)


def unlimited(tiers: ma.models.TierTable) -> ma.models.TierTable:
    for name in tiers.names:
        tiers = tiers.with_tier(name, limits=UNLIMITED)
    return tiers


def engine(server: FakeAnthropicServer, tiers: ma.models.TierTable) -> Engine:
    model = ma.models.anthropic_model(api_key="test-key", base_url=server.base_url, tiers=tiers)
    return Engine(model, tiers=tiers, tracing=None)


def classifier(**changes: Any) -> ma.AgentSpec:
    fields: dict[str, Any] = {
        "name": "classifier",
        "version": "1.0.0",
        "description": "Sort a ticket into a queue.",
        "prompt": POLICY + "\n<ticket>\n{{ text }}\n</ticket>\n",
        "input": {
            "type": "object",
            "properties": {"text": {"type": "string"}},
            "required": ["text"],
        },
        "output": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"queue": {"type": "integer"}, "confidence": {"type": "number"}},
            "required": ["queue", "confidence"],
        },
        **changes,
    }
    return ma.AgentSpec(**fields)


def one_agent(spec: ma.AgentSpec, tmp_path: Path) -> ma.CompiledWorkflow:
    flow = ma.Workflow("classify", input=TICKET, output="{{ nodes.sort.output }}").node(
        "sort", agent=spec, input={"text": "{{ input.ticket }}"}
    )
    return flow.compile(ma.Project(tmp_path))


def run_all(
    server: FakeAnthropicServer,
    workflow: ma.CompiledWorkflow,
    tickets: list[str],
    tiers: ma.models.TierTable | None = None,
) -> list[ma.RunResult]:
    chosen = unlimited(tiers or ma.models.TierTable())

    async def main() -> list[ma.RunResult]:
        async with engine(server, chosen) as running:
            return [await running.run(workflow, {"ticket": t}) for t in tickets]

    return anyio.run(main)


# -- a warning is not a failure ---------------------------------------------------------------


def test_a_deprecated_model_warns_once_and_every_call_succeeds(
    fake_anthropic: FakeAnthropicServer, caplog: pytest.LogCaptureFixture
) -> None:
    # The suite turns warnings into errors: the SDK's DeprecationWarning must not fail a call.
    deprecated = "claude-opus-4-5"
    assert ma.models.TierTable().resolve(deprecated).model == deprecated

    async def main() -> list[ModelResponse]:
        async with AnthropicModel(api_key="k", base_url=fake_anthropic.base_url) as model:
            request = ModelRequest(deprecated, (Message.user("hello"),))
            return [await model.complete(request) for _ in range(3)]

    with caplog.at_level(logging.WARNING, logger="microagents.models"):
        responses = anyio.run(main)
    assert fake_anthropic.paid_calls == 3
    assert [len(r.warnings) for r in responses] == [1, 0, 0]
    assert "deprecated" in responses[0].warnings[0]
    assert "January 22nd, 2027" in responses[0].warnings[0]
    assert len([r for r in caplog.records if deprecated in r.getMessage()]) == 1


def test_a_deprecated_tier_is_named_with_its_end_of_life_before_the_run(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MICROAGENTS_TIER_SONNET", "claude-opus-4-5")
    monkeypatch.setenv("MICROAGENTS_SIMULATED_LATENCY_SCALE", "0")
    ticket = json.dumps({"ticket": "I was charged twice for order 7781."})
    args = ["run", "workflows/support_triage.yaml", "--input", ticket, "--backend", "simulate"]
    code, _, err = run_cli(args, capsys)
    assert code == 0, err
    warnings = [line for line in err.splitlines() if "MA240" in line]
    assert len(warnings) == 1  # once, though three agents climb to that tier
    assert "claude-opus-4-5" in warnings[0]
    assert "end of life January 22nd, 2027" in warnings[0]
    assert "MICROAGENTS_TIER_SONNET" in warnings[0]


def test_an_error_that_is_not_the_apis_is_not_disguised_as_a_model_error(
    fake_anthropic: FakeAnthropicServer,
) -> None:
    # A tool schema that cannot be serialised is a bug in the caller, not a failed call.
    broken = ToolDefinition("t", "a tool", {"type": "object", "default": object()})

    async def main() -> None:
        async with AnthropicModel(api_key="k", base_url=fake_anthropic.base_url) as model:
            request = ModelRequest("claude-haiku-4-5", (Message.user("x"),), tools=(broken,))
            await model.complete(request)

    with pytest.raises(TypeError):
        anyio.run(main)
    assert fake_anthropic.paid_calls == 0


# -- prices from genai-prices -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "batch"),
    [
        ("claude-haiku-4-5", False),
        ("claude-sonnet-4-6", False),
        ("claude-opus-4-8", False),
        ("claude-haiku-4-5", True),
        ("claude-haiku-5-5", False),  # long-context rates above 100,000 input tokens
    ],
)
@pytest.mark.parametrize(
    "usage",
    [
        Usage(input_tokens=1200, output_tokens=300),
        Usage(input_tokens=800, output_tokens=90, cache_creation_input_tokens=5000),
        Usage(input_tokens=50, output_tokens=10, cache_read_input_tokens=9000),
        Usage(
            input_tokens=10,
            output_tokens=10,
            cache_creation_input_tokens=4000,
            cache_creation_1h_input_tokens=4000,
        ),
        Usage(input_tokens=150_000, output_tokens=2000, cache_read_input_tokens=10_000),
    ],
)
def test_costs_match_genai_prices(model: str, batch: bool, usage: Usage) -> None:
    price = ma.models.TierTable().price_of(model)
    assert price is not None
    write_1h = usage.cache_creation_1h_input_tokens
    reference = genai_prices.calc_price(
        genai_prices.Usage(
            input_tokens=usage.total_input_tokens,
            output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cache_read_input_tokens,
            cache_write_tokens=usage.cache_creation_input_tokens,
            cache_write_1h_tokens=write_1h,
        ),
        model,
        provider_id="anthropic",
        price_context={"processing": "batch"} if batch else None,
    )
    assert price.cost(usage, batch=batch) == pytest.approx(float(reference.total_price))


def test_a_response_is_priced_as_genai_prices_prices_it(
    fake_anthropic: FakeAnthropicServer,
) -> None:
    async def main() -> list[ModelResponse]:
        async with AnthropicModel(api_key="k", base_url=fake_anthropic.base_url) as model:
            return [
                await model.complete(ModelRequest(m, (Message.user("a question " * 50),)))
                for m in ("claude-haiku-4-5", "claude-sonnet-4-6", "claude-opus-4-8")
            ]

    for response in anyio.run(main):
        reference = genai_prices.calc_price(
            genai_prices.Usage(
                input_tokens=response.usage.total_input_tokens,
                output_tokens=response.usage.output_tokens,
            ),
            response.model,
            provider_id="anthropic",
        )
        assert response.cost_usd == pytest.approx(float(reference.total_price))


def test_an_unknown_model_costs_unknown_never_zero(fake_anthropic: FakeAnthropicServer) -> None:
    async def main() -> ModelResponse:
        async with AnthropicModel(api_key="k", base_url=fake_anthropic.base_url) as model:
            return await model.complete(ModelRequest("my-gateway-model-1", (Message.user("x"),)))

    response = anyio.run(main)
    assert response.cost_usd is None


def test_a_project_prices_a_model_it_runs(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.microagents.models."my-gateway-model-1"]\n'
        "price = {input = 0.5, output = 2.0}\n"
        "structured_outputs = false\n"
        "[tool.microagents.tiers.haiku]\nmodel = 'my-gateway-model-1'\nrpm = 600\n"
    )
    tiers = ma.models.TierTable.load(tmp_path, environ={})
    price = tiers.price_of("my-gateway-model-1")
    assert price is not None
    assert price.cost(Usage(input_tokens=10**6, output_tokens=10**6)) == pytest.approx(2.5)
    assert price.cost(Usage(cache_read_input_tokens=10**6)) == pytest.approx(0.05)
    assert tiers.capabilities_of("my-gateway-model-1").structured_outputs is False
    assert tiers.resolve("haiku").limits.source == "config"
    (tmp_path / "pyproject.toml").write_text(
        "[tool.microagents.tiers.haiku]\nmodel = 'x-1'\ninput_price = 1\n"
    )
    with pytest.raises(ma.MicroagentsError, match=r'prices belong to the model: \[models\."x-1"\]'):
        ma.models.TierTable.load(tmp_path, environ={})


def test_an_unpriced_model_with_a_budget_exits_2_naming_the_model(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MICROAGENTS_TIER_HAIKU", "my-gateway-model-1")
    items = tmp_path / "tickets.jsonl"
    items.write_text('{"ticket": "I was charged twice."}\n')
    args = [
        "run", "workflows/support_triage.yaml", "--input-file", str(items),
        "--out", str(tmp_path / "out.jsonl"), "--backend", "simulate", "--budget-usd", "1",
    ]  # fmt: skip
    code, _, err = run_cli(args, capsys)
    assert code == 2
    assert "error: a budget cannot be enforced: my-gateway-model-1 has no known price" in err
    assert '[tool.microagents.models."my-gateway-model-1"]' in err
    assert "MA241" in err  # the warning before it says the same, as for any run
    assert not (tmp_path / "out.jsonl").exists()


# -- structured output --------------------------------------------------------------------------


def test_native_structured_output_where_the_model_has_it_and_the_tool_where_not(
    fake_anthropic: FakeAnthropicServer, tmp_path: Path
) -> None:
    fake_anthropic.on(Reply.structured({"queue": 3, "confidence": 0.9}))
    workflow = one_agent(classifier(prompt="Sort: {{ text }}"), tmp_path)
    legacy = "claude-sonnet-4-20250514"  # no structured outputs in the capability table
    tiers = ma.models.TierTable().with_tier("sonnet", model=legacy)
    on_sonnet = one_agent(classifier(prompt="Sort: {{ text }}", model="sonnet"), tmp_path)
    (native,) = run_all(fake_anthropic, workflow, ["a"], tiers)
    (forced,) = run_all(fake_anthropic, on_sonnet, ["b"], tiers)
    assert native.ok
    assert forced.ok
    assert native.output.queue == forced.output.queue == 3
    first, second = (r.body for r in fake_anthropic.requests)
    assert first["model"] == "claude-haiku-4-5"
    assert first["output_config"]["format"]["type"] == "json_schema"
    assert first["output_config"]["format"]["schema"]["additionalProperties"] is False
    assert "tools" not in first
    assert "tool_choice" not in first
    assert second["model"] == legacy
    assert "output_config" not in second
    assert second["tool_choice"] == {
        "type": "tool",
        "name": "final_answer",
        "disable_parallel_tool_use": True,
    }
    assert [t["name"] for t in second["tools"]] == ["final_answer"]


def test_an_output_with_a_free_form_object_keeps_its_keys_through_the_answer_tool(
    fake_anthropic: FakeAnthropicServer, project: ma.Project
) -> None:
    # Structured outputs close every object; the extractor's `record` is open by design. (It
    # may also ask to escalate, so any tool may be called: the answer is scripted by name.)
    record = {"order_id": "A-1", "amount": 12.5}
    answer = {"record": record, "missing": [], "confidence": 0.9}
    fake_anthropic.on(Reply.tool_call("final_answer", answer))
    flow = ma.Workflow("x", input=TICKET, output="{{ nodes.x.output }}").node(
        "x",
        agent="extractor",
        input={"text": "{{ input.ticket }}", "fields": ["order_id", "amount"]},
    )
    (result,) = run_all(fake_anthropic, flow.compile(project), ["order A-1, 12.50"])
    assert result.ok, result.error
    assert result.output.record == record
    (request,) = fake_anthropic.requests
    assert "output_config" not in request.body
    assert request.body["tool_choice"] == {"type": "any"}  # the answer tool, or escalate
    assert [t["name"] for t in request.body["tools"]] == ["final_answer", "escalate"]


def test_effort_is_sent_where_the_model_offers_it_and_is_part_of_the_cache_key(
    fake_anthropic: FakeAnthropicServer, tmp_path: Path
) -> None:
    fake_anthropic.on(Reply.structured({"queue": 1, "confidence": 0.9}))
    spec = classifier(prompt="Sort: {{ text }}", effort="low", model="sonnet")
    run_all(fake_anthropic, one_agent(spec, tmp_path), ["a"])
    on_haiku = classifier(prompt="Sort: {{ text }}", effort="low")
    run_all(fake_anthropic, one_agent(on_haiku, tmp_path), ["a"])
    on_sonnet, on_haiku = (r.body for r in fake_anthropic.requests)
    assert on_sonnet["output_config"]["effort"] == "low"
    assert "effort" not in on_haiku["output_config"]  # Haiku 4.5 does not offer it
    from microagents.models._cache import request_key

    low = ModelRequest("claude-sonnet-4-6", (Message.user("x"),), effort="low")
    high = ModelRequest("claude-sonnet-4-6", (Message.user("x"),), effort="high")
    assert request_key(low) != request_key(high)


# -- prompt caching that pays -----------------------------------------------------------------


def test_twenty_inputs_write_the_repeating_prefix_once_and_read_it_nineteen_times(
    fake_anthropic: FakeAnthropicServer, tmp_path: Path
) -> None:
    fake_anthropic.on(Reply.structured({"queue": 2, "confidence": 0.9}))
    workflow = one_agent(classifier(), tmp_path)
    items = tmp_path / "tickets.jsonl"
    items.write_text(
        "".join(json.dumps({"ticket": f"ticket number {i}"}) + "\n" for i in range(20))
    )
    tiers = unlimited(ma.models.TierTable())

    async def main() -> ma.results.BatchSummary:
        async with engine(fake_anthropic, tiers) as running:
            return await run_batch(running, workflow, items, tmp_path / "out.jsonl", concurrency=1)

    summary = anyio.run(main)
    assert summary.ok == 20
    usages = [r.response["usage"] for r in fake_anthropic.requests]  # type: ignore[index]
    writes = [u["cache_creation_input_tokens"] for u in usages]
    reads = [u["cache_read_input_tokens"] for u in usages]
    assert sum(1 for w in writes if w) == 1
    assert writes[0] > 4096
    assert sum(1 for r in reads if r) == 19
    assert set(reads[1:]) == {writes[0]}
    # The mark sits on the prompt's static opening, the first block of the first message.
    first_block = fake_anthropic.requests[0].body["messages"][0]["content"][0]
    assert first_block["cache_control"] == {"type": "ephemeral"}
    assert first_block["text"] == POLICY + "\n<ticket>"
    assert summary.cache_hit_rate > 0.9
    assert f"prompt cache {summary.cache_hit_rate:.0%} of input read" in _rendered(summary)
    assert summary.to_dict()["cache_hit_rate"] == round(summary.cache_hit_rate, 4)


def test_validate_says_when_the_repeating_prefix_is_too_short_to_cache(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    agents = tmp_path / "agents"
    agents.mkdir()
    half = POLICY[: len(POLICY) // 2]  # ~2,000 tokens: worth caching, short of Haiku's 4,096
    spec = classifier(prompt=half + "{{ text }}").model_dump(exclude_none=True)
    spec.pop("input_model", None)
    spec.pop("output_model", None)
    import yaml

    (agents / "classifier.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(["validate", "agents"], capsys)
    assert code == 0
    (line,) = [line for line in err.splitlines() if "MA243" in line]
    assert "claude-haiku-4-5 caches a prefix only from 4,096" in line
    assert re.search(r"about [\d,]+ tokens of every request repeat", line)


# -- the tier table ------------------------------------------------------------------------


def test_microagents_models_shows_the_tier_table(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    snapshot: SnapshotAssertion,
) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    monkeypatch.setenv("MICROAGENTS_TIER_OPUS", "claude-opus-4-5")  # deprecated: say so
    code, out, _ = run_cli(["models"], capsys)
    assert code == 0
    out = re.sub(r"genai-prices \d+\.\d+\.\d+", "genai-prices <version>", out)
    assert "\n".join(line.rstrip() for line in out.splitlines()) == snapshot
    code, out, _ = run_cli(["models", "--json"], capsys)
    rows = {row["tier"]: row for row in json.loads(out)}
    assert rows["opus"]["deprecated"] == "January 22nd, 2027"
    assert rows["haiku"]["price"]["batch_input"] == 0.5
    assert rows["haiku"]["limits"]["source"] == "default"


def _rendered(summary: ma.results.BatchSummary) -> str:
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(summary.render())
    return console.export_text()


def test_the_fake_server_refuses_an_object_structured_outputs_cannot_express(
    fake_anthropic: FakeAnthropicServer,
) -> None:
    import anthropic

    client = anthropic.Anthropic(api_key="k", base_url=fake_anthropic.base_url, max_retries=0)
    open_schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    with pytest.raises(anthropic.BadRequestError, match="additionalProperties"):
        client.messages.create(
            model="claude-haiku-4-5",
            max_tokens=10,
            messages=[{"role": "user", "content": "x"}],
            output_config={"format": {"type": "json_schema", "schema": open_schema}},
        )
    with pytest.raises(anthropic.BadRequestError, match="effort"):
        client.messages.create(
            model="claude-sonnet-4-6",
            max_tokens=10,
            messages=[{"role": "user", "content": "x"}],
            output_config={"effort": "extreme"},  # type: ignore[typeddict-item]
        )
    client.close()
