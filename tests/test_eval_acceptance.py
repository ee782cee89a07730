"""`microagents eval` through the real SDK against the loopback fake server, scripted with
answers whose correctness is known: accuracy per node, the confusion matrix, failing cases,
comparisons with paired-bootstrap intervals, and the tier sweep's recommendation."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cli_runner import run_cli as run
from microagents.models import TierTable
from microagents.testing import FakeAnthropicServer, ReceivedRequest, Reply, ServerRateLimits

CLASSIFIER = """\
name: classifier
version: {version}
description: Sort a message into billing or other.
model: haiku
escalation: {{ladder: [haiku, sonnet], on: [invalid_output]}}
system: "You classify messages ({version})."
prompt: "Classify: {{{{ text }}}}"
input: {{type: object, properties: {{text: {{type: string}}}}, required: [text]}}
output:
  type: object
  properties: {{category: {{type: string, enum: [billing, other]}}}}
  required: [category]
"""
TAGGER = """\
name: tagger
version: 1.0.0
description: Tag a message.
model: haiku
escalation: {ladder: [haiku, sonnet], on: [invalid_output]}
system: "You tag messages."
prompt: "Tag: {{ text }}"
input: {type: object, properties: {text: {type: string}}, required: [text]}
output: {type: object, properties: {tag: {type: string}}, required: [tag]}
"""
WORKFLOW = """\
name: sorting
version: 1.0.0
description: Route a message and tag it.
input: {type: object, properties: {text: {type: string}}, required: [text]}
entry: route
nodes:
  route: {agent: classifier@^1, input: {text: "{{ input.text }}"}}
  tag: {agent: tagger@^1, input: {text: "{{ input.text }}"}}
  note: {agent: tagger@^1, input: {text: "{{ input.text }}"}}
edges:
  - {from: route, to: tag}
  - {from: route, switch: category, cases: {billing: note}}
output:
  category: "{{ nodes.route.output.category }}"
  tag: "{{ nodes.tag.output.tag }}"
  note: "{{ nodes.note.output.tag }}"
