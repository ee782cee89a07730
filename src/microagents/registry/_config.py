"""A project's registry sources, from ``microagents.toml`` or ``[tool.microagents]``.

```toml
[tool.microagents]        # in pyproject.toml; in microagents.toml, the same keys at top level
sources = [
    "agents",                                              # a folder, relative to the project
    "git+https://github.com/acme/agents.git@v2.1.0#agents",  # a repository at a ref (+ folder)
    "packages",                                            # installed agent packages
]
```

Each source is a string as above or a table: ``{folder = "..."}``,
``{git = "URL", ref = "v2", subdirectory = "agents"}``, ``{packages = ["team"]}`` (only these
entry points). Earlier sources win for a name. Without configuration the sources are
``./agents`` (when it exists) and then the installed packages.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._settings import project_setting
from ..errors import RegistryError
from ._git_source import GitSource, parse_git_spec
from ._package_source import PackageSource
from ._registry import AgentSource, FolderSource

DEFAULT_FOLDER = "agents"
PACKAGES = "packages"
_SCP_LIKE = re.compile(r"^[\w.-]+@[\w.-]+:")  # git@github.com:acme/agents.git

SourceSpec = str | Mapping[str, Any]
"""A source as configuration writes it: a string or a table (see the module docstring)."""


def configured_sources(root: Path) -> list[SourceSpec]:
    """The source specs configured for the project at `root`, or the default ones."""
    found = project_setting(root, "sources")
    if found is None:
        default: list[SourceSpec] = [DEFAULT_FOLDER] if (root / DEFAULT_FOLDER).is_dir() else []
        return [*default, PACKAGES]
    path, sources = found
    if not isinstance(sources, list) or not all(isinstance(s, str | dict) for s in sources):
        raise RegistryError("MA803", f"{path}: `sources` must be a list of strings and tables")
    return list(sources)


def make_source(spec: SourceSpec, root: Path) -> AgentSource:
    """One source from its string or table form; folders and local git paths are relative
    to `root`."""
    if isinstance(spec, str):
        if spec.startswith("git+"):
            url, ref, subdirectory = parse_git_spec(spec)
            return GitSource(_git_url(url, root), ref, subdirectory, name=spec)
        if spec == PACKAGES or spec.startswith(PACKAGES + ":"):
            names = tuple(n.strip() for n in spec.partition(":")[2].split(",") if n.strip())
            return PackageSource(names, name=spec)
        return FolderSource(root / spec, name=spec)
    kinds = [k for k in ("folder", "git", PACKAGES) if k in spec]
    if len(kinds) != 1:
        raise RegistryError(
            "MA803",
            f"source {dict(spec)} must have exactly one of folder, git or packages; "
            'e.g. {git = "https://github.com/acme/agents.git", ref = "v1"}',
        )
    kind = kinds[0]
    if kind == "folder":
        return FolderSource(root / str(spec["folder"]), name=str(spec["folder"]))
    if kind == "git":
        git_ref = spec.get("ref")
        if not isinstance(git_ref, str) or not git_ref:
            raise RegistryError(
                "MA803", f"git source {spec['git']} needs a ref: a branch, tag or commit"
            )
        folder = str(spec.get("subdirectory", "")).strip("/")
        suffix = f"#{folder}" if folder else ""
        remote = str(spec["git"])
        return GitSource(
            _git_url(remote, root), git_ref, folder, name=f"git+{remote}@{git_ref}{suffix}"
        )
    names = spec[PACKAGES]
    only = () if names is True else tuple(str(n) for n in names)
    return PackageSource(only, name=PACKAGES if not only else f"{PACKAGES}:{','.join(only)}")


def _git_url(url: str, root: Path) -> str:
    """A local path remote is relative to the project, like a folder source."""
    if "://" in url or _SCP_LIKE.match(url) or Path(url).is_absolute():
        return url
    return str((root / url).resolve())
