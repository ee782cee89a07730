"""The Anthropic back-end: `Model` over the official SDK's `AsyncAnthropic`.

One client (one connection pool) per back-end instance, created on first use (a pool belongs
to the event loop that first used it: share an instance within one loop, e.g. through an
`Engine`). The SDK's own retries are off (`max_retries=0`): retries
live in one place, `RetryingModel`, where they cooperate with the rate limiter and escalation.
The SDK is imported lazily — it takes most of a second — so `import microagents` stays fast.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from ._errors import (
    AuthenticationError,
    InvalidRequestError,
    ModelConnectionError,
    ModelError,
    ModelNotFoundError,
    ModelTimeoutError,
    OverloadedError,
    PermissionDeniedError,
    RateLimitedError,
    ServerError,
)
from ._model import (
    ContentBlock,
    ModelRequest,
    ModelResponse,
    StopReason,
    StreamEnd,
    StreamEvent,
    TextBlock,
    TextDelta,
    ToolResultBlock,
    ToolUseBlock,
    Usage,
)
from ._sdk_spans import sdk_open_telemetry
from ._tiers import TierTable, min_cacheable_tokens

if TYPE_CHECKING:
    import anthropic

DEFAULT_TIMEOUT = 60.0
CHARS_PER_TOKEN = 4
"""A rough, conservative estimate used only to decide whether a prefix is worth caching."""

MAX_PREFIXES = 512
RATE_LIMIT_HEADER_PREFIX = "anthropic-ratelimit-"
NO_KEY_MESSAGE = "ANTHROPIC_API_KEY is not set: export it, or run with --backend simulate"


class AnthropicModel:
    """Claude through the official `anthropic` SDK.

    ```python
    model = AnthropicModel()  # ANTHROPIC_API_KEY and ANTHROPIC_BASE_URL from the environment
    response = await model.complete(ModelRequest(model="claude-haiku-4-5", messages=(...,)))
    ```
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        tiers: TierTable | None = None,
    ) -> None:
        self.api_key = api_key or os.environ.get("ANTHROPIC_API_KEY") or None
        self.base_url = base_url or os.environ.get("ANTHROPIC_BASE_URL") or None
        self.timeout = timeout
        self.tiers = tiers or TierTable()
        self._client: anthropic.AsyncAnthropic | None = None
        self._prefixes: dict[
            tuple[int, int, str],
            tuple[object, object, list[dict[str, Any]] | None, list[dict[str, Any]]],
        ] = {}

    @property
    def client(self) -> anthropic.AsyncAnthropic:
        if self._client is None:
            if not self.api_key:
                raise AuthenticationError(NO_KEY_MESSAGE)
            import anthropic

            self._client = anthropic.AsyncAnthropic(
                api_key=self.api_key,
                base_url=self.base_url,
                max_retries=0,  # ours, in RetryingModel; never stacked on the SDK's
                timeout=self.timeout,
                # One span per model call, ours: the SDK's own only when asked for.
                open_telemetry=sdk_open_telemetry(),
            )
        return self._client

    async def aclose(self) -> None:
        """Close the connection pool (a client belongs to the event loop that used it)."""
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def __aenter__(self) -> AnthropicModel:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- the protocol -----------------------------------------------------------------------

    async def complete(self, request: ModelRequest) -> ModelResponse:
        client = self.client  # first use imports the SDK (~1 s): not part of the call's latency
        params = self.to_params(request)
        started = time.perf_counter()
        try:
            raw = await client.messages.with_raw_response.create(
                **params, timeout=request.timeout or self.timeout
            )
            message = await raw.parse()
        except Exception as exc:
            raise _translate(exc) from exc
        return self.to_response(
            message,
            latency=time.perf_counter() - started,
            headers=raw.headers,
            request_id=raw.request_id,
        )

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        """Deltas as they arrive — text, and the JSON of a tool call's input (a structured
        answer streams as its JSON) — then the assembled response."""
        client = self.client
        params = self.to_params(request)
        first_token: float | None = None
        started = time.perf_counter()
        try:
            async with client.messages.stream(
                **params, timeout=request.timeout or self.timeout
            ) as stream:
                async for event in stream:
                    if event.type != "content_block_delta":
                        continue
                    delta = event.delta
                    piece = (
                        delta.text
                        if delta.type == "text_delta"
                        else delta.partial_json
                        if delta.type == "input_json_delta"
                        else ""
                    )
                    if piece:
                        if first_token is None:
                            first_token = time.perf_counter() - started
                        yield TextDelta(piece)
                message = await stream.get_final_message()
                headers = stream.response.headers
                request_id = stream.request_id
        except Exception as exc:
            raise _translate(exc) from exc
        response = self.to_response(
            message,
            latency=time.perf_counter() - started,
            headers=headers,
            request_id=request_id,
            time_to_first_token=first_token,
        )
        yield StreamEnd(response)

    # -- wire format ------------------------------------------------------------------------

    def to_params(self, request: ModelRequest) -> dict[str, Any]:
        """The keyword arguments for `messages.create`, in the API's wire shapes."""
        system, tools = self._prefix(request)
        params: dict[str, Any] = {
            "model": request.model,
            "max_tokens": request.max_tokens,
            "messages": [
                {"role": m.role, "content": [_block_param(b) for b in m.content]}
                for m in request.messages
            ],
        }
        # No temperature: API version 2026-10-21, which SDK 2.x speaks, refuses sampling
        # parameters at any value. `request.temperature` still decides cacheability.
        if system is not None:
            params["system"] = system
        if tools:
            params["tools"] = tools
        if request.tool_choice is not None:
            choice: dict[str, Any] = {"type": request.tool_choice.type}
            if request.tool_choice.name is not None:
                choice["name"] = request.tool_choice.name
            params["tool_choice"] = choice
        if request.stop_sequences:
            params["stop_sequences"] = list(request.stop_sequences)
        return params

    def _prefix(
        self, request: ModelRequest
    ) -> tuple[list[dict[str, Any]] | None, list[dict[str, Any]]]:
        """System blocks and tool definitions, with cache marks when the prefix is long
        enough to be cached. Requests built from one agent share these objects, so the
        conversion is done once per (system, tools) pair, not once per call."""
        key = (id(request.system), id(request.tools), request.model)
        cached = self._prefixes.get(key)
        if cached is not None and cached[0] is request.system and cached[1] is request.tools:
            return cached[2], cached[3]
        tools: list[dict[str, Any]] = [
            {"name": t.name, "description": t.description, "input_schema": dict(t.input_schema)}
            for t in request.tools
        ]
        system: list[dict[str, Any]] | None = (
            [{"type": "text", "text": request.system}] if request.system else None
        )
        prefix_chars = len(request.system or "") + len(json.dumps(tools))
        if prefix_chars // CHARS_PER_TOKEN >= min_cacheable_tokens(request.model):
            # The breakpoint on the last prefix block caches everything before it too
            # (tools come before system in the prompt).
            marked = system if system else tools
            marked[-1] = {**marked[-1], "cache_control": {"type": "ephemeral"}}
        if len(self._prefixes) >= MAX_PREFIXES:
            self._prefixes.clear()  # systems rendered per input would otherwise grow it forever
        self._prefixes[key] = (request.system, request.tools, system, tools)
        return system, tools

    def to_response(
        self,
        message: Any,
        *,
        latency: float,
        headers: Mapping[str, str],
        request_id: str | None,
        time_to_first_token: float | None = None,
    ) -> ModelResponse:
        content: list[ContentBlock] = []
        for block in message.content:
            if block.type == "text":
                content.append(TextBlock(block.text))
            elif block.type == "tool_use":
                content.append(ToolUseBlock(block.id, block.name, dict(block.input or {})))
        raw_usage = message.usage
        usage = Usage(
            input_tokens=raw_usage.input_tokens or 0,
            output_tokens=raw_usage.output_tokens or 0,
            cache_creation_input_tokens=raw_usage.cache_creation_input_tokens or 0,
            cache_read_input_tokens=raw_usage.cache_read_input_tokens or 0,
        )
        price = self.tiers.price_of(message.model)
        stop: StopReason = message.stop_reason or "end_turn"
        return ModelResponse(
            content=tuple(content),
            stop_reason=stop,
            usage=usage,
            model=message.model,
            request_id=request_id,
            latency=latency,
            time_to_first_token=time_to_first_token,
            cost_usd=price.cost(usage) if price else None,
            rate_limits=_rate_limit_headers(headers),
        )


