"""End to end over HTTP: the triage workflow through the real `anthropic` SDK against the
project's loopback fake of the Messages API, to show where a call's time goes.

The fake server runs in its own process (so that its CPU does not compete with the client
for this process's GIL) and answers at once. Three contenders, sequential, median of passes:

- microagents with the instant in-process model (the framework alone, as in `overhead`);
- the bare SDK: `AsyncAnthropic.messages.create` with the same three requests, no framework;
- microagents on the Anthropic back-end (SDK, rate limiter, retries) against the fake server.

The verdict: what the SDK and loopback HTTP cost per call, and what share of a call over
HTTP is microagents. Figures come from the fake server on loopback, never the real API.

    .venv/bin/python -m bench.http_e2e [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

import microagents as ma

from ._workload import ANSWERS, STEPS, TICKET, InstantModel, triage_workflow

API_KEY = "sk-bench-not-a-real-key"
PROMPTS = {"router": "Route:", "extractor": "Extract:", "validator": "Check:"}
Body = Callable[[int], Awaitable[None]]


def serve() -> None:
    """Run the fake server until stdin closes (the parent process's end)."""
    from microagents.testing import FakeAnthropicServer, Reply, ServerRateLimits

    # Limits far above what a sequential client reaches (the default reports tier 1's 50 RPM,
    # which the client's limiter would honour): what is measured is cost, not waiting.
    unlimited = ServerRateLimits(10**9, 10**12, 10**12)
    with FakeAnthropicServer(rate_limits=unlimited) as server:
        for agent, prefix in PROMPTS.items():
            server.on(Reply.structured(ANSWERS[agent]), message_contains=prefix)
        print(server.base_url, flush=True)
        sys.stdin.read()


def microagents_runs(model: Any) -> Body:
    workflow = triage_workflow()

    async def go(runs: int) -> None:
        async with ma.Engine(model, tracing=None) as engine:
            for _ in range(runs):
                result = await engine.run(workflow, TICKET)
                assert result.ok, result.error

    return go


def bare_sdk(base_url: str) -> Body:
    import anthropic

    tool = {
        "name": "final_answer",
        "description": "Give the answer.",
        "input_schema": {"type": "object", "properties": {}, "additionalProperties": True},
    }

    async def go(runs: int) -> None:
        async with anthropic.AsyncAnthropic(api_key=API_KEY, base_url=base_url) as client:
            for _ in range(runs):
                for prefix in PROMPTS.values():
                    message = await client.messages.create(
                        model="claude-haiku-4-5",
                        max_tokens=300,
                        messages=[{"role": "user", "content": f"{prefix} I was charged twice"}],
                        tools=[tool],  # type: ignore[list-item]
                        tool_choice={"type": "tool", "name": "final_answer"},
                    )
                    assert message.content[0].type == "tool_use"

    return go


def measure(body: Body, runs: int, repetitions: int) -> tuple[float, float]:
    """Median (wall, this process's CPU) µs per step over `repetitions` timed passes, after
    a warm-up pass. Wall time includes the fake server's own work (in its process); CPU time
    is what the client side costs: the SDK, HTTP and microagents."""
    anyio.run(body, max(10, runs // 10))
    walls, cpus = [], []
    for _ in range(repetitions):
        started, cpu_started = time.perf_counter(), time.process_time()
        anyio.run(body, runs)
        walls.append((time.perf_counter() - started) / runs / STEPS * 1e6)
        cpus.append((time.process_time() - cpu_started) / runs / STEPS * 1e6)
    return statistics.median(walls), statistics.median(cpus)


def run(quick: bool) -> dict[str, Any]:
    """Print the HTTP table; return its ratios."""
    runs, repetitions = (100, 3) if quick else (400, 5)
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.http_e2e", "--serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        base_url = server.stdout.readline().strip()
        no_limits = ma.models.RateLimits(None, None, None)
        tiers = ma.models.TierTable.load().with_tier("haiku", limits=no_limits)
        over_http = ma.models.anthropic_model(api_key=API_KEY, base_url=base_url, tiers=tiers)
        contenders = [
            ("microagents, instant in-process model", microagents_runs(InstantModel()), 10),
            ("bare anthropic SDK over loopback HTTP", bare_sdk(base_url), 1),
            ("microagents over loopback HTTP", microagents_runs(over_http), 1),
        ]
        # The instant model is ~100x faster a step: ten times the runs keeps a pass measurable.
        rows = [(name, measure(body, runs * k, repetitions)) for name, body, k in contenders]
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(timeout=10)
    print(
        f"\n## end to end over HTTP: the loopback fake Anthropic server in its own process, "
        f"answering at once; µs per step (one model call), median of {repetitions}"
    )
    print(f"{'contender':48}  {'wall µs':>8}  {'client CPU µs':>13}")
    for name, (wall, cpu) in rows:
        print(f"{name:48}  {wall:8,.0f}  {cpu:13,.0f}")
    (_, framework), (sdk_wall, sdk), (full_wall, full) = (figures for _, figures in rows)
    print(
        f"client CPU per call: bare SDK {sdk:,.0f} µs, microagents over HTTP {full:,.0f} µs "
        f"({full / sdk:.2f}x); the orchestration itself (the instant-model step) is "
        f"{framework:.0f} µs of it. Wall time per call is mostly the fake server's own work."
    )
    return {
        "http_bare_sdk_cpu_us_per_call": round(sdk),
        "http_microagents_cpu_us_per_step": round(full),
        "http_microagents_vs_bare_sdk_cpu": round(full / sdk, 2),
        "http_bare_sdk_wall_us_per_call": round(sdk_wall),
        "http_microagents_wall_us_per_step": round(full_wall),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs, for CI-sized machines")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve()
        return
    run(args.quick)


if __name__ == "__main__":
    main()
