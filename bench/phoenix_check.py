"""What a real trace viewer shows of our runs: Arize Phoenix, local, on loopback only.

Phoenix pins its own versions of OpenTelemetry and much else, so it goes in a virtual
environment of its own; this script (run with the project's) starts it from there. `make
viewer-check` does all of it; by hand:

    python3 -m venv /tmp/phoenix-venv
    /tmp/phoenix-venv/bin/pip install 'arize-phoenix==20.26.1'
    .venv/bin/python -m bench.phoenix_check --phoenix-python /tmp/phoenix-venv/bin/python

It starts Phoenix (its web server and OTLP/HTTP receiver on 127.0.0.1, its gRPC receiver moved
from every interface to 127.0.0.1, no telemetry, no external resources, its database in a
temporary folder) and the loopback fake of the Anthropic API (no key, no network). Then it runs
`microagents run` as a user would, on the real Anthropic back-end pointed at the fake, with
OTLP pointed at Phoenix and content capture on:

- support triage on one billing ticket: the router is unsure on Haiku, so it climbs to Sonnet;
- text-to-SQL on one question: the checker rejects the first query, so the writer runs again,
  one rung up.

And it asks Phoenix, through its REST and GraphQL APIs, whether:

- each run is exactly one trace, in a project named after its workflow, with no span that
  is not ours (the SDK's own spans are off);
- the trace's tokens and cost equal what `microagents trace show` says;
- the model-call spans have the system prompt, the user prompt and the tool call in their
  input and output messages; the run, agent and tool spans have an input and an output;
- the run span is a CHAIN, and the hops that climbed a tier say so in their names.

It prints what it found and exits 1 when a check fails. `--screenshots DIR` also saves the
project's trace list and a trace's tree as Phoenix's web UI draws them, with headless Chromium
(`apt-get install chromium`). Not part of `python -m bench` or the test suite: it needs Phoenix
(~1 GB installed) and takes about a minute.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from microagents.testing import FakeAnthropicServer, ReceivedRequest, Reply, ServerRateLimits

ROOT = Path(__file__).resolve().parent.parent
CLI = Path(sys.executable).parent / "microagents"
TICKET = "Hi, I was charged twice for order #A-20931: two debits of $49.99. Please refund one."
SQL_QUESTION = json.loads((ROOT / "examples" / "sql_questions.jsonl").read_text().splitlines()[0])
# Phoenix's gRPC receiver listens on every interface ([::]) with no setting to change it; this
# launcher moves it to loopback before Phoenix starts.
LAUNCHER = """
import sys
import grpc.aio

_server = grpc.aio.server


def loopback_server(*args, **kwargs):
    server = _server(*args, **kwargs)
    add = server.add_insecure_port
    server.add_insecure_port = lambda address: add(address.replace("[::]", "127.0.0.1"))
    return server


grpc.aio.server = loopback_server
from phoenix.server.main import main

