"""The fake server's Message Batches API, through the official SDK's `messages.batches` client."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from microagents.testing import BatchSettings, FakeAnthropicServer, Reply, estimate_tokens

MODEL = "claude-haiku-4-5"


def request(custom_id: str, text: str = "hello", **params: Any) -> dict[str, Any]:
    body = {"model": MODEL, "max_tokens": 64, "messages": [{"role": "user", "content": text}]}
    return {"custom_id": custom_id, "params": {**body, **params}}


@pytest.fixture
def server() -> Iterator[FakeAnthropicServer]:
    with FakeAnthropicServer(min_cacheable_tokens=0) as running:
        yield running


@pytest.fixture
def client(server: FakeAnthropicServer) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(api_key="k", base_url=server.base_url, max_retries=0) as sdk:
        yield sdk


def test_a_batch_is_answered_like_direct_calls_and_its_results_come_as_jsonl(
    server: FakeAnthropicServer, client: anthropic.Anthropic
) -> None:
    server.on(lambda r: Reply.text(r.last_user_text.upper()))
    created = client.messages.batches.create(
        requests=[request(f"item-{i}", f"text {i}") for i in range(5)]  # type: ignore[misc]
    )
    assert created.id.startswith("msgbatch_")
    assert created.processing_status == "ended"  # processing_seconds=0
    assert created.request_counts.succeeded == 5
    results = {r.custom_id: r.result for r in client.messages.batches.results(created.id)}
    assert set(results) == {f"item-{i}" for i in range(5)}
    answer = results["item-3"]
    assert answer.type == "succeeded"
    assert answer.message.content[0].text == "TEXT 3"  # type: ignore[union-attr]
    assert answer.message.usage.input_tokens == estimate_tokens("text 3")
    assert server.paid_batch_requests == 5
    assert server.paid_calls == 0  # no direct call was made


def test_a_batch_stays_in_progress_until_its_processing_time_is_up(
    server: FakeAnthropicServer, client: anthropic.Anthropic
) -> None:
    server.batch_settings = BatchSettings(processing_seconds=0.3)
    created = client.messages.batches.create(requests=[request("a")])  # type: ignore[list-item]
    assert created.processing_status == "in_progress"
    assert created.request_counts.processing == 1
    assert created.results_url is None
    with pytest.raises(anthropic.AnthropicError, match="results_url"):
        list(client.messages.batches.results(created.id))
    time.sleep(0.35)
    ended = client.messages.batches.retrieve(created.id)
    assert (ended.processing_status, ended.request_counts.succeeded) == ("ended", 1)


def test_shares_of_errored_expired_and_canceled_results_repeat_with_the_seed(
    server: FakeAnthropicServer, client: anthropic.Anthropic
) -> None:
    settings = BatchSettings(errored=0.2, expired=0.2, canceled=0.1, seed=3)
    server.batch_settings = settings
    requests = [request(f"r{i}") for i in range(200)]
    first = client.messages.batches.create(requests=requests)  # type: ignore[arg-type]
    kinds = Counter(r.result.type for r in client.messages.batches.results(first.id))
    assert set(kinds) == {"succeeded", "errored", "expired", "canceled"}
    assert 20 < kinds["errored"] < 60
    assert 20 < kinds["expired"] < 60
    assert first.request_counts.errored == kinds["errored"]
    with FakeAnthropicServer(batches=settings) as again:
        sdk = anthropic.Anthropic(api_key="k", base_url=again.base_url, max_retries=0)
        second = sdk.messages.batches.create(requests=requests)  # type: ignore[arg-type]
        same = {r.custom_id: r.result.type for r in sdk.messages.batches.results(second.id)}
        sdk.close()
    assert same == {r.custom_id: r.result.type for r in client.messages.batches.results(first.id)}
    errored = next(
        r for r in client.messages.batches.results(first.id) if r.result.type == "errored"
    )
    assert errored.result.error.error.type == "api_error"  # type: ignore[union-attr]


def test_cancel_list_and_delete_behave_as_the_api_documents(
    server: FakeAnthropicServer, client: anthropic.Anthropic
) -> None:
    server.batch_settings = BatchSettings(processing_seconds=30)
    slow = client.messages.batches.create(requests=[request("a"), request("b")])  # type: ignore[list-item]
    with pytest.raises(anthropic.BadRequestError, match="cancel it first"):
        client.messages.batches.delete(slow.id)
    cancelled = client.messages.batches.cancel(slow.id)
    assert cancelled.processing_status == "ended"
    assert cancelled.request_counts.canceled == 2
    assert {r.result.type for r in client.messages.batches.results(slow.id)} == {"canceled"}
    server.batch_settings = BatchSettings()
    done = [client.messages.batches.create(requests=[request("c")]) for _ in range(3)]  # type: ignore[list-item]
    listed = [b.id for b in client.messages.batches.list(limit=2)]
    assert listed == [done[2].id, done[1].id, done[0].id, slow.id]  # newest first, paged
    assert client.messages.batches.delete(done[0].id).type == "message_batch_deleted"
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.retrieve(done[0].id)


def test_bad_batches_are_refused_with_the_apis_wording(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError, match="custom_id: String should match"):
        client.messages.batches.create(requests=[request("not valid!")])  # type: ignore[list-item]
    with pytest.raises(anthropic.BadRequestError, match="Duplicate custom_id"):
        client.messages.batches.create(requests=[request("a"), request("a")])  # type: ignore[list-item]
    bad = {"custom_id": "a", "params": {"model": MODEL, "messages": []}}
    with pytest.raises(anthropic.BadRequestError, match=r"requests\.0\.params\.max_tokens"):
        client.messages.batches.create(requests=[bad])  # type: ignore[list-item]


def test_batch_requests_share_the_prompt_cache_and_are_recorded(
    server: FakeAnthropicServer, client: anthropic.Anthropic
) -> None:
    rules = "You label the sentiment of customer reviews. " * 20
    system = [{"type": "text", "text": rules, "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
    client.messages.batches.create(requests=[request("warm", system=system)])  # type: ignore[list-item]
    second = client.messages.batches.create(
        requests=[request(f"x{i}", f"review {i}", system=system) for i in range(3)]  # type: ignore[misc]
    )
    usages = [r.result.message.usage for r in client.messages.batches.results(second.id)]  # type: ignore[union-attr]
    assert {u.cache_read_input_tokens for u in usages} == {estimate_tokens(rules)}
    _, recorded = server.batches
    assert recorded.custom_ids == ("x0", "x1", "x2")
    assert recorded.outcome("x1") == "succeeded"
