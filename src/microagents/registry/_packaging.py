"""`microagents agents package PATH`: check that a project is laid out as an agent package.

It builds nothing (``pip install PATH`` or ``python -m build`` does that): it reads the
project's ``pyproject.toml``, finds the packages its ``microagents.agents`` entry points name,
loads and compiles every spec in them as an installed registry would, and says what to fix.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import Location, MicroagentsError, Problem, SpecError
from ..graph._agent import compile_agent
from ._package_source import ENTRY_POINT_GROUP
from ._registry import AgentEntry, FolderSource, WorkflowEntry


@dataclass
class PackageReport:
    """What an installed agent package would offer, and what is wrong with its layout."""

    distribution: str
    entry_points: dict[str, str]
    agents: list[AgentEntry] = field(default_factory=list)
    workflows: list[WorkflowEntry] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(p.severity == "error" for p in self.problems)

    def snippet(self) -> str:
        """The pyproject.toml table that declares the entry points."""
        lines = [f'[project.entry-points."{ENTRY_POINT_GROUP}"]']
        lines += [f'{name} = "{module}"' for name, module in self.entry_points.items()]
        return "\n".join(lines) + "\n"


def check_package(root: Path) -> PackageReport:
    """Check the agent package whose ``pyproject.toml`` is in `root`."""
    pyproject = root / "pyproject.toml"
    try:
        data: dict[str, Any] = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise MicroagentsError(
            f"{pyproject} cannot be read ({exc}); an agent package is a Python project with "
            "a pyproject.toml"
        ) from None
    project = data.get("project") or {}
    distribution = str(project.get("name") or root.name)
    declared = (project.get("entry-points") or {}).get(ENTRY_POINT_GROUP) or {}
    report = PackageReport(distribution, {str(k): str(v) for k, v in declared.items()})
    if not declared:
        guess = _guess_package(root)
        report.entry_points = {distribution.split("-")[0].replace(".", "_"): guess or "PACKAGE"}
        report.problems.append(
            Problem(
                "MA809",
                f'no [project.entry-points."{ENTRY_POINT_GROUP}"] table, so installing the '
                "package makes no agent resolvable; add the table printed below",
                Location(pyproject),
            )
        )
        return report
    for name, module in report.entry_points.items():
        folder = _package_folder(root, module)
        if folder is None:
            report.problems.append(
                Problem(
                    "MA809",
                    f"entry point '{name}' names '{module}', but there is no package "
                    f"(a folder with __init__.py) at src/{module.replace('.', '/')} or "
                    f"{module.replace('.', '/')}; the value is the package that holds the specs",
                    Location(pyproject),
                )
            )
            continue
        _check_folder(FolderSource(folder, name=f"package:{distribution}"), name, report)
    return report


def _check_folder(source: FolderSource, entry_point: str, report: PackageReport) -> None:
    agents, workflows = list(source.entries()), list(source.workflows())
    report.problems.extend(source.problems())
    report.agents.extend(agents)
    report.workflows.extend(workflows)
    if not agents and not workflows:
        report.problems.append(
            Problem(
                "MA809",
                f"entry point '{entry_point}': {source.path} holds no agent or workflow spec; "
                "put the YAML files (and .j2 templates) inside the package",
                Location(source.path),
            )
        )
    for entry in agents:
        try:
            compile_agent(entry.sourced)
        except SpecError as exc:
            report.problems.extend(exc.problems)
    published = [(e.name, e.sourced.source) for e in agents]
    published += [(e.name, e.sourced.source) for e in workflows]
    for name, where in published:
        if "/" not in name:
            report.problems.append(
                Problem(
                    "MA809",
                    f"'{name}' has no namespace; published names are team/name (e.g. "
                    f"{entry_point}/{name}) so that they cannot clash with another team's",
                    where.locate("name"),
                    "name",
                    "warning",
                )
            )


def _package_folder(root: Path, module: str) -> Path | None:
    relative = Path(*module.split("."))
    for folder in (root / "src" / relative, root / relative):
        if (folder / "__init__.py").is_file():
            return folder
    return None


def _guess_package(root: Path) -> str | None:
    for base in (root / "src", root):
        if base.is_dir():
            for init in sorted(base.glob("*/__init__.py")):
                if any(init.parent.glob("*.yaml")) or any(init.parent.glob("*.yml")):
                    return init.parent.name
    return None
