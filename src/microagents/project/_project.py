"""A project: where its agents, tools and workflows come from, and loading workflows with them.

A `Project` is passed explicitly (no global state): the CLI builds one from its options, and
Python code builds one or uses the default for the current folder.
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from pathlib import Path

from ..errors import Location, MicroagentsError, Problem, ResolutionError, SpecError
from ..graph._agent import CompiledAgent, compile_agent
from ..graph._builtin_tools import BUILTIN_TOOLS
from ..graph._compiled import CompiledWorkflow
from ..graph._compiler import agent_tool_problems, compile_workflow
from ..graph._tools import Tool, Tools
from ..mcp._client import McpServers
from ..mcp._config import configured_mcp_servers
from ..mcp._tools import Discovery, discover
from ..registry._config import SourceSpec, configured_sources, make_source
from ..registry._lock import LOCK_FILE, Lock
from ..registry._registry import AgentRegistry, AgentSource, FolderSource, spec_files_under
from ..spec._agent_spec import AgentSpec
from ..spec._loading import Source, Sourced, load_agent_spec, load_workflow_spec
from ..spec._mcp_spec import McpServerSpec
from ..spec._workflow_spec import WorkflowSpec
from ..sql._tools import SqlDatabase, sql_tools

WORKFLOW_SUFFIXES = (".yaml", ".yml")


class Project:
    """Agents (a registry), tools and workflow folders, with the loading that uses them.

    ```python
    project = Project(sources=["agents", "git+https://github.com/acme/agents.git@v2"])
    triage = project.load_workflow("workflows/support_triage.yaml")
    ```

    The registry's sources are, in order: `agent_dirs` (folders, as given), else `sources`
    (see `microagents.registry._config`; relative to `root`), else what ``root``'s
    ``microagents.toml``
    or ``pyproject.toml`` configures. When ``root/microagents.lock`` exists (and `use_lock`),
    references resolve to its pinned versions only; a `registry` passed in is used as is.
    `database` (a URL or a `SqlDatabase`) is what the built-in tools `sql.schema` and
    `sql.query` read; without one they say how to configure it when called.
    `mcp_servers` (default: what the project config declares) are MCP servers whose tools
    join `tools` as ``SERVER.TOOL``; they start when the tools are first needed and stop at
    `close` (or the end of a ``with`` block).
    """

    def __init__(
        self,
        root: Path | str = ".",
        *,
        agent_dirs: Sequence[Path | str] | None = None,
        sources: Sequence[SourceSpec | AgentSource] | None = None,
        workflow_dirs: Sequence[Path | str] | None = None,
        tools: Iterable[Tool] = (),
        registry: AgentRegistry | None = None,
        use_lock: bool = True,
        database: SqlDatabase | str | None = None,
        mcp_servers: Mapping[str, McpServerSpec] | None = None,
    ) -> None:
        self.root = Path(root)
        self.lock_path = self.root / LOCK_FILE
        if registry is None:
            registry = AgentRegistry(self._sources(agent_dirs, sources))
            if use_lock and self.lock_path.is_file():
                registry = registry.with_lock(Lock.read(self.lock_path))
        self.registry = registry
        self.workflow_dirs = [
            Path(f)
            for f in (workflow_dirs if workflow_dirs is not None else [self.root / "workflows"])
        ]
        self.database = SqlDatabase(database) if isinstance(database, str) else database
        self._own_tools = [*BUILTIN_TOOLS, *sql_tools(self.database), *tools]
        self.mcp = McpServers(
            configured_mcp_servers(self.root) if mcp_servers is None else mcp_servers,
            root=self.root,
        )
        self._mcp_listed: dict[str, Discovery] = {}
        self._tools: Tools | None = None
        self._workflows: dict[Path, CompiledWorkflow] = {}
        self._loading: list[Path] = []

    def _sources(
        self,
        agent_dirs: Sequence[Path | str] | None,
        sources: Sequence[SourceSpec | AgentSource] | None,
    ) -> list[AgentSource]:
        if agent_dirs is not None:
            return [FolderSource(Path(folder)) for folder in agent_dirs]
        specs = configured_sources(self.root) if sources is None else sources
        made: dict[str, AgentSource] = {}
        for spec in specs:
            source = make_source(spec, self.root) if isinstance(spec, str | Mapping) else spec
            made.setdefault(source.name, source)  # named twice: keeps its first place
        return list(made.values())

    @property
    def tools(self) -> Tools:
        """The tools agents may call: built-in, SQL, Python, and (listed on first use) those
        of the project's MCP servers."""
        if self._tools is None:
            self._tools = self._with_mcp_tools(self.mcp.specs)
        return self._tools

    def _with_mcp_tools(self, servers: Iterable[str]) -> Tools:
        listed = [self._mcp_listed.setdefault(n, discover(self.mcp, [n])) for n in servers]
        return Tools(
            [*self._own_tools, *(t for found in listed for t in found.tools)],
            notes={name: note for found in listed for name, note in found.notes.items()},
        )

    def tool_problems(self) -> list[Problem]:
        """What listing the MCP servers' tools found wrong (a server that could not be
        started, a cached list used instead)."""
        return [p for found in self._mcp_listed.values() for p in found.problems]

    def close(self) -> None:
        """Stop the MCP servers started for this project."""
        self.mcp.close()

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

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
        return self._compile_once(Path(path), lambda: load_workflow_spec(Path(path)))

    def _compile_once(
        self, path: Path, load: Callable[[], Sourced[WorkflowSpec]]
    ) -> CompiledWorkflow:
        resolved = path.resolve()
        cached = self._workflows.get(resolved)
        if cached is not None:
            return cached
        if resolved in self._loading:
            chain = " → ".join(p.name for p in [*self._loading, resolved])
            raise MicroagentsError(f"sub-workflows include each other in a loop: {chain}")
        self._loading.append(resolved)
        try:
            sourced = load()
            compiled = self.compile(sourced.spec, sourced.source)
        finally:
            self._loading.pop()
        self._workflows[resolved] = compiled
        return compiled

    def compile(self, spec: WorkflowSpec, source: Source | None = None) -> CompiledWorkflow:
        """Compile a workflow spec (from YAML or from the Python builder)."""
        tools = self.tools
        if spec.mcp_servers:  # a workflow's own servers join the project's, for its agents
            where = str((source or Source()).file or spec.name)
            for name, server in spec.mcp_servers.items():
                self.mcp.add(name, server, where)
            tools = self._with_mcp_tools([*self.mcp.specs])
        return compile_workflow(
            spec,
            source or Source(),
            agents=self.registry,
            tools=tools,
            load_subworkflow=self._load_subworkflow,
        )

    def _load_subworkflow(self, reference: str, parent: Source) -> CompiledWorkflow:
        """A file beside the parent or in the workflow folders first (a project's own
        workflows), then the registry's published workflows; ``name@range`` is always a
        registry reference."""
        if "@" not in reference:
            for candidate in self._candidates(reference, parent):
                if candidate.is_file():
                    return self.load_workflow(candidate)
        folders = ", ".join(dict.fromkeys(str(f) for f in [parent.folder, *self.workflow_dirs]))
        if reference.endswith(WORKFLOW_SUFFIXES):
            raise MicroagentsError(
                f"no workflow '{reference}' in {folders}; give a path relative to this file "
                "or the name of a workflow file there"
            )
        try:
            entry = self.registry.find_workflow(reference)
        except ResolutionError as exc:
            if "@" in reference or exc.code != "MA303":
                raise
            raise ResolutionError(
                f"no workflow '{reference}' in {folders}, nor published in the registry "
                f"sources ({exc}); give a path relative to this file, the name of a workflow "
                "file there, or a published workflow's name",
                "MA303",
            ) from None
        file = entry.sourced.source.file or Path(entry.name)
        return self._compile_once(file, lambda: entry.sourced)

    def _candidates(self, reference: str, parent: Source) -> list[Path]:
        if reference.endswith(WORKFLOW_SUFFIXES):
            return [parent.folder / reference]
        return [
            folder / f"{reference}{suffix}"
            for folder in [parent.folder, *self.workflow_dirs]
            for suffix in WORKFLOW_SUFFIXES
        ]

    def relock(self, upgrade: Collection[str] | None = None) -> tuple[Lock, Lock]:
        """Pin what the project's workflows use: (the lock as it was, the new lock).

        Pins in the old lock stay where they still satisfy the workflows' references;
        `upgrade` names whose pins move to the newest version in range (empty: every name).
        Nothing is written; a workflow with errors raises `SpecError`.
        """
        old = Lock.read(self.lock_path) if self.lock_path.is_file() else Lock(path=self.lock_path)
        kept = old if upgrade is None else old.without(set(upgrade))
        pinning = copy.copy(self)
        pinning.registry = self.registry.with_lock(kept, strict=False)
        pinning._workflows, pinning._loading = {}, []
        for file in spec_files([d for d in self.workflow_dirs if d.is_dir()]):
            pinning.load_workflow(file)
        return old, Lock(pinning.registry.pins(), self.lock_path)

    def problems(self) -> list[Problem]:
        """Problems in the agent sources (broken files that the registry skipped)."""
        return self.registry.problems()


def spec_files(paths: Iterable[Path]) -> list[Path]:
    """The YAML files named, and those under the folders named, in a stable order."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(spec_files_under(path))
        elif path.exists():
            found.append(path)
        else:
            raise SpecError([Problem("MA101", "no such file or folder", Location(path))])
    return found
