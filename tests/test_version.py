from __future__ import annotations

import pytest

from microagents.errors import VersionError
from microagents.spec._semver import Reference, Version, VersionRange

VERSIONS = [
    Version.parse(v) for v in ["0.9.0", "1.0.0", "1.2.0", "1.2.5", "1.10.0", "2.0.0-rc.1", "2.0.0"]
]


@pytest.mark.parametrize(
    ("text", "best"),
    [
        ("", "2.0.0"),
        ("*", "2.0.0"),
        ("1", "1.10.0"),
        ("1.2", "1.2.5"),
        ("1.2.0", "1.2.0"),
        ("^1.2", "1.10.0"),
        ("~1.2", "1.2.5"),
        ("^0.9", "0.9.0"),
        (">=1.1,<1.3", "1.2.5"),
        ("<1", "0.9.0"),
        ("2.0.0-rc.1", "2.0.0-rc.1"),
        ("^3", None),
    ],
)
def test_range_picks_the_highest_matching_version(text: str, best: str | None) -> None:
    found = VersionRange.parse(text).best(VERSIONS)
    assert (str(found) if found else None) == best


def test_prereleases_sort_before_their_release_and_numerically() -> None:
    assert Version.parse("2.0.0-rc.2") < Version.parse("2.0.0-rc.10") < Version.parse("2.0.0")


@pytest.mark.parametrize("text", ["1.0", "v1.0.0", "01.0.0", "1.0.0.0", ""])
def test_malformed_versions_are_refused(text: str) -> None:
    with pytest.raises(VersionError, match="semantic version"):
        Version.parse(text)


@pytest.mark.parametrize("text", ["^x", "~", ">=banana"])
def test_malformed_ranges_are_refused(text: str) -> None:
    with pytest.raises(VersionError, match="not a version range"):
        VersionRange.parse(text)


def test_reference_parsing() -> None:
    ref = Reference.parse("team/extractor@^1.2")
    assert ref.name == "team/extractor"
    assert Version.parse("1.9.0") in ref.range
    assert Version.parse("2.0.0") not in ref.range
    assert str(Reference.parse("router")) == "router"
