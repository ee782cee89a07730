"""How an expected value is compared with what a node or the workflow gave.

An expectation is a tree: a `Fields` mapping names only the fields it scores (the others are not
looked at), and every leaf is a matcher. In a dataset line a leaf is a plain JSON value (exact
match) or one object with one `$` key:

- `"billing"`, `3`, `[1, 2]`, `null` — `Exact`: equal (1 equals 1.0);
- `{"$one_of": ["low", "medium"]}` — `OneOf`: equal to one of them;
- `{"$set": ["a", "b"]}` — `SetOf`: a list with the same members, in any order;
- `{"$approx": 49.99, "$tolerance": 0.01}` — `Approx`: a number within the (absolute) tolerance;
- `{"$regex": "^A-\\d+$"}` — `Regex`: text the expression matches (`re.search`);
- `{"$judge": "rubric"}` — `Judge`: a model given the rubric accepts it (`_judge.py`).

The names follow pydantic-evals' evaluators where there is one (`EqualsExpected` is `Exact`,
`LLMJudge` with a rubric is `Judge`), but a matcher scores one field, not a whole output.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ..results._results import jsonable


class Grader(Protocol):
    """What a `Judge` asks: a model that grades a value against a rubric."""

    async def grade(self, rubric: str, value: Any, *, field: str) -> tuple[bool, str]:
        """(passed, reason) for `value` of `field` against `rubric`."""
        ...


@dataclass(frozen=True, slots=True)
class Exact:
    """Passes when the value equals `expected` (JSON equality: 1 == 1.0, tuples as lists)."""

    expected: Any

    def check(self, actual: Any) -> str | None:
        return None if _equal(self.expected, actual) else f"expected {_show(self.expected)}"


@dataclass(frozen=True, slots=True)
class OneOf:
    """Passes when the value equals one of `choices`."""

    choices: tuple[Any, ...]

    def check(self, actual: Any) -> str | None:
        if any(_equal(choice, actual) for choice in self.choices):
            return None
        return f"expected one of {_show(list(self.choices))}"


@dataclass(frozen=True, slots=True)
class SetOf:
    """Passes when the value is a list with exactly these members, in any order."""

    members: tuple[Any, ...]

    def check(self, actual: Any) -> str | None:
        if isinstance(actual, list) and _members(actual) == _members(list(self.members)):
            return None
        return f"expected the set {_show(list(self.members))}"


@dataclass(frozen=True, slots=True)
class Approx:
    """Passes when the value is a number within `tolerance` of `expected`."""

    expected: float
    tolerance: float

    def check(self, actual: Any) -> str | None:
        ok = isinstance(actual, int | float) and not isinstance(actual, bool)
        if ok and math.isclose(actual, self.expected, rel_tol=0, abs_tol=self.tolerance):
            return None
        return f"expected {self.expected} ± {self.tolerance}"


@dataclass(frozen=True, slots=True)
class Regex:
    """Passes when the value is text that `pattern` matches somewhere (`re.search`)."""

    pattern: str

    def check(self, actual: Any) -> str | None:
        if isinstance(actual, str) and re.search(self.pattern, actual):
            return None
        return f"expected text matching /{self.pattern}/"


@dataclass(frozen=True, slots=True)
class Judge:
    """Passes when a model, given `rubric`, accepts the value; the call is traced and costed
    like any other (it goes through the engine's model stack)."""

    rubric: str


Matcher = Exact | OneOf | SetOf | Approx | Regex | Judge


@dataclass(frozen=True, slots=True)
class Fields:
    """Expected values for some fields of an object; fields not named are not scored."""

    fields: Mapping[str, Expectation]


Expectation = Fields | Matcher


@dataclass(frozen=True, slots=True)
class FieldCheck:
    """One scored field: its dotted path, and why it failed (`reason` None when it passed)."""

    path: str
    actual: Any
    reason: str | None

    @property
    def passed(self) -> bool:
        return self.reason is None


async def check(
    expectation: Expectation, actual: Any, *, path: str, grader: Grader | None
) -> list[FieldCheck]:
    """Every leaf of `expectation` checked against the matching part of `actual`."""
    if isinstance(expectation, Fields):
        data = jsonable(actual)
        if not isinstance(data, Mapping):
            reason = "no output" if data is None else f"expected an object, got {_show(data)}"
            return [FieldCheck(path, data, reason)]
        checks: list[FieldCheck] = []
        for name, inner in expectation.fields.items():
            sub = f"{path}.{name}" if path else name
            checks += await check(inner, data.get(name), path=sub, grader=grader)
        return checks
    value = jsonable(actual)
    if isinstance(expectation, Judge):
        if grader is None:
            return [FieldCheck(path, value, "a $judge matcher needs a grader model")]
        passed, why = await grader.grade(expectation.rubric, value, field=path)
        return [FieldCheck(path, value, None if passed else f"judge: {why}")]
    return [FieldCheck(path, value, expectation.check(value))]


def leaf(expectation: Expectation, field_path: str) -> Matcher | None:
    """The matcher at a dotted path of a `Fields` tree (None when the path names none)."""
    current: Expectation = expectation
    for part in field_path.split("."):
        if not isinstance(current, Fields) or part not in current.fields:
            return None
        current = current.fields[part]
    return None if isinstance(current, Fields) else current


def _equal(expected: Any, actual: Any) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        return math.isclose(expected, actual, rel_tol=1e-12, abs_tol=0)
    return bool(jsonable(expected) == jsonable(actual))


def _members(values: list[Any]) -> list[str]:
    return sorted(repr(jsonable(v)) for v in values)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