sys.argv = ["phoenix", "serve"]
main()
"""


@dataclass
class Report:
    failures: list[str] = field(default_factory=list)

    def check(self, ok: bool, what: str) -> None:
        print(f"  {'ok  ' if ok else 'FAIL'} {what}")
        if not ok:
            self.failures.append(what)


# -- the fake Anthropic API, scripted like the models would answer ------------------------


def answer(output: dict[str, Any]) -> Callable[[ReceivedRequest], Reply]:
    """A structured answer as the model would give it: JSON text when the request asks for
    native structured output, else a call of the answer tool (forced or among others)."""

    def reply(request: ReceivedRequest) -> Reply:
        if request.output_schema is not None or request.forced_tool_name is not None:
            return Reply.structured(output)
        return Reply.tool_call("final_answer", output)

    return reply


def script(server: FakeAnthropicServer) -> None:
    def route(request: ReceivedRequest) -> Reply:
        unsure = "haiku" in request.model  # low confidence on Haiku: the router climbs
        return answer(
            {
                "category": "billing",
                "confidence": 0.45 if unsure else 0.95,
                "reason": "A duplicate charge on an order, and a refund asked for.",
            }
        )(request)

    server.on(route, system_contains="routing step")
    record = {"order_id": "A-20931", "amount": 49.99, "currency": "USD", "reason": "duplicate"}
    server.on(
        answer({"record": record, "missing": [], "confidence": 0.92}),
        system_contains="data-extraction step",
    )
    server.on(
        answer({"valid": True, "reasons": [], "confidence": 0.9}),
        system_contains="strict reviewer in a data pipeline",
    )
    server.on(
        answer({"sql": SQL_QUESTION["sql"], "explanation": "orders in March", "confidence": 0.9}),
        system_contains="SQL-writing step",
    )
    reviews: list[bool] = []

    def review(request: ReceivedRequest) -> Reply:
        reviews.append(True)
        if len(reviews) == 1:  # the first query is sent back: the writer runs again
            reasons = ["Check that the date range covers the whole of March."]
            return answer({"valid": False, "reasons": reasons, "confidence": 0.7})(request)
        return answer({"valid": True, "reasons": [], "confidence": 0.95})(request)

    server.on(review, system_contains="strict reviewer of SQL")


# -- Phoenix ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def phoenix(python: str, workdir: Path) -> Iterator[str]:
    port, grpc_port = free_port(), free_port()
    env = {
        **os.environ,
        "PHOENIX_HOST": "127.0.0.1",
        "PHOENIX_PORT": str(port),
        "PHOENIX_GRPC_PORT": str(grpc_port),
        "PHOENIX_WORKING_DIR": str(workdir),
        "PHOENIX_TELEMETRY_ENABLED": "false",
        "PHOENIX_ALLOW_EXTERNAL_RESOURCES": "false",
    }
    log = (workdir / "phoenix.log").open("w")
    process = subprocess.Popen([python, "-c", LAUNCHER], env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=2):
                    break
            except (urllib.error.URLError, ConnectionError):
                if process.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    tail = (workdir / "phoenix.log").read_text().splitlines()[-30:]
                    raise SystemExit("Phoenix did not start:\n" + "\n".join(tail)) from None
                time.sleep(1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.load(response)


def graphql(base: str, query: str, **variables: Any) -> Any:
    body = json.dumps({"query": query, "variables": variables}).encode()
    request = urllib.request.Request(f"{base}/graphql", body, {"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.load(response)
    if answer.get("errors"):
        raise RuntimeError(f"Phoenix GraphQL: {answer['errors']}")
    return answer["data"]


PROJECT_QUERY = """
query ($name: String!, $traceId: ID!) {
  getProjectByName(name: $name) {
    id
    traceCount
    costSummary { total { cost tokens } }
    trace(traceId: $traceId) {
      id
      numSpans
      costSummary { total { cost tokens } prompt { tokens } completion { tokens } }
    }
  }
}
"""


# -- a run, as a user makes it --------------------------------------------------------------


@dataclass
class Run:
    workflow: str
    run: dict[str, Any]
    spans: list[dict[str, Any]]


def run_cli(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(
        [str(CLI), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        raise SystemExit(f"microagents {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


def run_workflow(workflow: str, args: list[str], env: dict[str, str]) -> Run:
    result = json.loads(run_cli(["run", f"workflows/{workflow}.yaml", *args], env))
    shown = json.loads(run_cli(["trace", "show", result["run_id"], "--json"], env))
    return Run(workflow, shown["run"], shown["spans"])


def flat(attributes: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Phoenix's nested attributes as dotted keys (lists by index)."""
    out: dict[str, Any] = {}
    for key, value in attributes.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat(value, f"{name}."))
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            for index, item in enumerate(value):
                out.update(flat(item, f"{name}.{index}."))
        else:
            out[name] = value
    return out


def wait_for(check: Callable[[], bool], seconds: float = 60) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(1)
    return True


def check_run(base: str, run: Run, report: Report) -> dict[str, Any]:
    project, trace_id = run.workflow, run.run["trace_id"]
    print(f"\n{project}: run {run.run['run_id']}, trace {trace_id}, {len(run.spans)} spans")
    spans_url = f"{base}/v1/projects/{quote(project)}/spans?limit=1000"

    def phoenix_spans() -> list[dict[str, Any]]:
        try:
            found: list[dict[str, Any]] = get(spans_url)["data"]
        except urllib.error.HTTPError:  # the project appears with its first span
            return []
        return found

    arrived = wait_for(lambda: len(phoenix_spans()) >= len(run.spans))
    report.check(arrived, f"Phoenix has the run's {len(run.spans)} spans in project {project!r}")
    spans = phoenix_spans()
    data = graphql(base, PROJECT_QUERY, name=project, traceId=trace_id)["getProjectByName"]
    traces = {span["context"]["trace_id"] for span in spans}
    report.check(
        data["traceCount"] == 1 and traces == {trace_id},
        f"one trace for the run (traces in the project: {data['traceCount']})",
    )
    ours = {span["span_id"] for span in run.spans}
    report.check(
        {span["context"]["span_id"] for span in spans} == ours,
        "every span in Phoenix is one of ours (no span of the SDK's)",
    )
    summary = data["trace"]["costSummary"]
    tokens_in, tokens_out = summary["prompt"]["tokens"], summary["completion"]["tokens"]
    report.check(
        (tokens_in, tokens_out) == (run.run["input_tokens"], run.run["output_tokens"]),
        f"tokens: Phoenix {tokens_in:,.0f} in / {tokens_out:,.0f} out, "
        f"trace show {run.run['input_tokens']:,} / {run.run['output_tokens']:,}",
    )
    cost = summary["total"]["cost"] or 0.0
    report.check(
        abs(cost - run.run["cost_usd"]) < 1e-6,
        f"cost: Phoenix ${cost:.6f}, trace show ${run.run['cost_usd']:.6f}",
    )

    by_kind: dict[str, list[dict[str, Any]]] = {}
    for span in spans:
        by_kind.setdefault(span["span_kind"], []).append(span)
    root = next(span for span in spans if not span.get("parent_id"))
    report.check(root["span_kind"] == "CHAIN", f"the run span {root['name']!r} is a CHAIN")
    report.check(all(span["status_code"] == "OK" for span in spans), "every span's status is OK")
    llm = [flat(span["attributes"]) for span in by_kind.get("LLM", [])]
    report.check(
        bool(llm)
        and all(a.get("llm.input_messages.0.message.role") == "system" for a in llm)
        and all(a.get("llm.input_messages.1.message.role") == "user" for a in llm)
        and all(a.get("llm.input_messages.1.message.content") for a in llm),
        f"the {len(llm)} LLM spans show the system prompt and the user prompt",
    )
    calls = [
        a.get("llm.output_messages.0.message.tool_calls.0.tool_call.function.name") for a in llm
    ]
    texts = [str(a.get("llm.output_messages.0.message.content", "")) for a in llm]
    report.check(
        bool(llm)
        and all(
            c == "final_answer" or t.startswith("{") for c, t in zip(calls, texts, strict=True)
        ),
        "the LLM spans show the answer in their output: the answer tool's call (an extractor's) "
        "or the native JSON (the others')",
    )
    for kind in ("CHAIN", "AGENT", "TOOL"):
        hops = [flat(span["attributes"]) for span in by_kind.get(kind, [])]
        if not hops:
            continue
        report.check(
            all(a.get("input.value") and a.get("output.value") for a in hops),
            f"the {len(hops)} {kind} spans have an input and an output",
        )
    climbed = [span["name"] for span in spans if "⤴" in span["name"]]
    report.check(bool(climbed), f"escalated hops in the list: {climbed}")
    print("  span names in Phoenix:", sorted(span["name"] for span in spans))
    return {
        "project_id": data["id"],
        "llm_span": by_kind["LLM"][-1]["id"] if by_kind.get("LLM") else None,
        "agent_span": by_kind["AGENT"][-1]["id"] if by_kind.get("AGENT") else None,
    }