def _block_param(block: ContentBlock) -> dict[str, Any]:
    if isinstance(block, TextBlock):
        return {"type": "text", "text": block.text}
    if isinstance(block, ToolUseBlock):
        return {"type": "tool_use", "id": block.id, "name": block.name, "input": dict(block.input)}
    assert isinstance(block, ToolResultBlock)
    return {
        "type": "tool_result",
        "tool_use_id": block.tool_use_id,
        "content": block.content,
        "is_error": block.is_error,
    }


def _rate_limit_headers(headers: Mapping[str, str]) -> Mapping[str, str]:
    return {
        k.lower(): v for k, v in headers.items() if k.lower().startswith(RATE_LIMIT_HEADER_PREFIX)
    }


def _translate(exc: Exception) -> ModelError:
    """The SDK's exceptions as ours: same meaning, with the advice a user needs."""
    import anthropic

    if isinstance(exc, ModelError):
        return exc
    if isinstance(exc, anthropic.APITimeoutError):
        return ModelTimeoutError(
            "the model call timed out; it will be retried, or raise the timeout"
        )
    if isinstance(exc, anthropic.APIConnectionError):
        return ModelConnectionError(
            f"could not reach the Anthropic API ({exc.__cause__ or exc}); "
            "check the network and ANTHROPIC_BASE_URL"
        )
    if not isinstance(exc, anthropic.APIStatusError):
        return ModelError(f"unexpected error from the Anthropic SDK: {type(exc).__name__}: {exc}")
    headers = exc.response.headers
    request_id = headers.get("request-id")
    should = headers.get("x-should-retry")
    should_retry = None if should is None else should.lower() == "true"
    detail = _error_message(exc)
    status = exc.status_code
    kwargs: dict[str, Any] = {
        "request_id": request_id,
        "status": status,
        "should_retry": should_retry,
    }
    if status == 401:
        return AuthenticationError(
            f"the API key was refused: {detail}; check ANTHROPIC_API_KEY", **kwargs
        )
    if status == 403:
        return PermissionDeniedError(f"permission denied: {detail}", **kwargs)
    if status == 404:
        return ModelNotFoundError(
            f"not found: {detail}; check the model id in the tier table", **kwargs
        )
    if status == 429:
        return RateLimitedError(
            f"rate limited: {detail}", retry_after=_retry_after(headers), **kwargs
        )
    if status == 529:
        return OverloadedError(
            f"the API is overloaded: {detail}", retry_after=_retry_after(headers), **kwargs
        )
    if status >= 500 or status in (408, 409):
        return ServerError(
            f"the API failed ({status}): {detail}", retry_after=_retry_after(headers), **kwargs
        )
    return InvalidRequestError(f"the request was refused ({status}): {detail}", **kwargs)


def _error_message(exc: Any) -> str:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
    return str(exc.message)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) * scale)
        except ValueError:
            continue
    return None
