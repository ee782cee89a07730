"""Checks of agents against the models they will run on, before any token is spent.

`validate` and `run` print these: a tier on a model the installed SDK deprecates, a model with
no known price, an effort level the model ignores, and a repeating prompt prefix too short for
the model to cache. They are warnings — the run works — except that a budget cannot be
enforced on a model with no price (`unpriced_models`, which `run --budget-usd` refuses).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..errors import Location, Problem
from ..graph._agent import CompiledAgent
from ..graph._compiled import CompiledWorkflow
from ..spec._agent_spec import EscalationSpec
from ..spec._schema import open_object
from ._tiers import TierTable

CHARS_PER_TOKEN = 4
"""A rough estimate (English text); the API's count decides, this only warns."""


@dataclass(frozen=True, slots=True)
class Use:
    """An agent and the ladder it climbs (a workflow node may give its own)."""

    agent: CompiledAgent
    ladder: tuple[str, ...]
    tool_chars: int = 0
    """The size of the agent's tool definitions, which open every request."""


def uses_of_workflow(workflow: CompiledWorkflow) -> list[Use]:
    """Every (agent, ladder) a workflow and its sub-workflows run."""
    found: dict[tuple[str, tuple[str, ...]], Use] = {}
    for node in workflow.nodes.values():
        if node.agent is not None:
            escalation = node.escalation or node.agent.escalation
            tool_chars = sum(
                len(tool.description) + len(json.dumps(tool.input_schema))
                for name in node.agent.spec.tools
                if (tool := workflow.tools.get(name)) is not None
            )
            use = Use(node.agent, tuple(escalation.ladder), tool_chars)
            found.setdefault((node.agent.reference, use.ladder), use)
        elif node.workflow is not None:
            for use in uses_of_workflow(node.workflow):
                found.setdefault((use.agent.reference, use.ladder), use)
    return list(found.values())


def uses_of_agent(agent: CompiledAgent) -> list[Use]:
    escalation: EscalationSpec = agent.escalation
    return [Use(agent, tuple(escalation.ladder))]


def unpriced_models(uses: Iterable[Use], tiers: TierTable) -> list[str]:
    """The model ids these agents may call that have no known price."""
    models = dict.fromkeys(tiers.resolve(t).model for use in uses for t in use.ladder)
    return [model for model in models if tiers.price_of(model) is None]


def model_problems(
    uses: Sequence[Use], tiers: TierTable, *, prompt_cache: bool = False
) -> list[Problem]:
    """Warnings about the models these agents run on; each model's own once. With
    `prompt_cache`, also the agents whose repeating prompt is long enough to matter but too
    short for their model to cache (`validate` says it; `run` does not repeat it each time)."""
    problems: list[Problem] = []
    seen_models: set[str] = set()
    seen_agents: set[str] = set()
    for use in uses:
        agent = use.agent
        for rung in use.ladder:
            tier = tiers.resolve(rung)
            if tier.model in seen_models:
                continue
            seen_models.add(tier.model)
            where = _where(agent, rung)
            deprecation = _deprecation(tier.model)
            if deprecation is not None:
                problems.append(
                    Problem(
                        "MA240",
                        f"'{rung}' runs {tier.model}, which the installed anthropic SDK marks "
                        f"deprecated (end of life {deprecation}); choose another model with "
                        f"{_setting(tier.name, tier.model)}",
                        *where,
                        severity="warning",
                    )
                )
            if tiers.price_of(tier.model) is None:
                problems.append(
                    Problem(
                        "MA241",
                        f"{tier.model} has no known price: its cost shows as unknown and a "
                        "budget cannot be enforced; give it one in the project file: "
                        f'[tool.microagents.models."{tier.model}"] '
                        "price = {input = ..., output = ...} (USD per million tokens)",
                        *where,
                        severity="warning",
                    )
                )
        if agent.reference in seen_agents:
            continue
        seen_agents.add(agent.reference)
        problems.extend(_agent_problems(use, tiers, prompt_cache))
    return problems


def _agent_problems(use: Use, tiers: TierTable, prompt_cache: bool) -> list[Problem]:
    agent = use.agent
    problems: list[Problem] = []
    if agent.spec.effort is not None:
        ignored = [
            tiers.resolve(rung).model
            for rung in use.ladder
            if not tiers.capabilities_of(tiers.resolve(rung).model).effort
        ]
        if ignored:
            problems.append(
                Problem(
                    "MA242",
                    f"effort '{agent.spec.effort}' is not sent to {', '.join(ignored)}, which "
                    "does not offer the effort setting",
                    agent.source.locate("effort"),
                    "effort",
                    severity="warning",
                )
            )
    if prompt_cache:
        problems.extend(_prompt_cache_problems(use, tiers))
    return problems


def _prompt_cache_problems(use: Use, tiers: TierTable) -> list[Problem]:
    agent = use.agent
    first = tiers.resolve(use.ladder[0])
    minimum = tiers.capabilities_of(first.model).min_cacheable_tokens
    prefix = stable_prefix_tokens(agent, use.tool_chars)
    # A system prompt with variables may render the same for every input (a schema): its size
    # is known only at run time, so nothing is said about it here. Nor about a repeating part
    # too small to be worth caching at all (under a quarter of the minimum).
    measurable = agent.spec.system is None or agent.static_system is not None
    problems: list[Problem] = []
    if measurable and minimum // 4 <= prefix < minimum:
        problems.append(
            Problem(
                "MA243",
                f"about {prefix:,} tokens of every request repeat (tools, system prompt, the "
                f"prompt up to its first variable), and {first.model} caches a prefix only from "
                f"{minimum:,}: they are paid in full on every call. Move more unchanging "
                "instructions and examples before the first variable to pass the minimum",
                agent.source.locate("prompt"),
                "prompt",
                severity="warning",
            )
        )
    return problems


def stable_prefix_tokens(agent: CompiledAgent, tool_chars: int = 0) -> int:
    """About how many tokens of every request repeat from input to input (what the prompt
    cache can hold): tool definitions (the answer tool's too, when the agent answers through
    one), a system prompt without variables, and the prompt's static opening."""
    chars = tool_chars
    if open_object(agent.output_schema) is not None:
        chars += len(json.dumps(agent.output_schema))
    if agent.spec.system is None or agent.static_system is not None:
        chars += len(agent.static_system or "") + len(agent.static_prompt or "")
    return chars // CHARS_PER_TOKEN


def _where(agent: CompiledAgent, rung: str) -> tuple[Location, str]:
    if agent.spec.escalation is not None and rung in agent.spec.escalation.ladder:
        return agent.source.locate("escalation", "ladder"), "escalation.ladder"
    return agent.source.locate("model"), "model"


def _deprecation(model: str) -> str | None:
    from ._capabilities import deprecation_of

    found = deprecation_of(model)
    return found.end_of_life if found is not None else None


def _setting(tier: str, model: str) -> str:
    if tier == model:
        return "the agent's `model` (or a tier name such as haiku)"
    return (
        f'[tool.microagents.tiers.{tier}] model = "..." in pyproject.toml, or '
        f"MICROAGENTS_TIER_{tier.upper()}=..."
    )
