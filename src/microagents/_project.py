"""A project: where its agents, tools and workflows come from, and loading workflows with them.

A `Project` is passed explicitly (no global state): the CLI builds one from its options, and
Python code builds one or uses the default for the current folder.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Sequence
from pathlib import Path

from ._agent import CompiledAgent, compile_agent
from ._agent_spec import AgentSpec
from ._builtin_tools import BUILTIN_TOOLS
from ._compiled import CompiledWorkflow
from ._errors import Location, MicroagentsError, Problem, SpecError
from ._graph import agent_tool_problems, compile_workflow
from ._loading import Source, Sourced, load_agent_spec, load_workflow_spec
from ._registry import AgentRegistry, FolderSource
from ._sql_tools import SqlDatabase, sql_tools
from ._tools import Tool, Tools
from ._workflow_spec import WorkflowSpec

WORKFLOW_SUFFIXES = (".yaml", ".yml")


class Project:
    """Agents (a registry), tools and workflow folders, with the loading that uses them.

    ```python
    project = Project(agent_dirs=["agents", "../shared/agents"], tools=[lookup_order])
    triage = project.load_workflow("workflows/support_triage.yaml")
    ```

    `database` (a URL or a `SqlDatabase`) is what the built-in tools `sql.schema` and
    `sql.query` read; without one they say how to configure it when called.
    """

    def __init__(
        self,
        root: Path | str = ".",
        *,
        agent_dirs: Sequence[Path | str] | None = None,
        workflow_dirs: Sequence[Path | str] | None = None,
        tools: Iterable[Tool] = (),
        registry: AgentRegistry | None = None,
        database: SqlDatabase | str | None = None,
    ) -> None:
        self.root = Path(root)
        if agent_dirs is None:
            # The default folder is optional (a project may define agents only in Python);
            # folders that are asked for must exist, and FolderSource reports them if not.
            default = self.root / "agents"
            agent_dirs = [default] if default.is_dir() else []
        self.registry = registry or AgentRegistry(FolderSource(Path(f)) for f in agent_dirs)
        self.workflow_dirs = [
            Path(f)
            for f in (workflow_dirs if workflow_dirs is not None else [self.root / "workflows"])
        ]
        self.database = SqlDatabase(database) if isinstance(database, str) else database
        self.tools = Tools([*BUILTIN_TOOLS, *sql_tools(self.database), *tools])
        self._workflows: dict[Path, CompiledWorkflow] = {}
        self._loading: list[Path] = []

    @staticmethod
    def tools_from_modules(modules: Iterable[str]) -> list[Tool]:
        """Import each module by dotted name and collect the tools defined in it."""
        found: list[Tool] = []
        for name in modules:
            try:
                module = importlib.import_module(name)
            except MicroagentsError as exc:
                raise MicroagentsError(f"tools module '{name}': {exc}") from None
            except Exception as exc:  # the user's module failed on import: say where, not "bug"
                raise MicroagentsError(
                    f"cannot import tools module '{name}': {type(exc).__name__}: {exc}; check "
                    "that it is importable (in the working folder, on PYTHONPATH, or installed)"
                ) from None
            found.extend(Tools.from_module(module).values())
        return found

    def load_agent(self, path: Path | str) -> CompiledAgent:
        """Load and compile one agent file, checking its tools against the project's."""
        return self.compile_agent(load_agent_spec(Path(path)))

    def compile_agent(self, sourced: Sourced[AgentSpec]) -> CompiledAgent:
        """Compile an agent spec, checking its tools against the project's."""
        agent = compile_agent(sourced)
        problems = agent_tool_problems(agent, self.tools)
        if problems:
            raise SpecError(problems)
        return agent

    def load_workflow(self, path: Path | str) -> CompiledWorkflow:
        """Load, compile and check one workflow file (sub-workflows included)."""
        resolved = Path(path).resolve()
        cached = self._workflows.get(resolved)
        if cached is not None:
            return cached
        if resolved in self._loading:
            chain = " → ".join(p.name for p in [*self._loading, resolved])
            raise MicroagentsError(f"sub-workflows include each other in a loop: {chain}")
        self._loading.append(resolved)
        try:
            sourced = load_workflow_spec(Path(path))
            compiled = self.compile(sourced.spec, sourced.source)
        finally:
            self._loading.pop()
        self._workflows[resolved] = compiled
        return compiled

    def compile(self, spec: WorkflowSpec, source: Source | None = None) -> CompiledWorkflow:
        """Compile a workflow spec (from YAML or from the Python builder)."""
        return compile_workflow(
            spec,
            source or Source(),
            agents=self.registry,
            tools=self.tools,
            load_subworkflow=self._load_subworkflow,
        )

    def _load_subworkflow(self, reference: str, parent: Source) -> CompiledWorkflow:
        for candidate in self._candidates(reference, parent):
            if candidate.is_file():
                return self.load_workflow(candidate)
        folders = ", ".join(dict.fromkeys(str(f) for f in [parent.folder, *self.workflow_dirs]))
        raise MicroagentsError(
            f"no workflow '{reference}' in {folders}; give a path relative to this file "
            "or the name of a workflow file there"
        )

    def _candidates(self, reference: str, parent: Source) -> list[Path]:
        if reference.endswith(WORKFLOW_SUFFIXES):
            return [parent.folder / reference]
        return [
            folder / f"{reference}{suffix}"
            for folder in [parent.folder, *self.workflow_dirs]
            for suffix in WORKFLOW_SUFFIXES
        ]

    def problems(self) -> list[Problem]:
        """Problems in the agent sources (broken files that the registry skipped)."""
        return self.registry.problems()


def spec_files(paths: Iterable[Path]) -> list[Path]:
    """The YAML files named, and those under the folders named, in a stable order."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(
                sorted(
                    p
                    for p in path.rglob("*")
                    if p.suffix in WORKFLOW_SUFFIXES
                    and not any(part.startswith(".") for part in p.relative_to(path).parts)
                )
            )
        elif path.exists():
            found.append(path)
        else:
            raise SpecError([Problem("MA101", "no such file or folder", Location(path))])
    return found
