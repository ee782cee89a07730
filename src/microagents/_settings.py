"""Project settings: a key of ``microagents.toml`` (at its top level) or of the
``[tool.microagents]`` table of ``pyproject.toml``, both in the project folder.

The first of the two files that sets the key wins; the files are not merged, so a setting is
always read whole from one place.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from .errors import MicroagentsError

_FILES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("microagents.toml", ()),
    ("pyproject.toml", ("tool", "microagents")),
)


def microagents_home() -> Path:
    """Where embedded stores live: ``$MICROAGENTS_HOME``, default ``./.microagents``."""
    return Path(os.environ.get("MICROAGENTS_HOME", ".microagents"))


def project_setting(root: Path, key: str) -> tuple[Path, Any] | None:
    """The file that sets `key` and its value there, or None when neither file sets it."""
    for name, section in _FILES:
        path = root / name
        if not path.is_file():
            continue
        try:
            data: Any = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise MicroagentsError(f"{path}: invalid TOML: {exc}") from None
        for part in section:
            data = data.get(part) if isinstance(data, dict) else None
        if isinstance(data, dict) and key in data:
            return path, data[key]
    return None
