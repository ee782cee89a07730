"""Content moderation end to end: the policy as the cached prefix, normalising for the response
cache, the second opinion before a high-severity removal, and the 520 labelled samples through
the real SDK against the fake API."""

from __future__ import annotations

import collections
import importlib.util
import json
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

import microagents as ma
from cli_runner import run_cli
from microagents.graph._text import normalize_text
from microagents.testing import FakeAnthropicServer, ServerRateLimits

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "examples" / "moderation.jsonl"
POSTS = [json.loads(line) for line in SAMPLES.read_text("utf-8").splitlines()]
HAIKU, SONNET, OPUS = "claude-haiku-4-5", "claude-sonnet-4-6", "claude-opus-4-5"
LABELS = {normalize_text(p["text"]): p["label"] for p in POSTS}


def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


FAKE_API = load_example("moderation_fake_api")


def test_normalising_folds_the_variants_the_samples_repeat() -> None:
    assert normalize_text("  Buy\u200b  now!!!!!!\n") == "Buy now!!!"
    assert normalize_text("ｆｒｅｅ\u00a0stuff", casefold=True) == "free stuff"
    assert normalize_text("I'm going to kill my brother") == "I'm going to kill my brother"
    variants = [p for p in POSTS if "duplicate_of" in p]
    by_id = {p["id"]: p for p in POSTS}
    for post in variants:
        assert normalize_text(post["text"]) == normalize_text(by_id[post["duplicate_of"]]["text"])


def test_the_samples_are_many_varied_labelled_and_regenerated_by_their_script(
    tmp_path: Path,
) -> None:
    load_example("make_moderation").main(tmp_path / "again.jsonl")
    assert (tmp_path / "again.jsonl").read_text("utf-8") == SAMPLES.read_text("utf-8")

    assert len(POSTS) >= 500
    moderator = ma.Project().registry.resolve("moderator")
    category_names = set(
        moderator.output_schema["properties"]["categories"]["items"]["properties"]["category"][
            "enum"
        ]
    )
    actions = collections.Counter(p["label"]["action"] for p in POSTS)
    assert set(actions) == {"allow", "review", "remove"}
    assert actions["allow"] > actions["remove"] > actions["review"]
    used = {c["category"] for p in POSTS for c in p["label"]["categories"]}
    assert used <= category_names
    assert len(used) >= 9
    repeats = sum("duplicate_of" in p for p in POSTS)
    assert 0.15 <= repeats / len(POSTS) <= 0.35
    texts = [p["text"] for p in POSTS]
    assert any("Mods, someone keeps DMing me" in t for t in texts)  # abuse quoted in a report
    assert any("us dykes" in t for t in texts)  # a reclaimed slur
    assert any(re.search(r"[àéíóúäöüß¿]", t) for t in texts)  # other languages


def test_the_policy_is_the_cached_prefix_and_passes_haikus_minimum(
    capsys: pytest.CaptureFixture[str],
) -> None:
    moderator = ma.Project().registry.resolve("moderator")
    opening = moderator.prompt_source.split("{{", 1)[0]
    # The fake server counts as the API's minimum is applied: 4 characters a token.
    assert len(opening) / 4 > 4096
    code, out, err = run_cli(["validate", str(ROOT / "agents" / "moderator.yaml")], capsys)
    assert code == 0
    assert "MA243" not in out + err


def test_a_dry_run_moderates_and_queues_reviews(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MICROAGENTS_SIMULATED_LATENCY_SCALE", "0")
    sample = tmp_path / "sample.jsonl"
    sample.write_text("".join(json.dumps(p) + "\n" for p in POSTS[:40]), "utf-8")
    code, _, err = run_cli(
        ["run", str(ROOT / "workflows" / "content_moderation.yaml"), "--backend", "simulate",
         "--input-file", str(sample), "--out", str(tmp_path / "out.jsonl")],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    assert "SIMULATED content_moderation: 40 ok, 0 failed" in err
    results = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert {r["output"]["action"] for r in results} <= {"allow", "review", "remove"}


@pytest.fixture
def fake_anthropic() -> Iterator[FakeAnthropicServer]:
    """The fake API with an account's limits far above the batch, so that nothing throttles."""
    with FakeAnthropicServer(rate_limits=ServerRateLimits(10**9, 10**12, 10**12)) as server:
        yield server


def test_the_520_samples_against_the_fake_api(
    fake_anthropic: FakeAnthropicServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_anthropic.base_url)
    fake_anthropic.on(FAKE_API.answer)
    out = tmp_path / "moderation.results.jsonl"
    code, _, err = run_cli(
        ["run", str(ROOT / "workflows" / "content_moderation.yaml"), "--input-file",
         str(SAMPLES), "--out", str(out), "--cache", "--concurrency", "1"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    results = {r["output"]["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert len(results) == len(POSTS)

    # Every post gets its labelled action.
    for post in POSTS:
        assert results[post["id"]]["output"]["action"] == post["label"]["action"], post

    # The response cache answers every repeat: one Haiku call per distinct normalised post.
    haiku = [r for r in fake_anthropic.requests if r.model == HAIKU]
    distinct = {normalize_text(p["text"]) for p in POSTS}
    assert sorted(FAKE_API.post_of(r) for r in haiku) == sorted(distinct)
    repeats = len(POSTS) - len(distinct)
    hits = int(re.search(r"(\d+) response-cache hits", err).group(1))  # type: ignore[union-attr]
    assert hits >= repeats

    # The policy is read from the prompt cache on at least 90% of calls after each model's first.
    for model in (HAIKU, SONNET):
        calls = [r for r in fake_anthropic.requests if r.model == model]
        read = [r.response["usage"]["cache_read_input_tokens"] > 4000 for r in calls[1:]]
        assert sum(read) / len(read) >= 0.9, model

    # Which posts went to Sonnet, and why: low confidence on hard cases, or a second opinion.
    unsure = {p["id"] for p in POSTS if FAKE_API.unsure(normalize_text(p["text"]))}
    severe = {
        p["id"]
        for p in POSTS
        if p["label"]["action"] == "remove"
        and any(c["severity"] == "high" for c in p["label"]["categories"])
    }
    for post_id, result in results.items():
        triggers = {e["trigger"] for e in result["escalations"]}
        if post_id in unsure:
            assert "low_confidence" in triggers, post_id
        if post_id in severe and post_id not in unsure:
            assert triggers == {"rejected"}, post_id
    assert re.search(r"moderate\s+\d+\s+\d+\s+[\d.]+%\s+low_confidence \d+, rejected \d+", err)
