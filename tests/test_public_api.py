from __future__ import annotations

import importlib
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

import microagents

INIT = Path(microagents.__file__).read_text()


def test_all_lists_exactly_the_lazy_public_names() -> None:
    assert set(microagents.__all__) - {"__version__"} == set(microagents._LAZY)
    assert dir(microagents) == sorted(microagents.__all__)


def test_every_public_name_resolves_and_has_a_docstring() -> None:
    for name in microagents.__all__:
        value = getattr(microagents, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert inspect.getdoc(value), f"{name} has no docstring"


def test_a_misspelt_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'Engin'"):
        microagents.Engin  # type: ignore[attr-defined]  # noqa: B018


def test_all_is_sorted_within_its_groups() -> None:
    block = INIT[INIT.index("__all__ = [") :]
    groups = re.split(r"\n\s*# [^\n]*", block.split("]", 1)[0])
    for group in groups:
        names = re.findall(r'"(\w+)"', group)
        assert names == sorted(names, key=lambda n: (n.startswith("_"), n))


def test_importing_the_package_loads_no_heavy_dependency() -> None:
    code = (
        "import sys, microagents; "
        "print(sorted(m for m in ('networkx', 'anthropic', 'opentelemetry', 'jinja2', 'rich', "
        "'sqlglot', 'duckdb') "
        "if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert loaded.stdout.strip() == "[]"


def test_library_never_imports_the_cli() -> None:
    src = Path(microagents.__file__).parent
    for module in src.glob("_*.py"):
        assert "cli" not in re.findall(r"^from \.(\w+)", module.read_text(), re.M), module
    assert importlib.import_module("microagents.cli")
