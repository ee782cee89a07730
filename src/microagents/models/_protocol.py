"""The model protocol: one request in, one response out — the way a transport is to httpx.

Everything above this layer (the agent runner, the scheduler) talks to a `Model` and never
knows which back-end answers. Retries, rate limits, caching and pricing are wrappers around a
`Model` (see `_retry`, `_ratelimit`, `_cache`), not branches inside one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, Protocol, runtime_checkable

NO_HEADERS: Mapping[str, str] = MappingProxyType({})

StopReason = Literal["end_turn", "tool_use", "max_tokens", "stop_sequence", "refusal", "pause_turn"]
CachePoint = Literal["none", "tools", "system", "message"]
CacheTTL = Literal["5m", "1h"]


@dataclass(frozen=True, slots=True)
class TextBlock:
    """Text from the model, or text sent to it."""

    text: str
    type: Literal["text"] = "text"


@dataclass(frozen=True, slots=True)
class ToolUseBlock:
    """The model asks for a tool call (or, with a forced tool, gives structured output)."""

    id: str
    name: str
    input: Mapping[str, Any]
    type: Literal["tool_use"] = "tool_use"


@dataclass(frozen=True, slots=True)
class ToolResultBlock:
    """The answer to a tool call, sent back in a user message."""

    tool_use_id: str
    content: str
    is_error: bool = False
    type: Literal["tool_result"] = "tool_result"


ContentBlock = TextBlock | ToolUseBlock | ToolResultBlock


@dataclass(frozen=True, slots=True)
class Message:
    """One turn of the conversation."""

    role: Literal["user", "assistant"]
    content: tuple[ContentBlock, ...]

    @classmethod
    def user(cls, text: str) -> Message:
        return cls("user", (TextBlock(text),))

    @property
    def text(self) -> str:
        """The message's text blocks joined (a prompt may come in more than one block)."""
        return "".join(b.text for b in self.content if isinstance(b, TextBlock))


@dataclass(frozen=True, slots=True)
class ToolDefinition:
    """A tool the model may call, described by a JSON Schema of its input."""

    name: str
    description: str
    input_schema: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ToolChoice:
    """How the model may use tools: ``auto``, ``any``, a named ``tool`` (forced), or ``none``."""

    type: Literal["auto", "any", "tool", "none"] = "auto"
    name: str | None = None
    disable_parallel_tool_use: bool = False
    """At most one tool call per answer (sent only with the `auto`, `any` and `tool` types)."""


@dataclass(frozen=True, slots=True)
class ModelRequest:
    """Everything one model call needs. Immutable, so that parts can be shared across runs."""

    model: str
    messages: tuple[Message, ...]
    system: str | None = None
    tools: tuple[ToolDefinition, ...] = ()
    tool_choice: ToolChoice | None = None
    max_tokens: int = 1024
    temperature: float = 0.0
    stop_sequences: tuple[str, ...] = ()
    metadata: Mapping[str, str] = field(default_factory=dict)
    """Caller labels (agent, node, run); not sent to the API, used for limits and tracing."""
    timeout: float | None = None
    """Seconds for this call, end to end; None uses the back-end's default."""
    output_format: Mapping[str, Any] | None = None
    """A JSON Schema the answer's text must match (the API's structured outputs): the
    answer is valid JSON of that shape by construction."""
    effort: str | None = None
    """How much effort the model spends (`low` … `max`), for models that offer it."""
    cache_point: CachePoint = "system"
    """Where the part of the prompt that repeats from call to call ends: after the tool
    definitions, after the system prompt, or after the first block of the first message.
    The back-end marks it for the prompt cache when it is long enough; nothing after it is
    marked, since it changes per call."""
    cache_ttl: CacheTTL | None = None
    """How long a cache entry written by this call lives: 5 minutes (refreshed by every read)
    or an hour (for prefixes reused at longer intervals, such as Message Batches); None: the
    back-end's setting."""


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts as the API reports them; cache reads and writes are counted apart."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_1h_input_tokens: int = 0
    """The part of `cache_creation_input_tokens` written with the 1-hour TTL (priced higher)."""

    @property
    def total_input_tokens(self) -> int:
        return self.input_tokens + self.cache_creation_input_tokens + self.cache_read_input_tokens

    @property
    def cache_hit_rate(self) -> float:
        """The share of input tokens read from the prompt cache (0 when there was no input)."""
        total = self.total_input_tokens
        return self.cache_read_input_tokens / total if total else 0.0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_creation_input_tokens + other.cache_creation_input_tokens,
            self.cache_read_input_tokens + other.cache_read_input_tokens,
            self.cache_creation_1h_input_tokens + other.cache_creation_1h_input_tokens,
        )


