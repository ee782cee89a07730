"""Test helpers that ship with microagents, for our tests and yours.

- `FakeAnthropicServer`: a real HTTP server on 127.0.0.1 that speaks the Anthropic Messages
  API (JSON and SSE, tool use, usage, prompt caching, rate-limit headers, error bodies) and is
  scripted with `Reply` and `Fault`, and its Message Batches API (processing time, shares
  of errored, expired and canceled results and a processing-queue limit set by
  `BatchSettings`; faults on its endpoints with `fail_batches`). Point the official SDK at it
  with ``base_url``.
- `FakeModel`: an in-process `Model` for tests above the model layer.
- `FakeClock`: a clock whose sleeps are instant, for rate-limit tests.
- `replay_cases` and `assert_replay`: a folder of recorded runs (`microagents runs export`)
  as parametrised pytest cases, each replayed offline and judged by a syrupy snapshot.

The pytest fixture ``fake_anthropic`` comes with
``pytest_plugins = ["microagents.testing.pytest_plugin"]`` in your ``conftest.py``.
"""

from ._fake_batches import BatchSettings, RecordedBatch
from ._fake_model import FakeClock, FakeModel
from ._fake_script import Fault, ReceivedRequest, RecordedRequest, Reply
from ._fake_server import FakeAnthropicServer
from ._fake_wire import ServerRateLimits, estimate_tokens
from ._replay_cases import assert_replay, replay_cases, replay_outcome

__all__ = [
    "BatchSettings",
    "FakeAnthropicServer",
    "FakeClock",
    "FakeModel",
    "Fault",
    "ReceivedRequest",
    "RecordedBatch",
    "RecordedRequest",
    "Reply",
    "ServerRateLimits",
    "assert_replay",
    "estimate_tokens",
    "replay_cases",
    "replay_outcome",
]
