"""Datasets, matchers and the paired bootstrap, without a model."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from microagents.errors import DatasetError
from microagents.evals import Approx, Exact, OneOf, Regex, SetOf, compare_reports, load_dataset
from microagents.evals._matchers import check

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("line", "where"),
    [
        ('{"input": {"a": 1}}\n{"input": 3}', "cases.jsonl:2: input: Input should be a valid"),
        ('{"input": {}, "expected": {"nodes": {"r": {"x": {"$regex": "("}}}}}',
         "cases.jsonl:1: expected.nodes.r.x: $regex does not compile"),
        ('{"input": {}, "expected": {"output": {"n": {"$approx": "1"}}}}',
         "cases.jsonl:1: expected.output.n: $approx and $tolerance take numbers"),
        ('{"input": {}, "expect": {}}', "cases.jsonl:1: expect: Extra inputs are not permitted"),
        ("{not json", "cases.jsonl:1: not JSON"),
    ],
)  # fmt: skip
def test_a_bad_line_names_the_file_line_and_field(tmp_path: Path, line: str, where: str) -> None:
    path = tmp_path / "cases.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(DatasetError) as caught:
        load_dataset(path)
    assert where in str(caught.value)


@pytest.mark.parametrize(
    ("matcher", "good", "bad"),
    [
        (Exact(3), 3.0, "3"),
        (OneOf(("low", "medium")), "medium", "high"),
        (SetOf(("a", "b")), ["b", "a"], ["a"]),
        (Approx(49.99, 0.01), 50.0, 50.01),
        (Regex(r"^A-\d+$"), "A-20931", "#A-20931"),
    ],
)
def test_matchers(matcher: object, good: object, bad: object) -> None:
    async def passed(value: object) -> bool:
        found = await check(matcher, value, path="x", grader=None)  # type: ignore[arg-type]
        return found[0].passed

    assert anyio.run(passed, good)
    assert not anyio.run(passed, bad)


def test_the_built_in_datasets_load() -> None:
    folder = ROOT / "examples" / "datasets"
    assert len(load_dataset(folder / "support_triage.jsonl").cases) >= 200
    assert len(load_dataset(folder / "text_to_sql.jsonl").cases) == 30
    assert load_dataset(folder / "invoice_extraction.jsonl").cases


def report(variant: str, scores: list[bool]) -> dict[str, object]:
    cases = [
        {"case": f"c{i}", "status": "ok", "scores": {"route": ok}} for i, ok in enumerate(scores)
    ]
    return {"variant": variant, "eval_id": variant, "overall": {"cost_per_case_usd": 0.0},
            "nodes": {"route": {}}, "cases": cases}  # fmt: skip


def test_the_bootstrap_is_paired_and_reproducible() -> None:
    a = report("a", [True, False] * 50)
    b = report("b", [True, True] * 50)
    first = compare_reports(a, b).delta("route")
    assert first.delta == 0.5
    assert first.low > 0
    assert compare_reports(a, b).delta("route") == first
    same = compare_reports(a, a).delta("route")
    assert (same.low, same.high) == (0, 0)
