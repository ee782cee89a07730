"""The model layer: one request in, one response out.

A `Model` has one method, `complete`; back-ends implement it (the official `anthropic` SDK, a
simulated back-end for offline dry runs), and the layers every call goes through implement it
too, so that they stack: `CachedModel → RetryingModel → RateLimitedModel → AnthropicModel`.
A `TierTable` maps tiers (`haiku`, `sonnet`, `opus`) to models, prices and capabilities.

Imports: `spec`, `graph` (a simulated answer comes from an agent's examples) and the package's
base modules; nothing above."""

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from ._anthropic import AnthropicModel as AnthropicModel
    from ._backends import anthropic_model as anthropic_model
    from ._backends import simulated_model as simulated_model
    from ._cache import CachedModel as CachedModel
    from ._capabilities import Capabilities as Capabilities
    from ._prices import Price as Price
    from ._protocol import (
        ContentBlock as ContentBlock,
    )
    from ._protocol import (
        Message as Message,
    )
    from ._protocol import (
        Model as Model,
    )
    from ._protocol import (
        ModelRequest as ModelRequest,
    )
    from ._protocol import (
        ModelResponse as ModelResponse,
    )
    from ._protocol import (
        StreamEnd as StreamEnd,
    )
    from ._protocol import (
        StreamEvent as StreamEvent,
    )
    from ._protocol import (
        StreamingModel as StreamingModel,
    )
    from ._protocol import (
        TextBlock as TextBlock,
    )
    from ._protocol import (
        TextDelta as TextDelta,
    )
    from ._protocol import (
        ToolChoice as ToolChoice,
    )
    from ._protocol import (
        ToolDefinition as ToolDefinition,
    )
    from ._protocol import (
        ToolResultBlock as ToolResultBlock,
    )
    from ._protocol import (
        ToolUseBlock as ToolUseBlock,
    )
    from ._protocol import (
        Usage as Usage,
    )
    from ._ratelimit import RateLimitedModel as RateLimitedModel
    from ._ratelimit import Throttling as Throttling
    from ._retry import RetryingModel as RetryingModel
    from ._retry import RetryPolicy as RetryPolicy
    from ._simulate import SimulatedLatency as SimulatedLatency
    from ._simulate import SimulatedModel as SimulatedModel
    from ._tiers import RateLimits as RateLimits
    from ._tiers import Tier as Tier
    from ._tiers import TierTable as TierTable
    from ._tokens import TokenCountingModel as TokenCountingModel
    from ._tokens import count_tokens as count_tokens
    from ._tokens import estimate_request_tokens as estimate_request_tokens

_EXPORTS = {
    # the protocol and its messages
    "ContentBlock": "._protocol",
    "Message": "._protocol",
    "Model": "._protocol",
    "ModelRequest": "._protocol",
    "ModelResponse": "._protocol",
    "StreamEnd": "._protocol",
    "StreamEvent": "._protocol",
    "StreamingModel": "._protocol",
    "TextBlock": "._protocol",
    "TextDelta": "._protocol",
    "ToolChoice": "._protocol",
    "ToolDefinition": "._protocol",
    "ToolResultBlock": "._protocol",
    "ToolUseBlock": "._protocol",
    "Usage": "._protocol",
    # counting a request's tokens before sending it
    "count_tokens": "._tokens",
    "estimate_request_tokens": "._tokens",
    "TokenCountingModel": "._tokens",
    # back-ends and stacks
    "anthropic_model": "._backends",
    "AnthropicModel": "._anthropic",
    "simulated_model": "._backends",
    "SimulatedLatency": "._simulate",
    "SimulatedModel": "._simulate",
    # layers around a back-end
    "CachedModel": "._cache",
    "RateLimitedModel": "._ratelimit",
    "RetryingModel": "._retry",
    "RetryPolicy": "._retry",
    "Throttling": "._ratelimit",
    # tiers, prices and capabilities
    "Capabilities": "._capabilities",
    "Price": "._prices",
    "RateLimits": "._tiers",
    "Tier": "._tiers",
    "TierTable": "._tiers",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
