"""In-process fakes for tests above the model layer: a scripted `Model` and a fake clock."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio.lowlevel

from ..models._protocol import ModelRequest, ModelResponse, TextBlock, ToolUseBlock, Usage
from ..spec._schema import example_instance

Answer = Mapping[str, Any] | str | ModelResponse | Exception
Script = Callable[[ModelRequest], Answer | None]


@dataclass
class FakeModel:
    """A `Model` that answers from a script, instantly, and records every request.

    The script is a function of the request returning: a mapping (the structured output: JSON
    text when the request asks for native structured output, else a call of the forced tool),
    a string (a text answer), a full `ModelResponse`, an exception to raise, or None for the
    default — a minimal valid instance of the output schema.

    ```python
    model = FakeModel(lambda r: {"category": "billing", "confidence": 0.9})
    ```
    """

    script: Script | None = None
    requests: list[ModelRequest] = field(default_factory=list)
    usage: Usage = field(default_factory=lambda: Usage(input_tokens=10, output_tokens=5))

    async def complete(self, request: ModelRequest) -> ModelResponse:
        self.requests.append(request)
        await anyio.lowlevel.checkpoint()  # a real call yields to the event loop; so does this
        answer = self.script(request) if self.script is not None else None
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, ModelResponse):
            return answer
        if isinstance(answer, str):
            return ModelResponse((TextBlock(answer),), "end_turn", self.usage, request.model)
        if request.output_format is not None:
            if answer is None:
                answer = example_instance(dict(request.output_format))
            text = json.dumps(dict(answer or {}))
            return ModelResponse((TextBlock(text),), "end_turn", self.usage, request.model)
        choice = request.tool_choice
        # A forced tool, else the runner's answer tool: a fake answers, it calls no tools.
        name = choice.name if choice is not None and choice.name else "final_answer"
        if answer is None:
            tool = next((t for t in request.tools if t.name == name), None)
            answer = example_instance(dict(tool.input_schema)) if tool else {}
        block = ToolUseBlock(f"toolu_fake_{len(self.requests)}", name, dict(answer or {}))
        return ModelResponse((block,), "tool_use", self.usage, request.model)


@dataclass
class FakeClock:
    """A clock whose `sleep` advances time instantly, for rate-limit tests without waiting."""

    time: float = 0.0
    sleeps: list[float] = field(default_factory=list)

    def now(self) -> float:
        return self.time

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.time += seconds
        await anyio.lowlevel.checkpoint()
