"""Installed Python packages as agent sources, through the ``microagents.agents`` entry point.

An agent package ships its YAML specs and ``.j2`` templates as package data and declares::

    [project.entry-points."microagents.agents"]
    team = "team_agents"          # the package whose folder holds the specs

so that ``pip install team-agents`` makes its agents resolvable. Finding the folder uses
`importlib.util.find_spec`, which locates a top-level package without running its code.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

from ..errors import Problem, RegistryError
from ._registry import AgentEntry, FolderSource, WorkflowEntry

ENTRY_POINT_GROUP = "microagents.agents"


@dataclass
class PackageSource:
    """The agents of every installed package that declares the entry point (or only of the
    entry points named in `only`), each package a source of its own, ordered by entry point
    name so that precedence does not depend on installation order."""

    only: tuple[str, ...] = ()
    name: str = "packages"
    _folders: list[FolderSource] | None = field(default=None, init=False, repr=False)

    def entries(self) -> Iterable[AgentEntry]:
        return [entry for folder in self.folders() for entry in folder.entries()]

    def workflows(self) -> Iterable[WorkflowEntry]:
        return [entry for folder in self.folders() for entry in folder.workflows()]

    def problems(self) -> list[Problem]:
        return [problem for folder in self.folders() for problem in folder.problems()]

    def folders(self) -> list[FolderSource]:
        """One folder source per entry point, named ``package:DISTRIBUTION``."""
        if self._folders is None:
            found = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
            missing = [name for name in self.only if name not in found]
            if missing:
                raise RegistryError(
                    "MA801",
                    f"no installed package declares the {ENTRY_POINT_GROUP} entry point "
                    f"'{missing[0]}' (installed: {', '.join(sorted(found)) or 'none'}); "
                    "pip install the agent package, or fix the name",
                )
            chosen = [found[n] for n in sorted(found) if not self.only or n in self.only]
            self._folders = [FolderSource(_package_folder(ep), _source_name(ep)) for ep in chosen]
        return self._folders


def _source_name(entry_point: EntryPoint) -> str:
    dist = entry_point.dist
    return f"package:{dist.name if dist is not None else entry_point.name}"


def _package_folder(entry_point: EntryPoint) -> Path:
    where = f"entry point '{entry_point.name} = {entry_point.value}' ({_source_name(entry_point)})"
    if entry_point.attr:
        raise RegistryError(
            "MA801", f"{where} must name a package, not an object: write '{entry_point.module}'"
        )
    try:
        spec = importlib.util.find_spec(entry_point.module)
    except (ImportError, ValueError) as exc:
        spec = None
        reason = f" ({exc})"
    else:
        reason = ""
    if spec is None or not spec.submodule_search_locations:
        raise RegistryError(
            "MA801",
            f"{where}: '{entry_point.module}' is not an importable package{reason}; "
            "reinstall the agent package",
        )
    return Path(next(iter(spec.submodule_search_locations)))
