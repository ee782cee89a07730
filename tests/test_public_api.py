from __future__ import annotations

import ast
import importlib
import inspect
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import microagents

INIT = Path(microagents.__file__).read_text()
LAZY_NAMESPACES = ["microagents", *(f"microagents.{n}" for n in microagents.NAMESPACES)]
LAZY_NAMESPACES.remove("microagents.errors")  # a module of its own classes
LAZY_NAMESPACES.remove("microagents.testing")  # imports its fakes, like any package


def type_checking_names(module: ModuleType) -> set[str]:
    """The names a namespace imports for type checkers (`if TYPE_CHECKING:` block)."""
    tree = ast.parse(inspect.getsource(module))
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for statement in node.body:
                if isinstance(statement, ast.ImportFrom):
                    found.update(alias.asname or alias.name for alias in statement.names)
    return found


@pytest.mark.parametrize("name", LAZY_NAMESPACES)
def test_a_namespace_lists_each_name_once_and_type_checkers_see_the_same(name: str) -> None:
    module = importlib.import_module(name)
    exported = set(module.__all__) - {"__version__"}
    assert len(module.__all__) == len(set(module.__all__))
    assert exported == set(module._EXPORTS)  # the one table drives loading and __all__
    assert type_checking_names(module) - set(microagents.NAMESPACES) == exported


@pytest.mark.parametrize("name", LAZY_NAMESPACES)
def test_every_public_name_resolves_and_has_a_docstring(name: str) -> None:
    module = importlib.import_module(name)
    assert inspect.getdoc(module), f"{name} has no docstring"
    for exported in module.__all__:
        value = getattr(module, exported)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert inspect.getdoc(value), f"{name}.{exported} has no docstring"


def test_the_top_level_is_for_workflow_authors_and_the_code_that_runs_them() -> None:
    assert len(microagents.__all__) <= 35
    for name in microagents.NAMESPACES:
        assert importlib.import_module(f"microagents.{name}") is getattr(microagents, name)
    assert set(dir(microagents)) == set(microagents.__all__) | set(microagents.NAMESPACES)


def test_every_exception_is_in_the_one_hierarchy_module() -> None:
    import microagents.errors as errors

    src = Path(microagents.__file__).parent
    for module in src.rglob("*.py"):
        text = module.read_text()
        for name in re.findall(r"^class (\w+)\((?:\w+Error|MicroagentsError)\b", text, re.M):
            assert module.name == "errors.py" or name.startswith("_"), (module, name)
    assert issubclass(errors.NodeError, errors.RunError)


def test_a_misspelt_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'Engin'"):
        microagents.Engin  # type: ignore[attr-defined]  # noqa: B018


@pytest.mark.parametrize("name", LAZY_NAMESPACES)
def test_exports_are_sorted_within_their_groups(name: str) -> None:
    source = inspect.getsource(importlib.import_module(name))
    block = source[source.index("_EXPORTS = {") :].split("}", 1)[0]
    groups = re.split(r"\n\s*# [^\n]*", block)
    for group in groups:
        names = re.findall(r'"(\w+)":', group)
        assert names == sorted(names, key=lambda n: (n.lower(), n)), (name, names)


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
    for module in src.rglob("*.py"):
        if module.parent.name == "cli":
            continue
        assert not re.search(r"^\s*from (\.+|microagents\.)cli\b", module.read_text(), re.M), module
    assert importlib.import_module("microagents.cli")
