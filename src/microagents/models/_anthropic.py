"""The Anthropic back-end: `Model` over the official SDK's `AsyncAnthropic`.

One client (one connection pool) per back-end instance, created on first use (a pool belongs
to the event loop that first used it: share an instance within one loop, e.g. through an
`Engine`). The SDK's own retries are off (`max_retries=0`): retries
live in one place, `RetryingModel`, where they cooperate with the rate limiter and escalation.
The SDK is imported lazily — it takes most of a second — so `import microagents` stays fast.

Only the SDK's API and connection errors become `ModelError`s. A Python warning the SDK raises
during a call (a deprecated model, say) is recorded and reported once per model — logged, and
carried on the response for the trace — and the call goes on; anything else is a bug and
propagates as itself.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Coroutine, Generator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import (
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
from ._protocol import (
    CacheTTL,
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
from ._tiers import TierTable

if TYPE_CHECKING:
    import anthropic

DEFAULT_TIMEOUT = 60.0
MAX_PREFIXES = 512
log = logging.getLogger("microagents.models")
T = TypeVar("T")
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
        cache_ttl: CacheTTL = "5m",
        prompt_cache: bool = True,
    ) -> None:
        self.api_key = api_key or os.environ.get("ANTHROPIC_API_KEY") or None
        self.base_url = base_url or os.environ.get("ANTHROPIC_BASE_URL") or None
        self.timeout = timeout
        self.tiers = tiers or TierTable()
        self.cache_ttl: CacheTTL = cache_ttl
        """The prompt cache's TTL for requests that do not set one."""
        self.prompt_cache = prompt_cache
        """Mark the repeating prefix for the prompt cache (off: no request carries a mark)."""
        self._client: anthropic.AsyncAnthropic | None = None
        self._prefixes: dict[tuple[int, int, str, str, str], _Prefix] = {}
        self._schemas: dict[int, tuple[object, dict[str, Any]]] = {}
        self._warned: set[tuple[str, str]] = set()

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
        caught: list[str] = []
        try:
            raw = await _recording_warnings(
                client.messages.with_raw_response.create(
                    **params, timeout=request.timeout or self.timeout
                ),
                caught,
            )
            message = await raw.parse()
        except Exception as exc:
            translated = _translate(exc)
            if translated is exc:
                raise
            raise translated from exc
        return self.to_response(
            message,
            latency=time.perf_counter() - started,
            headers=raw.headers,
            request_id=raw.request_id,
            warnings=self._first_seen(request.model, caught),
        )

    async def count_tokens(self, request: ModelRequest) -> int:
        """The input tokens of `request` as the API counts them (`messages/count_tokens`:
        free, not billed, rate limited apart from messages), cache marks included."""
        client = self.client
        params = self.to_params(request)
        for unsent in ("max_tokens", "stop_sequences"):
            params.pop(unsent, None)
        try:
            counted = await client.messages.count_tokens(
                **params, timeout=request.timeout or self.timeout
            )
        except Exception as exc:
            translated = _translate(exc)
            if translated is exc:
                raise
            raise translated from exc
        return int(counted.input_tokens)

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        """Deltas as they arrive — text, and the JSON of a tool call's input (a structured
        answer streams as its JSON) — then the assembled response."""
        client = self.client
        params = self.to_params(request)
        first_token: float | None = None
        started = time.perf_counter()
        caught: list[str] = []
        with warnings.catch_warnings(record=True) as records:
            # The SDK checks the model when the stream is set up, synchronously.
            warnings.simplefilter("always")
            manager = client.messages.stream(**params, timeout=request.timeout or self.timeout)
        caught.extend(str(record.message) for record in records)
        try:
            async with manager as stream:
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
        except ValueError as exc:
            # The SDK's stream helper cannot parse a tool call's streamed JSON: the model's
            # output is broken, which is a model error (retried or escalated), not a bug.
            if "tool parameter JSON" not in str(exc):
                raise
            raise ModelError(f"the model streamed a tool call that is not JSON: {exc}") from exc
        except Exception as exc:
            translated = _translate(exc)
            if translated is exc:
                raise
            raise translated from exc
        response = self.to_response(
            message,
            latency=time.perf_counter() - started,
            headers=headers,
            request_id=request_id,
            time_to_first_token=first_token,
            warnings=self._first_seen(request.model, caught),
        )
        yield StreamEnd(response)

    def _first_seen(self, model: str, caught: list[str]) -> tuple[str, ...]:
        """The warnings not yet reported for `model`, logged now (once per model each)."""
        fresh: list[str] = []
        for text in caught:
            if (model, text) not in self._warned:
                self._warned.add((model, text))
                log.warning("the anthropic SDK warned during a call to %s: %s", model, text)
                fresh.append(text)
        return tuple(fresh)

    # -- wire format ------------------------------------------------------------------------

    def to_params(self, request: ModelRequest) -> dict[str, Any]:
        """The keyword arguments for `messages.create`, in the API's wire shapes."""
        prefix = self._prefix(request)
        contents = [[_block_param(b) for b in m.content] for m in request.messages]
        if prefix.mark_first_message and contents and contents[0]:
            contents[0][0] = {**contents[0][0], "cache_control": prefix.mark}
        messages = [
            {"role": m.role, "content": content}
            for m, content in zip(request.messages, contents, strict=True)
        ]
        params: dict[str, Any] = {
            "model": request.model,
            "max_tokens": request.max_tokens,
            "messages": messages,
        }
        # No temperature: API version 2026-10-21, which SDK 2.x speaks, refuses sampling
        # parameters at any value. `request.temperature` still decides cacheability.
        if prefix.system is not None:
            params["system"] = prefix.system
        if prefix.tools:
            params["tools"] = prefix.tools
        choice = request.tool_choice
        if choice is not None:
            wire: dict[str, Any] = {"type": choice.type}
            if choice.name is not None:
                wire["name"] = choice.name
            if choice.disable_parallel_tool_use and choice.type != "none":
                wire["disable_parallel_tool_use"] = True
            params["tool_choice"] = wire
        if request.stop_sequences:
            params["stop_sequences"] = list(request.stop_sequences)
        output_config: dict[str, Any] = {}
        if request.output_format is not None:
            output_config["format"] = {
                "type": "json_schema",
                "schema": self._wire_schema(request.output_format),
            }
        if request.effort is not None:
            output_config["effort"] = request.effort
        if output_config:
            params["output_config"] = output_config
        return params

    def _prefix(self, request: ModelRequest) -> _Prefix:
        """System blocks and tool definitions, with the cache mark where the part of the prompt
        that repeats ends. Requests built from one agent share these objects, so the
        conversion is done once per (system, tools, cache point), not once per call."""
        key = (
            id(request.system),
            id(request.tools),
            request.model,
            request.cache_point,
            request.cache_ttl or self.cache_ttl,
        )
        cached = self._prefixes.get(key)
        if (
            cached is not None
            and cached.system_source is request.system
            and (cached.tools_source is request.tools)
        ):
            return cached
        tools: list[dict[str, Any]] = [
            {"name": t.name, "description": t.description, "input_schema": dict(t.input_schema)}
            for t in request.tools
        ]
        system: list[dict[str, Any]] | None = (
            [{"type": "text", "text": request.system}] if request.system else None
        )
        mark: dict[str, Any] = {"type": "ephemeral"}
        ttl = request.cache_ttl or self.cache_ttl
        if ttl != "5m":
            mark["ttl"] = ttl
        # One breakpoint, on the last block that repeats, caches everything before it too
        # (tools come before the system prompt, which comes before the messages). A prefix
        # shorter than the model's minimum is marked all the same: the API then caches
        # nothing and charges nothing extra, and `validate` has said so.
        point = request.cache_point if self.prompt_cache else "none"
        if point == "system" and system is None:
            point = "tools"
        if point == "system" and system is not None:
            system[-1] = {**system[-1], "cache_control": mark}
        elif point == "tools" and tools:
            tools[-1] = {**tools[-1], "cache_control": mark}
        prefix = _Prefix(request.system, request.tools, system, tools, point == "message", mark)
        if len(self._prefixes) >= MAX_PREFIXES:
            self._prefixes.clear()  # systems rendered per input would otherwise grow it forever
        self._prefixes[key] = prefix
        return prefix

    def _wire_schema(self, schema: Mapping[str, Any]) -> dict[str, Any]:
        """The schema as the API's structured outputs accept it, through the SDK's own
        transformation (unsupported keywords move into descriptions); once per schema."""
        cached = self._schemas.get(id(schema))
        if cached is not None and cached[0] is schema:
            return cached[1]
        import anthropic

        wire = anthropic.transform_schema(dict(schema))
        if len(self._schemas) >= MAX_PREFIXES:
            self._schemas.clear()
        self._schemas[id(schema)] = (schema, wire)
        return wire

    def to_response(
        self,
        message: Any,
        *,
        latency: float,
        headers: Mapping[str, str],
        request_id: str | None,
        time_to_first_token: float | None = None,
        warnings: tuple[str, ...] = (),
    ) -> ModelResponse:
        content: list[ContentBlock] = []
        for block in message.content:
            if block.type == "text":
                content.append(TextBlock(block.text))
            elif block.type == "tool_use":
                content.append(ToolUseBlock(block.id, block.name, dict(block.input or {})))
        raw_usage = message.usage
        breakdown = getattr(raw_usage, "cache_creation", None)
        usage = Usage(
            input_tokens=raw_usage.input_tokens or 0,
            output_tokens=raw_usage.output_tokens or 0,
            cache_creation_input_tokens=raw_usage.cache_creation_input_tokens or 0,
            cache_read_input_tokens=raw_usage.cache_read_input_tokens or 0,
            cache_creation_1h_input_tokens=(
                getattr(breakdown, "ephemeral_1h_input_tokens", 0) or 0 if breakdown else 0
            ),
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
            warnings=warnings,
        )


