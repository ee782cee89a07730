"""Counting a request's input tokens before sending it: the API's count where a back-end has
one, a local estimate otherwise.

A back-end that can count implements `count_tokens(request)` (the `TokenCountingModel`
protocol): `AnthropicModel` asks the API's `messages/count_tokens` endpoint (free, and exact
for the model), `SimulatedModel` counts as it bills. `count_tokens(model, request)` finds the
back-end under any layers (`inner`), and falls back to a conservative local estimate when
there is none, or when the back-end cannot be reached (no key, no network):

```python
tokens = await count_tokens(engine_model, ModelRequest(model="claude-haiku-4-5", messages=(...,)))
```
"""

from __future__ import annotations

import json
from typing import Protocol, runtime_checkable

from ..errors import AuthenticationError, ModelConnectionError
from ..graph._text import estimate_tokens
from ._protocol import Model, ModelRequest, TextBlock, ToolResultBlock, ToolUseBlock


@runtime_checkable
class TokenCountingModel(Model, Protocol):
    """A back-end that can count a request's input tokens without answering it."""

    async def count_tokens(self, request: ModelRequest) -> int:
        """The input tokens `request` would be billed (system, tools and messages)."""
        ...


def estimate_request_tokens(request: ModelRequest) -> int:
    """A local, conservative count of `request`'s input tokens (no network): it errs high,
    so that a budget checked with it holds when the API counts."""
    parts: list[str] = [request.system or ""]
    parts += [f"{t.name} {t.description} {json.dumps(dict(t.input_schema))}" for t in request.tools]
    for message in request.messages:
        for block in message.content:
            if isinstance(block, TextBlock):
                parts.append(block.text)
            elif isinstance(block, ToolUseBlock):
                parts.append(json.dumps(dict(block.input)))
            elif isinstance(block, ToolResultBlock):
                parts.append(block.content)
    if request.output_format is not None:
        parts.append(json.dumps(dict(request.output_format)))
    return sum(estimate_tokens(part) for part in parts if part)


def counting_backend(model: Model) -> TokenCountingModel | None:
    """The first model down the stack (through layers' `inner`) that can count tokens."""
    seen: set[int] = set()
    current: object = model
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, TokenCountingModel):
            return current
        current = getattr(current, "inner", None)
    return None


async def count_tokens(model: Model, request: ModelRequest) -> int:
    """`request`'s input tokens: counted by `model`'s back-end (the API, for Anthropic), or
    estimated locally when it cannot count or cannot be reached (no key, no network)."""
    backend = counting_backend(model)
    if backend is None:
        return estimate_request_tokens(request)
    try:
        return await backend.count_tokens(request)
    except (AuthenticationError, ModelConnectionError):
        # Offline: the estimate is what a budget can rely on. A key the API refuses is an
        # AuthenticationError too; the call that follows will say so.
        return estimate_request_tokens(request)
