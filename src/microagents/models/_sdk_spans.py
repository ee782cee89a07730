"""Whether the `anthropic` SDK makes spans of its own for the client microagents creates.

The SDK traces every API call itself, through the global tracer provider, unless its client is
told not to. Our ``chat`` span already is the model call, with its tokens and cost; the SDK's
span, started outside our span's context, would be a second root trace for every call, and a
viewer that adds up the tokens of every model-call span would count each call twice. So the
client that `AnthropicModel` creates has the SDK's spans off, unless
``MICROAGENTS_ANTHROPIC_SPANS`` asks for them (for the HTTP detail: URL, status, resends).
Then the SDK reads its own ``ANTHROPIC_OPEN_TELEMETRY_*`` variables, and `TracedModel` makes our
``chat`` span the current context for the call, so that the SDK's span is its child.

This module sits below tracing (the model back-end reads it), so it imports nothing of ours.
"""

from __future__ import annotations

import os
from typing import Final, Literal

SDK_SPANS_ENV: Final = "MICROAGENTS_ANTHROPIC_SPANS"


def sdk_spans_enabled() -> bool:
    """Whether ``MICROAGENTS_ANTHROPIC_SPANS`` turns the SDK's own spans on."""
    return os.environ.get(SDK_SPANS_ENV, "").strip().lower() in ("on", "true", "1", "yes")


def sdk_open_telemetry() -> Literal[False] | None:
    """The SDK client's ``open_telemetry`` option: off, or (None) whatever the SDK's own
    environment variables say."""
    return None if sdk_spans_enabled() else False
