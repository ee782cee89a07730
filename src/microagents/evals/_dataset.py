"""A dataset: labelled cases, one JSON object per line, read once and checked up front.

```json
{"id": "T-1", "input": {"ticket": "..."},
 "expected": {"output": {"category": "billing"}, "nodes": {"route": {"category": "billing"}}}}
```

Pydantic checks each line's shape (the boundary); what comes out are frozen `Case`s whose
expectations are matcher trees (`_matchers.py`). Any problem is a `DatasetError` naming the
file, the line and the field, before a single model call.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from ..errors import DatasetError
from ._matchers import Approx, Exact, Expectation, Fields, Judge, OneOf, Regex, SetOf

OPERATORS = ("$one_of", "$set", "$approx", "$regex", "$judge")


class _Expected(BaseModel):
    model_config = ConfigDict(extra="forbid")

    output: dict[str, Any] | None = None
    nodes: dict[str, dict[str, Any]] = {}


class _Line(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = None
    input: dict[str, Any]
    expected: _Expected = _Expected()
    metadata: dict[str, Any] = {}


@dataclass(frozen=True, slots=True)
class Case:
    """One labelled input: what to run, and what its output and nodes' outputs should be."""

    id: str
    line: int
    input: Mapping[str, Any]
    output: Fields | None = None
    nodes: Mapping[str, Fields] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Dataset:
    """The cases of one dataset file, in file order."""

    path: Path
    cases: tuple[Case, ...]

    @property
    def labelled_nodes(self) -> list[str]:
        """Every node some case has expectations for, in first-seen order."""
        seen: dict[str, None] = {}
        for case in self.cases:
            seen.update(dict.fromkeys(case.nodes))
        return list(seen)


def load_dataset(path: Path | str) -> Dataset:
    """Read a JSONL dataset; raise `DatasetError` (file, line, field) at its first bad line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DatasetError(path, 0, "", f"cannot read the dataset: {exc.strerror}") from None
    cases: list[Case] = []
    ids: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        case = _case(path, number, raw)
        if case.id in ids:
            raise DatasetError(
                path, number, "id", f"'{case.id}' is also the id of line {ids[case.id]}"
            )
        ids[case.id] = number
        cases.append(case)
    if not cases:
        raise DatasetError(path, 0, "", "the dataset has no cases (one JSON object per line)")
    return Dataset(path, tuple(cases))


def _case(path: Path, number: int, raw: str) -> Case:
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise DatasetError(path, number, "", f"not JSON: {exc.msg} (column {exc.colno})") from None
    try:
        line = _Line.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise DatasetError(path, number, where, first["msg"]) from None

    def expectation(value: dict[str, Any], where: str) -> Fields:
        parsed = _expectation(value, where, path, number)
        if not isinstance(parsed, Fields):
            raise DatasetError(path, number, where, "expected an object of fields to score")
        return parsed

    output = line.expected.output
    return Case(
        id=line.id or f"line-{number}",
        line=number,
        input=line.input,
        output=expectation(output, "expected.output") if output is not None else None,
        nodes={
            node: expectation(value, f"expected.nodes.{node}")
            for node, value in line.expected.nodes.items()
        },
        metadata=line.metadata,
    )


def _expectation(value: Any, where: str, path: Path, number: int) -> Expectation:
    if not isinstance(value, dict):
        return Exact(value)
    operators = [key for key in value if key.startswith("$")]
    if not operators:
        return Fields({k: _expectation(v, f"{where}.{k}", path, number) for k, v in value.items()})
    try:
        return _matcher(value)
    except (KeyError, TypeError, ValueError) as exc:
        detail = exc.args[0] if exc.args else str(exc)
        raise DatasetError(
            path, number, where, f"{detail}; matchers: {', '.join(OPERATORS)}"
        ) from None


def _matcher(value: dict[str, Any]) -> Expectation:
    keys = set(value)
    if keys == {"$one_of"} and isinstance(value["$one_of"], list):
        return OneOf(tuple(value["$one_of"]))
    if keys == {"$set"} and isinstance(value["$set"], list):
        return SetOf(tuple(value["$set"]))
    if keys <= {"$approx", "$tolerance"} and "$approx" in keys:
        expected, tolerance = value["$approx"], value.get("$tolerance", 0.0)
        if not all(_number(v) for v in (expected, tolerance)) or tolerance < 0:
            raise ValueError("$approx and $tolerance take numbers (a tolerance of 0 or more)")
        return Approx(float(expected), float(tolerance))
    if keys == {"$regex"} and isinstance(value["$regex"], str):
        try:
            re.compile(value["$regex"])
        except re.error as exc:
            raise ValueError(f"$regex does not compile: {exc}") from None
        return Regex(value["$regex"])
    if keys == {"$judge"} and isinstance(value["$judge"], str) and value["$judge"].strip():
        return Judge(value["$judge"])
    raise ValueError(f"not a matcher: {json.dumps(value)[:80]}")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