@dataclass(frozen=True, slots=True)
class BatchedCall:
    """How a call answered through a Message Batch went (Message Batches mode)."""

    batch_id: str
    """The Message Batch whose result it was."""
    custom_id: str
    """Its request's custom id in that batch."""
    waited: float
    """Seconds from the call being deferred to its result being collected."""
    standard_cost_usd: float | None
    """What the same call costs at standard rates (its `cost_usd` is at batch rates)."""


@dataclass(frozen=True, slots=True)
class ModelResponse:
    """One model answer with its usage, cost and timing."""

    content: tuple[ContentBlock, ...]
    stop_reason: StopReason
    usage: Usage
    model: str
    request_id: str | None = None
    latency: float = 0.0
    """Seconds from the call to the full answer, including any wait for the rate limiter."""
    time_to_first_token: float | None = None
    rate_limit_wait: float = 0.0
    """Seconds this call waited for the client-side rate limiter before it was sent."""
    cost_usd: float | None = None
    """List-price cost of this call; None when the model's price is unknown."""
    cached: bool = False
    """Answered from the response cache: no paid call was made."""
    simulated: bool = False
    """Made up by the simulated back-end, not by a model."""
    replayed: bool = False
    """Returned from the run's journal on resume: recorded earlier, no call was made now."""
    attempts: int = 1
    rate_limits: Mapping[str, str] = field(default_factory=lambda: NO_HEADERS)
    """The API's ``anthropic-ratelimit-*`` headers, for the rate limiter to adapt to."""
    warnings: tuple[str, ...] = ()
    """Python warnings the client library raised during the call (e.g. a deprecated model);
    the call went on, and tracing records them."""
    batch: BatchedCall | None = None
    """Answered through a Message Batch: which, and how long the call waited for it."""

    @property
    def text(self) -> str:
        return "".join(b.text for b in self.content if isinstance(b, TextBlock))

    @property
    def tool_uses(self) -> tuple[ToolUseBlock, ...]:
        return tuple(b for b in self.content if isinstance(b, ToolUseBlock))


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of text as it streams in."""

    text: str


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """The end of a stream: the assembled response."""

    response: ModelResponse


StreamEvent = TextDelta | StreamEnd


@runtime_checkable
class Model(Protocol):
    """A model back-end. Implement `complete`; that is the whole extension point."""

    async def complete(self, request: ModelRequest) -> ModelResponse:
        """Answer one request."""
        ...


async def aclose_inner(model: Model) -> None:
    """Close `model` if it holds anything open (wrappers pass `aclose` down the stack)."""
    close = getattr(model, "aclose", None)
    if close is not None:
        await close()


def can_stream(model: Model) -> bool:
    """Whether `model` (a back-end, or a layer over one) can stream."""
    return callable(getattr(model, "stream", None))


def stream_of(model: Model, request: ModelRequest) -> AsyncIterator[StreamEvent]:
    """`model.stream(request)`; layers call this to pass a stream down their stack."""
    stream = getattr(model, "stream", None)
    if stream is None:
        raise TypeError(f"{type(model).__name__} cannot stream")
    events: AsyncIterator[StreamEvent] = stream(request)
    return events


@runtime_checkable
class StreamingModel(Model, Protocol):
    """A back-end that can also stream partial text."""

    def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        """Yield `TextDelta`s as text arrives, then one `StreamEnd` with the full response."""
        ...
