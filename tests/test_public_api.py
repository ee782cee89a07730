from __future__ import annotations

import inspect
import re
from pathlib import Path

import microagents

INIT = Path(microagents.__file__).read_text()


def test_all_lists_exactly_the_public_names() -> None:
    public = {
        name
        for name, value in vars(microagents).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert set(microagents.__all__) - {"__version__"} == public


def test_all_is_sorted_within_its_groups() -> None:
    block = INIT[INIT.index("__all__ = [") :]
    groups = re.split(r"\n\s*# [^\n]*", block.split("]", 1)[0])
    for group in groups:
        names = re.findall(r'"(\w+)"', group)
        assert names == sorted(names, key=lambda n: (n.startswith("_"), n))


def test_every_public_name_has_a_docstring() -> None:
    for name in microagents.__all__:
        value = getattr(microagents, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert inspect.getdoc(value), f"{name} has no docstring"


def test_library_never_imports_the_cli() -> None:
    src = Path(microagents.__file__).parent
    for module in src.glob("_*.py"):
        assert "cli" not in re.findall(r"^from \.(\w+)", module.read_text(), re.M), module
