"""Import time: `import microagents` and `microagents --help` in fresh subprocesses.

Wall time of each command, median of 5, next to a bare interpreter start (`python -c pass`)
and `import langgraph.graph` (when installed) measured in the same run.

    .venv/bin/python -m bench.import_time
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ._workload import LANGGRAPH_MISSING, langgraph_available

REPETITIONS = 5


def wall_ms(command: list[str]) -> float:
    """Median wall milliseconds of `command`, after one untimed run (warm file cache)."""
    subprocess.run(command, check=True, capture_output=True)
    samples = []
    for _ in range(REPETITIONS):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def _cli() -> list[str]:
    beside = Path(sys.executable).with_name("microagents")
    found = str(beside) if beside.exists() else shutil.which("microagents")
    if found is None:
        return [sys.executable, "-c", "from microagents.cli import main; main()", "--help"]
    return [found, "--help"]


def run(quick: bool = False) -> dict[str, Any]:
    """Print the import-time table; return its figures (ms)."""
    python = sys.executable
    commands: list[tuple[str, str, list[str]]] = [
        ("python_startup_ms", "python -c pass (interpreter start)", [python, "-c", "pass"]),
        ("import_microagents_ms", "python -c 'import microagents'",
         [python, "-c", "import microagents"]),
        ("cli_help_ms", "microagents --help", _cli()),
    ]  # fmt: skip
    if langgraph_available():
        commands.append(
            ("import_langgraph_ms", "python -c 'import langgraph.graph'",
             [python, "-c", "import langgraph.graph"])
        )  # fmt: skip
    print(f"\n## import time: wall ms in a fresh subprocess, median of {REPETITIONS}")
    print(f"{'command':48}  {'ms':>8}  {'minus start':>11}")
    figures: dict[str, Any] = {}
    for key, name, command in commands:
        figures[key] = ms = round(wall_ms(command), 1)
        net = ms - figures["python_startup_ms"]
        print(f"{name:48}  {ms:8.1f}  {net:11.1f}")
    if "import_langgraph_ms" not in figures:
        print(LANGGRAPH_MISSING)
    return figures


def main() -> None:
    run()


if __name__ == "__main__":
    main()
