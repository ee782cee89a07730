"""The HTML eval report opens offline in headless Chromium, with its plots drawn."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import anyio
import pytest
from PIL import Image

import microagents as ma
from microagents.evals import evaluate, load_dataset, render_html

ROOT = Path(__file__).resolve().parent.parent
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         # Any name lookup fails: a page that tried to fetch something could not.
         "--host-resolver-rules=MAP * ~NOTFOUND", "--window-size=1200,2400"]  # fmt: skip


def chromium() -> str:
    found = shutil.which(os.environ.get("CHROMIUM", "chromium"))
    assert found, "Chromium is missing: `make test` installs it (see the Makefile's browser)"
    return found


@pytest.mark.timeout(120)
def test_the_report_renders_its_plots_offline(tmp_path: Path) -> None:
    triage = ma.Project(ROOT).load_workflow(ROOT / "workflows" / "support_triage.yaml")
    cases = (ROOT / "examples" / "datasets" / "support_triage.jsonl").read_text().splitlines()
    (tmp_path / "cases.jsonl").write_text("\n".join(cases[::10]) + "\n")  # every queue
    dataset = load_dataset(tmp_path / "cases.jsonl")

    async def main() -> str:
        instant = ma.models.SimulatedLatency(scale=0)
        async with ma.Engine.for_backend("simulate", triage, latency=instant, tracing=None) as e:
            report = await evaluate(triage, dataset, engine=e)
        return render_html(report)

    page = tmp_path / "report.html"
    page.write_text(anyio.run(main))
    figures = page.read_text().count("<figure class='plot'")
    assert figures == 3  # accuracy against cost, escalation rate, the router's confusion matrix

    base = [chromium(), *FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run(
        [*base, "--virtual-time-budget=3000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=90, check=True,
    )  # fmt: skip
    assert f'data-plots-drawn="{figures}"' in dom.stdout
    assert 'data-resources-loaded="0"' in dom.stdout

    shot = tmp_path / "shot.png"
    subprocess.run(
        [*base, f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=90, check=True
    )
    with Image.open(shot) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None
    assert len(colours) > 50  # plots drawn, not a blank or text-only page
