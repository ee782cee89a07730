from __future__ import annotations

from pathlib import Path

import pytest

from microagents import SpecError
from microagents.spec._yaml import MAX_EXPANDED_NODES, MAX_SPEC_BYTES, load_yaml, load_yaml_file


def codes(exc: pytest.ExceptionInfo[SpecError]) -> list[str]:
    return [p.code for p in exc.value.problems]


def test_source_map_points_at_keys_and_items() -> None:
    loaded = load_yaml("name: a\nnodes:\n  route:\n    agent: router\nedges:\n  - {from: a}\n")
    locate = loaded.source_map.locate
    assert (
        locate(("nodes", "route", "agent")).line,
        locate(("nodes", "route", "agent")).column,
    ) == (4, 5)
    assert locate(("edges", 0)).line == 6
    # A path below what the file has falls back to its nearest ancestor.
    assert locate(("edges", 0, "to")).line == 6


def test_keys_stay_text_even_when_yaml_1_1_would_make_them_booleans() -> None:
    loaded = load_yaml("on: [a]\nyes: 1\n1.0: x\n")
    assert loaded.data == {"on": ["a"], "yes": 1, "1.0": "x"}


def test_duplicate_keys_are_refused_with_both_lines() -> None:
    with pytest.raises(SpecError) as exc:
        load_yaml("name: a\nversion: 1\nname: b\n")
    problem = exc.value.problems[0]
    assert problem.code == "MA109"
    assert problem.location.line == 3
    assert "first defined on line 1" in problem.message


def test_tab_indentation_gets_a_plain_explanation() -> None:
    with pytest.raises(SpecError) as exc:
        load_yaml("nodes:\n\troute: 1\n")
    assert codes(exc) == ["MA105"]
    assert exc.value.problems[0].location.line == 2


def test_billion_laughs_is_refused() -> None:
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 8):
        prev = chr(ord("a") + i - 1)
        name = chr(ord("a") + i)
        lines.append(f"{name}: &{name} [{', '.join(['*' + prev] * 10)}]")
    with pytest.raises(SpecError) as exc:
        load_yaml("\n".join(lines))
    assert codes(exc) == ["MA107"]
    assert f"{MAX_EXPANDED_NODES:,}" in exc.value.problems[0].message


def test_small_aliases_and_merge_keys_still_work() -> None:
    loaded = load_yaml("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\n")
    assert loaded.data["other"] == {"x": 1, "y": 3}


def test_empty_and_multi_document_files() -> None:
    with pytest.raises(SpecError) as exc:
        load_yaml("# only a comment\n")
    assert codes(exc) == ["MA104"]
    with pytest.raises(SpecError) as exc:
        load_yaml("a: 1\n---\nb: 2\n")
    assert codes(exc) == ["MA106"]


def test_oversized_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with big.open("wb") as handle:
        handle.truncate(MAX_SPEC_BYTES + 1)  # sparse: the size check must not need the bytes
    with pytest.raises(SpecError) as exc:
        load_yaml_file(big)
    assert codes(exc) == ["MA102"]


def test_binary_and_non_utf8_files(tmp_path: Path) -> None:
    binary = tmp_path / "b.yaml"
    binary.write_bytes(b"name: \x00\x01\x02")
    with pytest.raises(SpecError) as exc:
        load_yaml_file(binary)
    assert codes(exc) == ["MA103"]
    latin = tmp_path / "l.yaml"
    latin.write_bytes(b"name: a\ndescription: caf\xe9\n")
    with pytest.raises(SpecError) as exc:
        load_yaml_file(latin)
    assert exc.value.problems[0].location.line == 2
