"""Tier table, simulated back-end and the in-process fake: the model layer off the wire."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

import microagents as ma
from microagents.errors import MicroagentsError
from microagents.models._capabilities import deprecation_of
from microagents.models._protocol import Message, ModelRequest, ToolChoice, ToolDefinition, Usage
from microagents.models._simulate import SimulatedLatency, SimulatedModel
from microagents.models._tiers import RateLimits, TierTable
from microagents.testing import FakeModel

ROOT = Path(__file__).parent.parent


def test_default_tiers_are_the_reference_lineup_with_list_prices() -> None:
    tiers = TierTable()
    assert [tiers.resolve(t).model for t in ("haiku", "sonnet", "opus")] == [
        "claude-haiku-4-5",
        "claude-sonnet-4-6",
        "claude-opus-4-8",
    ]
    prices = [tiers.resolve(t).price for t in ("haiku", "sonnet", "opus")]
    assert [(p.input, p.output) for p in prices if p] == [(1, 5), (3, 15), (5, 25)]


def test_no_default_tier_runs_a_model_the_installed_sdk_deprecates() -> None:
    # An SDK upgrade that deprecates a default model fails here, not in every user's run.
    for tier in TierTable().tiers:
        assert deprecation_of(tier.model) is None, f"{tier.name}: {tier.model} is deprecated"


def test_an_explicit_model_id_is_its_own_tier_and_unknown_names_are_refused() -> None:
    tier = TierTable().resolve("claude-sonnet-4-6")
    assert (tier.model, tier.price.input if tier.price else None) == ("claude-sonnet-4-6", 3.0)
    assert TierTable().resolve("claude-5-experimental").price is None
    with pytest.raises(MicroagentsError, match="unknown tier 'hauki'; did you mean 'haiku'"):
        TierTable().resolve("hauki")


def test_tiers_load_from_the_project_file_then_the_environment(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        "[tool.microagents.tiers.sonnet]\nmodel = 'claude-sonnet-4-6'\nrpm = 4000\n"
        "[tool.microagents.tiers.fast]\nmodel = 'claude-haiku-4-5'\n"
    )
    tiers = TierTable.load(tmp_path, environ={"MICROAGENTS_TIER_OPUS": "claude-opus-4-6"})
    assert tiers.resolve("sonnet").model == "claude-sonnet-4-6"
    assert tiers.resolve("sonnet").limits.requests_per_minute == 4000
    assert tiers.resolve("fast").price == tiers.resolve("haiku").price
    assert tiers.resolve("opus").model == "claude-opus-4-6"
    (tmp_path / "pyproject.toml").write_text("[tool.microagents.tiers.haiku]\nmodle = 'x'\n")
    with pytest.raises(MicroagentsError, match="unknown keys \\['modle'\\]"):
        TierTable.load(tmp_path, environ={})


def test_rate_limits_default_per_tier() -> None:
    assert TierTable().resolve("haiku").limits == RateLimits()


def route_request(text: str, model: str = "claude-haiku-4-5") -> ModelRequest:
    router = ma.Project(ROOT).registry.resolve("router")
    tool = ToolDefinition("route", "Give the route.", router.output_schema)
    return ModelRequest(
        model=model,
        messages=(Message.user(router.render_prompt({"text": text})),),
        tools=(tool,),
        tool_choice=ToolChoice("tool", "route"),
        metadata={"agent": "router"},
    )


def test_simulated_answers_come_from_the_nearest_example_and_are_labelled() -> None:
    router = ma.Project(ROOT).registry.resolve("router")
    model = SimulatedModel([router], latency=SimulatedLatency(scale=0), low_confidence_rate=0)
    example = router.spec.examples[0]
    response = anyio.run(model.complete, route_request(str(example.input["text"])))
    (call,) = response.tool_uses
    assert call.input["category"] == example.output["category"]
    router.output_model.model_validate(call.input)
    assert response.simulated
    assert response.usage.input_tokens > 0
    assert response.cost_usd is not None  # a dry run still estimates what it would cost


def test_the_cheapest_tier_is_sometimes_unsure_so_dry_runs_show_escalation() -> None:
    router = ma.Project(ROOT).registry.resolve("router")
    model = SimulatedModel([router], latency=SimulatedLatency(scale=0), low_confidence_rate=0.5)

    async def confidences(tier_model: str) -> list[float]:
        found = []
        for i in range(40):
            response = await model.complete(route_request(f"ticket number {i}", tier_model))
            found.append(float(response.tool_uses[0].input["confidence"]))
        return found

    haiku = anyio.run(confidences, "claude-haiku-4-5")
    sonnet = anyio.run(confidences, "claude-sonnet-4-6")
    assert 5 < sum(c < 0.5 for c in haiku) < 35
    assert min(sonnet) >= 0.9
    assert anyio.run(confidences, "claude-haiku-4-5") == haiku  # deterministic


def test_simulated_model_without_examples_answers_from_the_schema() -> None:
    schema = {
        "type": "object",
        "properties": {"valid": {"type": "boolean"}, "score": {"type": "integer", "minimum": 3}},
        "required": ["valid", "score"],
    }
    request = ModelRequest(
        model="claude-haiku-4-5",
        messages=(Message.user("check"),),
        tools=(ToolDefinition("out", "", schema),),
        tool_choice=ToolChoice("tool", "out"),
    )
    response = anyio.run(SimulatedModel(latency=SimulatedLatency(scale=0)).complete, request)
    assert dict(response.tool_uses[0].input) == {"valid": True, "score": 3}


def test_fake_model_scripts_and_records() -> None:
    model = FakeModel(lambda r: "hi" if r.tool_choice is None else {"category": "billing"})
    text = anyio.run(model.complete, ModelRequest("m", (Message.user("x"),)))
    structured = anyio.run(model.complete, route_request("x"))
    assert text.text == "hi"
    assert dict(structured.tool_uses[0].input) == {"category": "billing"}
    assert len(model.requests) == 2


def test_usage_adds_up() -> None:
    total = Usage(1, 2, 3, 4) + Usage(10, 20, 30, 40)
    assert total == Usage(11, 22, 33, 44)
    assert total.total_input_tokens == 11 + 33 + 44


def test_the_limiter_takes_its_rate_from_the_api_headers() -> None:
    from microagents.models._protocol import ModelResponse, TextBlock
    from microagents.models._ratelimit import RateLimitedModel
    from microagents.testing import FakeClock

    headers = {
        "anthropic-ratelimit-requests-limit": "600",
        "anthropic-ratelimit-requests-remaining": "599",
    }
    answer = ModelResponse((TextBlock("ok"),), "end_turn", Usage(1, 1), "m", rate_limits=headers)
    clock = FakeClock()
    tiers = TierTable().with_tier("m", model="m", limits=RateLimits(60, None, None))
    model = RateLimitedModel(FakeModel(lambda r: answer), tiers, clock=clock)

    async def calls(n: int) -> None:
        for _ in range(n):
            await model.complete(ModelRequest("m", (Message.user("x"),)))

    anyio.run(calls, 21)
    # Configured 60 RPM would take 20 s for 21 calls; the API said 600 RPM: 2 s.
    assert clock.now() == pytest.approx(2.0, abs=0.2)


def test_simulated_agents_with_tools_answer_in_one_call() -> None:
    """Agents that may escalate themselves get tool_choice "any": the simulation must still
    answer through the answer tool, not with text (which would cost a repair call)."""
    from microagents.runtime._engine import Engine

    workflow = ma.Project(ROOT).load_workflow("workflows/invoice_extraction.yaml")
    model = SimulatedModel(
        workflow.agents, latency=SimulatedLatency(scale=0), low_confidence_rate=0
    )
    engine = Engine(model)
    result = ma.run_sync(workflow, {"text": "Invoice 42 from ACME, total 10.00 EUR"}, engine=engine)
    assert result.ok, result.error
    assert all(attempt.calls == 1 for run in result.nodes for attempt in run.attempts)


def test_simulated_answers_do_not_depend_on_the_latency_scale() -> None:
    router = ma.Project(ROOT).registry.resolve("router")

    async def answers(scale: float) -> list[float]:
        model = SimulatedModel([router], latency=SimulatedLatency(scale=scale, sigma=0.0))
        found = []
        for i in range(20):
            response = await model.complete(route_request(f"ticket {i}"))
            found.append(float(response.tool_uses[0].input["confidence"]))
        return found

    assert anyio.run(answers, 0.0) == anyio.run(answers, 0.0001)
