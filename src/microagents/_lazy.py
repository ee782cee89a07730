"""Names loaded on first use (PEP 562), from one table per public namespace: the table drives
both the lazy loading and `__all__`, so a namespace lists each name once (plus the
`TYPE_CHECKING` imports that type checkers read, which a test holds equal to the table)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping


def lazy_exports(
    package: str, table: Mapping[str, str]
) -> tuple[list[str], Callable[[str], object], Callable[[], list[str]]]:
    """`__all__`, `__getattr__` and `__dir__` for `package` exporting `table`'s names, each
    from the module its entry names (relative to `package`)."""
    namespace = importlib.import_module(package)

    def __getattr__(name: str) -> object:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        setattr(namespace, name, value)  # later lookups skip this function
        return value

    def __dir__() -> list[str]:
        return sorted(table)

    return list(table), __getattr__, __dir__
