"""Semantic versions and the version ranges that agent references use.

A reference is ``name``, ``name@1.4.0`` (exact), ``name@1.4`` / ``name@1`` (any patch / any
minor), ``name@^1.2`` (compatible: same major, at least 1.2), ``name@~1.2`` (same minor,
at least 1.2.0), or comparisons joined by commas (``name@>=1.2,<2``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering

from ..errors import VersionError

_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z.-]+)?$"
)
_PARTIAL = re.compile(r"^(0|[1-9]\d*)(?:\.(0|[1-9]\d*))?(?:\.(0|[1-9]\d*))?$")
_COMPARISON = re.compile(r"^(>=|<=|>|<|==|=)?\s*(.+)$")


@total_ordering
@dataclass(frozen=True, slots=True)
class Version:
    """A semantic version: MAJOR.MINOR.PATCH with an optional pre-release tag."""

    major: int
    minor: int
    patch: int
    prerelease: str = ""

    @classmethod
    def parse(cls, text: str) -> Version:
        match = _SEMVER.match(text.strip())
        if match is None:
            raise VersionError(
                f"'{text}' is not a semantic version; write MAJOR.MINOR.PATCH, e.g. 1.0.0"
            )
        major, minor, patch, pre = match.groups()
        return cls(int(major), int(minor), int(patch), pre or "")

    def _key(self) -> tuple[int, int, int, int, tuple[tuple[int, int | str], ...]]:
        # A release sorts after its pre-releases; numeric identifiers sort numerically.
        pre = tuple((0, int(p)) if p.isdigit() else (1, p) for p in self.prerelease.split("."))
        return (self.major, self.minor, self.patch, 0 if self.prerelease else 1, pre)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() < other._key()

    def __str__(self) -> str:
        core = f"{self.major}.{self.minor}.{self.patch}"
        return f"{core}-{self.prerelease}" if self.prerelease else core


@dataclass(frozen=True, slots=True)
class VersionRange:
    """A set of versions, as the intersection of half-open bounds."""

    text: str
    lower: Version | None
    lower_inclusive: bool
    upper: Version | None
    upper_inclusive: bool

    @classmethod
    def any(cls) -> VersionRange:
        return cls("*", None, True, None, False)

    @classmethod
    def parse(cls, text: str) -> VersionRange:
        text = text.strip()
        if text in ("", "*", "latest"):
            return cls.any()
        ranges = [cls._parse_one(part.strip(), text) for part in text.split(",")]
        result = ranges[0]
        for other in ranges[1:]:
            result = result._intersect(other)
        return VersionRange(
            text,
            result.lower,
            result.lower_inclusive,
            result.upper,
            result.upper_inclusive,
        )

    @classmethod
    def _parse_one(cls, part: str, whole: str) -> VersionRange:
        hint = f"'{whole}' is not a version range; use 1.2.3, 1.2, ^1.2, ~1.2 or >=1.2,<2"
        if part.startswith(("^", "~")):
            low, precision = _partial(part[1:], hint)
            if part[0] == "^":
                if low.major > 0 or precision == 1:
                    high = Version(low.major + 1, 0, 0)
                elif low.minor > 0 or precision == 2:
                    high = Version(0, low.minor + 1, 0)
                else:
                    high = Version(0, 0, low.patch + 1)
            else:
                high = (
                    Version(low.major + 1, 0, 0)
                    if precision == 1
                    else Version(low.major, low.minor + 1, 0)
                )
            return cls(part, low, True, high, False)
        match = _COMPARISON.match(part)
        if match is None:  # pragma: no cover - the pattern matches any non-empty text
            raise VersionError(hint)
        operator, rest = match.groups()
        if operator in (None, "=", "=="):
            if _SEMVER.match(rest):
                exact = Version.parse(rest)
                return cls(part, exact, True, exact, True)
            low, precision = _partial(rest, hint)
            if precision == 3:
                return cls(part, low, True, low, True)
            high = (
                Version(low.major + 1, 0, 0)
                if precision == 1
                else Version(low.major, low.minor + 1, 0)
            )
            return cls(part, low, True, high, False)
        bound = Version.parse(rest) if _SEMVER.match(rest) else _partial(rest, hint)[0]
        if operator == ">=":
            return cls(part, bound, True, None, False)
        if operator == ">":
            return cls(part, bound, False, None, False)
        if operator == "<=":
            return cls(part, None, True, bound, True)
        return cls(part, None, True, bound, False)

    def _intersect(self, other: VersionRange) -> VersionRange:
        lower, lower_inc = self.lower, self.lower_inclusive
        if other.lower is not None and (
            lower is None
            or other.lower > lower
            or (other.lower == lower and not other.lower_inclusive)
        ):
            lower, lower_inc = other.lower, other.lower_inclusive
        upper, upper_inc = self.upper, self.upper_inclusive
        if other.upper is not None and (
            upper is None
            or other.upper < upper
            or (other.upper == upper and not other.upper_inclusive)
        ):
            upper, upper_inc = other.upper, other.upper_inclusive
        return VersionRange(self.text, lower, lower_inc, upper, upper_inc)

    def __contains__(self, version: object) -> bool:
        if not isinstance(version, Version):
            return False
        if self.lower is not None and (
            version < self.lower or (version == self.lower and not self.lower_inclusive)
        ):
            return False
        return not (
            self.upper is not None
            and (version > self.upper or (version == self.upper and not self.upper_inclusive))
        )

    def best(self, versions: list[Version]) -> Version | None:
        """The highest of `versions` in this range (pre-releases only when asked for exactly)."""
        matching = [v for v in versions if v in self and (not v.prerelease or self.lower == v)]
        return max(matching, default=None)

    def __str__(self) -> str:
        return self.text


def _partial(text: str, hint: str) -> tuple[Version, int]:
    match = _PARTIAL.match(text.strip())
    if match is None:
        raise VersionError(hint)
    parts = [p for p in match.groups() if p is not None]
    numbers = [int(p) for p in parts] + [0] * (3 - len(parts))
    return Version(numbers[0], numbers[1], numbers[2]), len(parts)


@dataclass(frozen=True, slots=True)
class Reference:
    """A reference to a registry item: ``name`` or ``name@range``."""

    name: str
    range: VersionRange

    @classmethod
    def parse(cls, text: str) -> Reference:
        name, _, range_text = text.partition("@")
        name = name.strip()
        if not name:
            raise VersionError(f"'{text}' names nothing; write NAME or NAME@VERSION")
        return cls(name, VersionRange.parse(range_text))

    def __str__(self) -> str:
        return self.name if self.range.text == "*" else f"{self.name}@{self.range}"
