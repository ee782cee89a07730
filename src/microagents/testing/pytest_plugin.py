"""The `fake_anthropic` pytest fixture; the only module of microagents that imports pytest.

Register it with ``pytest_plugins = ["microagents.testing.pytest_plugin"]`` in a root
``conftest.py`` (it is not auto-loaded: tests that do not ask for it pay nothing).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ._fake_server import FakeAnthropicServer


@pytest.fixture
def fake_anthropic() -> Iterator[FakeAnthropicServer]:
    """A running `FakeAnthropicServer`, stopped after the test.

    ```python
    def test_answers(fake_anthropic):
        fake_anthropic.on(Reply.text("hi"))
        client = anthropic.Anthropic(api_key="test-key", base_url=fake_anthropic.base_url)
    ```
    """
    with FakeAnthropicServer() as server:
        yield server
