"""The simulated back-end: dry runs with no API key, answered from each agent's examples.

For a structured output it answers with the output of the agent's few-shot example nearest to
the prompt (checked against the output schema), or a minimal instance of the schema when the
agent has no examples. On the cheapest tier it lowers the confidence of a deterministic share
of answers, so that a dry run also shows escalations. Token counts are estimated from the text,
latency is drawn from a log-normal distribution, and every response is marked `simulated`.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
from pydantic import ValidationError

from ..graph._agent import CompiledAgent
from ..spec._schema import example_instance
from ._protocol import ModelRequest, ModelResponse, TextBlock, ToolDefinition, ToolUseBlock, Usage
from ._tiers import TierTable

CHARS_PER_TOKEN = 4
LOW_CONFIDENCE = 0.45
HIGH_CONFIDENCE = 0.93
_WORD = re.compile(r"\w+")


@dataclass(frozen=True, slots=True)
class SimulatedLatency:
    """Log-normal latency: median seconds per tier (by model name), spread `sigma`,
    everything multiplied by `scale` (0 for instant answers)."""

    medians: Mapping[str, float] = field(
        default_factory=lambda: {"haiku": 0.6, "sonnet": 1.4, "opus": 2.8}
    )
    sigma: float = 0.35
    scale: float = 1.0

    def draw(self, model: str, rng: random.Random) -> float:
        # Always draw, so that the answers that follow from the same generator do not
        # depend on whether latency is simulated.
        spread = math.exp(rng.gauss(0.0, self.sigma))
        if self.scale <= 0:
            return 0.0
        median = next((m for name, m in self.medians.items() if name in model), 1.0)
        return self.scale * median * spread


@dataclass(frozen=True, slots=True)
class _Known:
    agent: CompiledAgent
    example_words: tuple[frozenset[str], ...]
    template_words: frozenset[str]
    """Words every prompt of this agent has (the template's): they say nothing about which
    example is nearest."""


class SimulatedModel:
    """A `Model` that needs no network and no key; its answers are labelled simulated.

    ```python
    model = SimulatedModel(agents=[router, extractor], latency=SimulatedLatency(scale=0))
    ```
    """

    def __init__(
        self,
        agents: Iterable[CompiledAgent] = (),
        *,
        latency: SimulatedLatency | None = None,
        low_confidence_rate: float = 0.2,
        tiers: TierTable | None = None,
        seed: int = 0,
    ) -> None:
        self.latency = latency or SimulatedLatency()
        self.low_confidence_rate = low_confidence_rate
        self.tiers = tiers or TierTable()
        self.seed = seed
        self._agents: dict[str, _Known] = {}
        for agent in agents:
            examples = agent.spec.examples
            inputs = [_words(json.dumps(example.input)) for example in examples]
            # The template's words are those every rendered prompt shares (a template may quote
            # its own examples, so subtracting one example's input is not enough).
            renders = [_words(agent.render_prompt(dict(example.input))) for example in examples]
            template = frozenset.intersection(*renders) if len(renders) > 1 else frozenset()
            if len(renders) == 1:
                template = renders[0] - inputs[0]
            words = tuple(example - template for example in inputs)
            self._agents[agent.spec.name] = _Known(agent, words, template)
        self._cheapest = self.tiers.resolve(self.tiers.names[0]).model if self.tiers.names else ""

    async def count_tokens(self, request: ModelRequest) -> int:
        """The input tokens this back-end bills `request` (a local estimate, as its usage)."""
        return max(1, _request_chars(request) // CHARS_PER_TOKEN)

    async def complete(self, request: ModelRequest) -> ModelResponse:
        prompt = _task_text(request)
        digest = hashlib.sha256(f"{self.seed}:{request.model}:{prompt}".encode()).digest()
        rng = random.Random(digest)
        delay = self.latency.draw(request.model, rng)
        if delay:
            await anyio.sleep(delay)
        known = self._agents.get(request.metadata.get("agent", ""))
        tool = _answer_tool(request)
        content: tuple[TextBlock | ToolUseBlock, ...]
        if request.output_format is not None:
            # Native structured output: the answer is the JSON text (a simulation calls no
            # tools, so it answers at once).
            output = self._structured(request.output_format, known, prompt, rng, request.model)
            produced = json.dumps(output)
            content = (TextBlock(produced),)
            stop = "end_turn"
        elif tool is not None:
            output = self._structured(tool.input_schema, known, prompt, rng, request.model)
            content = (ToolUseBlock(f"toolu_sim_{digest.hex()[:20]}", tool.name, output),)
            produced = json.dumps(output)
            stop = "tool_use"
        else:
            text = f"(simulated answer from {request.model})"
            content = (TextBlock(text),)
            produced = text
            stop = "end_turn"
        usage = Usage(
            input_tokens=max(1, _request_chars(request) // CHARS_PER_TOKEN),
            output_tokens=max(1, len(produced) // CHARS_PER_TOKEN),
        )
        price = self.tiers.price_of(request.model)
        return ModelResponse(
            content=content,
            stop_reason=stop,  # type: ignore[arg-type]
            usage=usage,
            model=request.model,
            request_id=f"sim_{digest.hex()[:16]}",
            latency=delay,
            cost_usd=price.cost(usage) if price else None,
            simulated=True,
        )

    def _structured(
        self,
        output_schema: Mapping[str, Any],
        known: _Known | None,
        prompt: str,
        rng: random.Random,
        model: str,
    ) -> dict[str, Any]:
        schema = dict(output_schema)
        output: dict[str, Any] | None = None
        if known is not None and known.example_words:
            words = _words(prompt) - known.template_words
            scores = [_similarity(words, example) for example in known.example_words]
            best = known.agent.spec.examples[scores.index(max(scores))]
            output = dict(best.output)
            try:
                known.agent.output_model.model_validate(output)
            except ValidationError:
                output = None  # an example that no longer fits its schema: fall back
        if output is None:
            output = example_instance(schema) or {}
        properties = schema.get("properties") or {}
        confidence = output.get("confidence")
        if "confidence" in properties and isinstance(confidence, int | float):
            # A stronger tier is surer; the cheapest is sometimes unsure, so escalation shows.
            if model == self._cheapest or "haiku" in model:
                if rng.random() < self.low_confidence_rate:
                    output["confidence"] = LOW_CONFIDENCE
            else:
                output["confidence"] = max(float(confidence), HIGH_CONFIDENCE)
        return output


ANSWER_TOOL = "final_answer"


def _answer_tool(request: ModelRequest) -> ToolDefinition | None:
    """The tool a structured answer goes to: the forced one, or — when any tool must be
    called — the runner's answer tool (a simulation calls no other tools)."""
    choice = request.tool_choice
    if choice is None or choice.type not in ("tool", "any"):
        return None
    wanted = choice.name if choice.type == "tool" else ANSWER_TOOL
    found = next((t for t in request.tools if t.name == wanted), None)
    return found or (request.tools[0] if choice.type == "any" and request.tools else None)


def _task_text(request: ModelRequest) -> str:
    """The task: the first user turn (later turns are tool results and repairs)."""
    for message in request.messages:
        if message.role == "user":
            return "".join(b.text for b in message.content if isinstance(b, TextBlock))
    return ""


def _request_chars(request: ModelRequest) -> int:
    total = len(request.system or "")
    for message in request.messages:
        for block in message.content:
            total += len(block.text) if isinstance(block, TextBlock) else len(str(block))
    return total + sum(len(json.dumps(dict(t.input_schema))) for t in request.tools)


def _words(text: str) -> frozenset[str]:
    # Short words (the, and, my, …) are in every text; they would make all examples alike.
    return frozenset(w.lower() for w in _WORD.findall(text) if len(w) > 3)


def _similarity(prompt: frozenset[str], example: frozenset[str]) -> float:
    """Overlap of the prompt's own words with an example's input words (Jaccard)."""
    union = prompt | example
    return len(prompt & example) / len(union) if union else 0.0