def screenshots(base: str, found: dict[str, dict[str, Any]], folder: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("no chromium on PATH: no screenshots (apt-get install chromium)")
        return
    folder.mkdir(parents=True, exist_ok=True)
    for workflow, ids in found.items():
        project = ids["project_id"]
        trace_id = ids["trace_id"]
        trace_page = f"{base}/projects/{project}/traces/{trace_id}"
        pages = {
            f"{workflow}-traces": f"{base}/projects/{project}/traces",
            f"{workflow}-llm-span": f"{trace_page}?selectedSpanNodeId={ids['llm_span']}",
            f"{workflow}-agent-span": f"{trace_page}?selectedSpanNodeId={ids['agent_span']}",
        }
        for name, url in pages.items():
            path = folder / f"{name}.png"
            subprocess.run(
                [
                    chromium, "--headless", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--hide-scrollbars",
                    "--window-size=1800,1200", "--virtual-time-budget=15000",
                    f"--screenshot={path}", url,
                ],
                capture_output=True, timeout=120, check=False,
            )  # fmt: skip
            print(f"screenshot: {path}" if path.exists() else f"no screenshot of {url}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.phoenix_check", description=__doc__)
    parser.add_argument(
        "--phoenix-python",
        default=sys.executable,
        help="the Python that has arize-phoenix installed (default: this one)",
    )
    parser.add_argument("--screenshots", type=Path, help="save screenshots of the web UI here")
    parser.add_argument(
        "--keep", action="store_true", help="leave Phoenix running until Enter is pressed"
    )
    options = parser.parse_args()
    report = Report()
    with tempfile.TemporaryDirectory() as temp:
        work = Path(temp)
        (work / "phoenix").mkdir()
        unlimited = ServerRateLimits(10**9, 10**12, 10**12)
        with (
            FakeAnthropicServer(rate_limits=unlimited) as api,
            phoenix(options.phoenix_python, work / "phoenix") as base,
        ):
            script(api)
            env = {
                key: value
                for key, value in os.environ.items()
                if not key.startswith(("OTEL_", "ANTHROPIC_", "MICROAGENTS_"))
            }
            env.update(
                ANTHROPIC_API_KEY="not-a-real-key",
                ANTHROPIC_BASE_URL=api.base_url,
                OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=f"{base}/v1/traces",
                OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT="true",
                MICROAGENTS_HOME=str(work / "home"),
            )
            print(f"Phoenix at {base}; fake Anthropic API at {api.base_url}")
            runs = [
                run_workflow("support_triage", ["--input", json.dumps({"ticket": TICKET})], env),
                run_workflow(
                    "text_to_sql",
                    [
                        "--database",
                        f"sqlite:///{ROOT / 'examples' / 'shop.db'}",
                        "--input",
                        json.dumps({"question": SQL_QUESTION["question"], "tenant_id": 1}),
                    ],
                    env,
                ),
            ]
            found = {}
            for run in runs:
                ids = check_run(base, run, report)
                found[run.workflow] = {**ids, "trace_id": run.run["trace_id"]}
            if options.screenshots:
                screenshots(base, found, options.screenshots)
            if options.keep:
                input(f"Phoenix is at {base}; press Enter to stop it. ")
    print(f"\n{len(report.failures)} check(s) failed" if report.failures else "\nall checks ok")
    sys.exit(1 if report.failures else 0)


if __name__ == "__main__":
    main()