@dataclass(frozen=True, slots=True)
class _Prefix:
    system_source: str | None
    tools_source: object
    system: list[dict[str, Any]] | None
    tools: list[dict[str, Any]]
    mark_first_message: bool
    mark: dict[str, Any]


def _recording_warnings(awaitable: Awaitable[T], caught: list[str]) -> Awaitable[T]:
    return _WarningsRecorded(awaitable, caught)


class _WarningsRecorded(Awaitable[T]):
    """Awaits a coroutine with Python warnings recorded into `caught` instead of shown.

    `catch_warnings` swaps process-wide state, so a block around an `await` would swallow the
    warnings of every task that runs meanwhile. Each *step* of a coroutine, though, runs
    synchronously with no other task in between, so the warnings are caught step by step."""

    def __init__(self, awaitable: Awaitable[T], caught: list[str]) -> None:
        self._coroutine = _as_coroutine(awaitable)
        self._caught = caught

    def __await__(self) -> Generator[Any, Any, T]:
        coroutine = self._coroutine
        value: Any = None
        error: BaseException | None = None
        while True:
            with warnings.catch_warnings(record=True) as records:
                warnings.simplefilter("always")
                try:
                    yielded = coroutine.throw(error) if error is not None else coroutine.send(value)
                except StopIteration as done:
                    self._caught.extend(str(r.message) for r in records)
                    return done.value  # type: ignore[no-any-return]
            self._caught.extend(str(r.message) for r in records)
            try:
                value, error = (yield yielded), None
            except GeneratorExit:
                coroutine.close()
                raise
            except BaseException as exc:  # cancellation, delivered into the call
                value, error = None, exc


def _as_coroutine(awaitable: Awaitable[T]) -> Coroutine[Any, Any, T]:
    if isinstance(awaitable, Coroutine):
        return awaitable

    async def wrapped() -> T:
        return await awaitable

    return wrapped()


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


def _translate(exc: Exception) -> Exception:
    """The SDK's exceptions as ours: same meaning, with the advice a user needs. Anything
    that is not an SDK error (a bug, ours or the SDK's) is returned as it is."""
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
    if isinstance(exc, anthropic.APIResponseValidationError):
        return ModelError(f"the API answered in a shape the SDK does not accept: {exc}")
    if not isinstance(exc, anthropic.APIStatusError):
        return exc
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
