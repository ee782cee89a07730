"""Summarising documents longer than the context: token counting in the model layer, the
chunk → map → hierarchical reduce workflow, and the longest sample through the real SDK
against the fake API (calls within the context, one map call per chunk, the reduce depth the
token counts imply, a rejected merge redone one rung up)."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import anyio
import pytest

import microagents as ma
from cli_runner import run_cli
from microagents.graph._text import chunk_text, estimate_tokens, pack_texts
from microagents.models import (
    AnthropicModel,
    Message,
    ModelRequest,
    SimulatedModel,
    count_tokens,
    estimate_request_tokens,
)
from microagents.testing import FakeAnthropicServer, ServerRateLimits

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = ROOT / "examples" / "documents"
WORKFLOW = ROOT / "workflows" / "summarize_document.yaml"
LONGEST = "nordvik_minutes_2025"
HAIKU, SONNET = "claude-haiku-4-5", "claude-sonnet-4-6"
HAIKU_CONTEXT = 200_000
"""Claude Haiku 4.5's context window, in tokens."""
CHUNK_TOKENS, OVERLAP, PACK_TOKENS = 6000, 150, 6000
"""As `workflows/summarize_document.yaml` sets them."""


def load_example(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


FAKE_API = load_example(ROOT / "examples" / "summarize_fake_api.py")


@pytest.fixture
def fake_anthropic() -> Iterator[FakeAnthropicServer]:
    with FakeAnthropicServer(rate_limits=ServerRateLimits(10**9, 10**12, 10**12)) as server:
        yield server


def ask(text: str, model: str = HAIKU) -> ModelRequest:
    return ModelRequest(model=model, messages=(Message.user(text),), system="Summarise.")


# -- count_tokens ------------------------------------------------------------------------------


def test_count_tokens_asks_the_api_through_the_sdk(fake_anthropic: FakeAnthropicServer) -> None:
    document = (DOCUMENTS / f"{LONGEST}.txt").read_text("utf-8")

    async def counted() -> int:
        async with AnthropicModel(api_key="k", base_url=fake_anthropic.base_url) as model:
            # Through a layer, as an engine's stack would be.
            return await count_tokens(ma.models.RetryingModel(model), ask(document))

    tokens = anyio.run(counted)
    (call,) = fake_anthropic.requests
    assert call.path == "/v1/messages/count_tokens"
    assert "max_tokens" not in call.body
    assert tokens == call.response["input_tokens"]  # type: ignore[index]
    assert tokens == math.ceil(len(document) / 4) + math.ceil(len("Summarise.") / 4)
    assert tokens > 100_000  # the longest sample is past one comfortable Haiku call
    assert fake_anthropic.paid_calls == 0  # counting is not a message


def test_count_tokens_estimates_offline_and_on_the_simulated_backend(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    request = ask("x" * 7000)
    estimate = estimate_request_tokens(request)
    assert estimate == estimate_tokens("x" * 7000) + estimate_tokens("Summarise.") == 2003
    assert anyio.run(count_tokens, AnthropicModel(), request) == estimate  # no key: offline
    simulated = SimulatedModel()
    assert isinstance(simulated, ma.models.TokenCountingModel)
    assert anyio.run(count_tokens, simulated, request) == (7000 + len("Summarise.")) // 4


# -- the samples -------------------------------------------------------------------------------


def test_the_documents_are_long_have_key_points_and_are_regenerated_by_their_script(
    tmp_path: Path,
) -> None:
    make = load_example(DOCUMENTS / "make_documents.py")
    make.main(tmp_path)
    names = sorted(p.stem for p in DOCUMENTS.glob("*.txt"))
    assert len(names) >= 2
    for name in names:
        for suffix in (".txt", ".keypoints.json"):
            assert (tmp_path / f"{name}{suffix}").read_bytes() == (
                DOCUMENTS / f"{name}{suffix}"
            ).read_bytes()
        text = (DOCUMENTS / f"{name}.txt").read_text("utf-8")
        points = json.loads((DOCUMENTS / f"{name}.keypoints.json").read_text("utf-8"))
        assert len(points) >= 10
        assert all(point["text"] in text for point in points)
    longest = max(len((DOCUMENTS / f"{n}.txt").read_text("utf-8")) for n in names)
    assert longest / 4 > 100_000  # tokens, as the API (and the fake) count them


# -- the workflows -----------------------------------------------------------------------------


def test_the_workflows_validate_and_render(capsys: pytest.CaptureFixture[str]) -> None:
    paths = [str(ROOT / "workflows" / f"{n}.yaml") for n in
             ("summarize_document", "reduce_summaries", "merge_checked")]  # fmt: skip
    code, out, err = run_cli(["validate", *paths], capsys)
    assert code == 0, out + err
    assert "3 valid, 0 invalid" in out
    code, out, _ = run_cli(["graph", str(WORKFLOW)], capsys)
    assert code == 0
    assert 'reduce -->|"nodes.reduce.output.summaries | length #gt; 1 · max 6"| reduce' in out
    assert 'chunk ==>|"for each item · 8 at a time"| summarize' in out


def test_a_dry_run_summarises_the_short_sample(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MICROAGENTS_SIMULATED_LATENCY_SCALE", "0")
    monkeypatch.setenv("MICROAGENTS_HOME", str(tmp_path / "home"))
    document = (DOCUMENTS / "brightwell_board_2025.txt").read_text("utf-8")
    items = tmp_path / "doc.jsonl"
    items.write_text(json.dumps({"id": "brightwell", "document": document}) + "\n", "utf-8")
    out = tmp_path / "out.jsonl"
    code, _, err = run_cli(
        ["run", str(WORKFLOW), "--backend", "simulate", "--input-file", str(items),
         "--out", str(out)],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    assert "SIMULATED summarize_document: 1 ok, 0 failed" in err
    (result,) = map(json.loads, out.read_text().splitlines())
    chunks = chunk_text(document, CHUNK_TOKENS, OVERLAP)
    assert result["output"]["chunks"] == len(chunks) > 1
    assert result["output"]["levels"] >= 1
    assert result["output"]["summary"].startswith("- ")


# -- the longest sample against the fake API ---------------------------------------------------


def kind(call: object) -> str:
    text = call.messages_text  # type: ignore[attr-defined]
    return "map" if "<chunk" in text else "check" if "<sources>" in text else "merge"


def test_the_longest_sample_against_the_fake_api(fake_anthropic: FakeAnthropicServer) -> None:
    fake_anthropic.on(FAKE_API.answer)
    document = (DOCUMENTS / f"{LONGEST}.txt").read_text("utf-8")
    keypoints = json.loads((DOCUMENTS / f"{LONGEST}.keypoints.json").read_text("utf-8"))
    workflow = ma.Project(ROOT).load_workflow(WORKFLOW)

    async def summarise() -> ma.RunResult:
        async with AnthropicModel(api_key="k", base_url=fake_anthropic.base_url) as model:
            return await ma.Engine(model).run(workflow, {"document": document})

    result = anyio.run(summarise)
    assert result.ok, result.error
    calls = [r for r in fake_anthropic.requests if r.path == "/v1/messages"]
    assert all(r.succeeded for r in calls)

    # No call exceeds the model's context: input (as the API counts it) plus the answer's room.
    # The document itself would not fit one comfortable call; no call comes near it.
    sizes = [
        sum(r.response["usage"][k] for k in  # type: ignore[index]
            ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"))
        for r in calls
    ]  # fmt: skip
    whole = math.ceil(len(document) / 4)
    assert whole > 100_000
    assert all(
        size + r.body["max_tokens"] <= HAIKU_CONTEXT for size, r in zip(sizes, calls, strict=True)
    )
    assert max(sizes) < CHUNK_TOKENS + 1000 < whole / 10

    # One map call per chunk.
    chunks = chunk_text(document, CHUNK_TOKENS, OVERLAP)
    maps = [r for r in calls if kind(r) == "map"]
    assert len(maps) == len(chunks) == result.output["chunks"] == 23
    assert all(r.model == HAIKU for r in maps)

    # The reduce depth is what the token counts imply: each level packs its summaries into
    # groups of PACK_TOKENS (one merge each), until one group is left.
    levels = [run for run in result.nodes if run.node == "reduce"]
    mapped = sorted((r for r in result.nodes if r.node == "summarize"), key=lambda r: r.item_index)
    summaries = [run.output.summary for run in mapped]
    for level in levels:
        groups = pack_texts(summaries, PACK_TOKENS)
        assert level.output["groups"] == len(groups)
        assert level.output["tokens_in"] == sum(estimate_tokens(s) for s in summaries)
        summaries = level.output["summaries"]
        assert len(summaries) == len(groups)
    assert len(summaries) == 1
    assert levels[0].output["tokens_in"] > PACK_TOKENS  # the chunk summaries need 2+ calls
    assert levels[-1].output["tokens_in"] <= PACK_TOKENS  # the last level is one call
    assert result.output["levels"] == len(levels) == 2
    merges = [r for r in calls if kind(r) == "merge"]
    first_tries = [r for r in merges if "<feedback>" not in r.messages_text]
    assert len(first_tries) == sum(level.output["groups"] for level in levels) == 3

    # A merge that changed K-05's figure was rejected and redone one rung up, on Sonnet.
    redone = [r for r in merges if "<feedback>" in r.messages_text]
    assert redone
    assert all(r.model == SONNET and "RESOLVED (K-05)" in r.messages_text for r in redone)
    assert {(e.node, e.trigger, e.from_tier, e.to_tier) for e in result.escalations} == {
        ("reduce", "rejected", "haiku", "sonnet")
    }

    # Every reference key point is in the summary, word for word.
    summary = result.output["summary"]
    assert all(point["text"] in summary for point in keypoints)


def test_the_longest_sample_in_batch_mode_maps_every_chunk_in_one_round(tmp_path: Path) -> None:
    from microagents.runtime import SQLiteJournal
    from microagents.runtime._batch import run_batch
    from microagents.runtime._batch_api import BatchApiModel
    from microagents.runtime._rounds import BatchApiOptions
    from microagents.testing import BatchSettings

    document = (DOCUMENTS / f"{LONGEST}.txt").read_text("utf-8")
    (tmp_path / "items.jsonl").write_text(json.dumps({"document": document}) + "\n")
    workflow = ma.Project(ROOT).load_workflow(WORKFLOW)
    options = BatchApiOptions(poll_interval=0.02, max_poll_interval=0.05)

    with FakeAnthropicServer(batches=BatchSettings(processing_seconds=0.02)) as server:
        server.on(FAKE_API.answer)

        async def summarise() -> ma.results.BatchSummary:
            backend = AnthropicModel(api_key="k", base_url=server.base_url)
            journal = SQLiteJournal(tmp_path / "journal.sqlite3")
            async with ma.Engine(BatchApiModel(backend), journal=journal) as engine:
                return await run_batch(
                    engine, workflow, tmp_path / "items.jsonl", tmp_path / "out.jsonl",
                    batch_api=options,
                )  # fmt: skip

        summary = anyio.run(summarise)
        sizes = [len(batch.results) for batch in server.batches]

    (line,) = [json.loads(text) for text in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert line["status"] == "ok", line["error"]
    keypoints = json.loads((DOCUMENTS / f"{LONGEST}.keypoints.json").read_text("utf-8"))
    assert all(point["text"] in line["output"]["summary"] for point in keypoints)
    # The 23 chunks of the map (each a branch that waits) go in the first round together;
    # the merges (in a sub-workflow, in a map of their own) follow round by round.
    assert sizes[0] == 23
    assert sum(sizes) == 33  # the calls of the same run on the standard API
    assert summary.batch_api is not None
    assert summary.batch_api.rounds == len(sizes)
