"""`python -m bench [--quick]`: every benchmark's table, then one `RATIOS {...}` line.

Runs, in order: overhead (µs per step, sequential), concurrency (ideal ÷ actual at 200 in
flight), scale and memory (a big JSONL batch with checkpoints), end to end over HTTP (the real
SDK against the loopback fake server), import time, and what the model layer's choices cost
(escalation against all-Sonnet, prompt caching against none). Each figure is set against a
baseline measured in this same run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from typing import Any

from . import concurrency, http_e2e, import_time, model_costs, overhead, scale


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="fewer runs, for CI-sized machines (< 3 minutes)"
    )
    quick = parser.parse_args().quick
    started = time.perf_counter()
    try:
        from importlib.metadata import version

        langgraph = version("langgraph")
    except Exception:
        langgraph = "not installed"
    print(
        f"# microagents benchmarks ({'quick' if quick else 'full'}): Python "
        f"{platform.python_version()}, {os.cpu_count()} CPUs, {platform.system()}, "
        f"LangGraph {langgraph}"
    )
    ratios: dict[str, Any] = {"mode": "quick" if quick else "full"}
    ratios.update(overhead.run(quick))
    ratios.update(concurrency.run(quick))
    ratios.update(scale.run(quick))
    ratios.update(http_e2e.run(quick))
    ratios.update(import_time.run(quick))
    ratios.update(model_costs.run(quick))
    print(f"\n(total {time.perf_counter() - started:.0f} s)")
    sys.stdout.flush()
    print("RATIOS " + json.dumps(ratios))


if __name__ == "__main__":
    main()