"""
CASES = 40
WRONG_ON_NEW = {3, 7, 11, 15, 19, 23, 27, 31, 35, 39, 2, 14}  # where classifier 1.1.0 errs
TIERS = TierTable.load()
HAIKU, SONNET = TIERS.resolve("haiku").model, TIERS.resolve("sonnet").model


def truth(n: int) -> str:
    return "billing" if n % 3 else "other"


def flip(category: str) -> str:
    return "other" if category == "billing" else "billing"


def case_number(request: ReceivedRequest) -> int:
    return int(request.last_user_text.split("CASE-")[1].split()[0])


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAnthropicServer]:
    (tmp_path / "agents").mkdir()
    (tmp_path / "agents" / "classifier.yaml").write_text(CLASSIFIER.format(version="1.1.0"))
    (tmp_path / "agents" / "classifier_old.yaml").write_text(CLASSIFIER.format(version="1.0.0"))
    (tmp_path / "agents" / "tagger.yaml").write_text(TAGGER)
    (tmp_path / "sorting.yaml").write_text(WORKFLOW)
    (tmp_path / "microagents.toml").write_text(
        "".join(
            f"[tiers.{t}]\nrpm = 1000000\ninput_tpm = 10000000000\n" for t in ("haiku", "sonnet")
        )
    )
    lines = []
    for n in range(1, CASES + 1):
        nodes: dict[str, Any] = {"route": {"category": truth(n)}, "tag": {"tag": f"tag-{n}"}}
        expected = {"output": {"category": truth(n)}, "nodes": nodes}
        lines.append({"id": f"C{n}", "input": {"text": f"CASE-{n} please"}, "expected": expected})
    (tmp_path / "cases.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    monkeypatch.chdir(tmp_path)
    with FakeAnthropicServer(rate_limits=ServerRateLimits(10**7, 10**10, 10**10)) as server:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
        monkeypatch.setenv("MICROAGENTS_HOME", str(tmp_path / "home"))
        yield server


def script(server: FakeAnthropicServer, classifier: Callable[[ReceivedRequest], str]) -> None:
    server.on(
        lambda r: Reply.structured({"category": classifier(r)}),
        system_contains="You classify",
    )
    server.on(lambda r: Reply.structured({"tag": f"tag-{case_number(r)}"}), system_contains="tag")


def by_version(request: ReceivedRequest) -> str:
    n = case_number(request)
    wrong = "(1.1.0)" in request.system_text and n in WRONG_ON_NEW
    return flip(truth(n)) if wrong else truth(n)


def test_eval_reports_accuracy_confusion_and_failing_cases(
    project: FakeAnthropicServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script(project, by_version)
    code, _, err = run(
        ["eval", "sorting.yaml", "--dataset", "cases.jsonl", "--json", "report.json"], capsys
    )
    assert code == 0, err
    report = json.loads((tmp_path / "report.json").read_text())

    # Computed independently of the report: what the script got wrong.
    route_right = [n for n in range(1, CASES + 1) if n not in WRONG_ON_NEW]
    assert report["nodes"]["route"]["accuracy"] == round(len(route_right) / CASES, 4)
    assert report["overall"]["output_accuracy"] == round(len(route_right) / CASES, 4)
    assert report["nodes"]["tag"]["accuracy"] == 1
    # `note` runs only where the route said billing.
    said_billing = [
        n for n in range(1, CASES + 1) if (truth(n) == "billing") != (n in WRONG_ON_NEW)
    ]
    assert report["nodes"]["note"]["runs"] == len(said_billing)
    assert report["nodes"]["route"]["escalation_rate"] == 0
    assert report["nodes"]["route"]["cost_usd"] > 0

    labels = report["confusion"]["route"]["labels"]
    assert labels == ["billing", "other"]
    expected_matrix = [[0, 0], [0, 0]]
    for n in range(1, CASES + 1):
        actual = flip(truth(n)) if n in WRONG_ON_NEW else truth(n)
        expected_matrix[labels.index(truth(n))][labels.index(actual)] += 1
    assert report["confusion"]["route"]["matrix"] == expected_matrix

    failing = {case["case"]: case for case in report["failing"]}
    assert set(failing) == {f"C{n}" for n in WRONG_ON_NEW}
    assert all(len(case["trace_id"]) == 32 for case in failing.values())
    assert "C3" in err
    assert failing["C3"]["trace_id"] in err

    code, out, _ = run(["eval", "--list"], capsys)
    assert report["eval_id"] in out


def test_compare_two_agent_versions_and_two_identical_variants(
    project: FakeAnthropicServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script(project, by_version)
    code, _, err = run(
        ["eval", "sorting.yaml", "--dataset", "cases.jsonl", "--compare", "classifier@1.0.0",
         "--json", "compared.json"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    delta = json.loads((tmp_path / "compared.json").read_text())["comparison"]["deltas"]["route"]
    assert delta["delta"] == round(len(WRONG_ON_NEW) / CASES, 4)
    assert delta["low"] > 0
    assert delta["significant"]

    code, _, err = run(
        ["eval", "sorting.yaml", "--dataset", "cases.jsonl", "--compare", "sorting.yaml",
         "--json", "same.json"],
        capsys,
    )  # fmt: skip
    same = json.loads((tmp_path / "same.json").read_text())["comparison"]["deltas"]["route"]
    assert same["delta"] == 0
    assert same["low"] <= 0 <= same["high"]
    assert not same["significant"]


def test_sweep_recommends_sonnet_where_haiku_is_wrong_and_haiku_elsewhere(
    project: FakeAnthropicServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def haiku_errs(request: ReceivedRequest) -> str:
        right = truth(case_number(request))
        return right if request.model == SONNET else flip(right)

    script(project, haiku_errs)
    code, _, err = run(
        ["eval", "sorting.yaml", "--dataset", "cases.jsonl", "--sweep-tiers", "--target", "0.95",
         "--json", "sweep.json"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    sweep = json.loads((tmp_path / "sweep.json").read_text())["sweep"]["nodes"]
    assert sweep["route"]["options"]["haiku"]["accuracy"] == 0
    assert sweep["route"]["options"]["sonnet"]["accuracy"] == 1
    assert sweep["route"]["recommended"] == "sonnet"
    assert sweep["tag"]["recommended"] == "haiku"
    assert "route: sonnet" in err
    assert "tag: haiku" in err
