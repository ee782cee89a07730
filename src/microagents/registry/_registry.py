"""Finding agents and workflows by reference (``name`` or ``name@range``) in ordered sources.

A source is anything that can list specs: a folder, a git repository (`GitSource`), the
installed packages that declare the ``microagents.agents`` entry point (`PackageSource`), or
specs built in Python. The registry asks its sources in order and the first that offers a name
wins. With a `Lock`, a reference resolves only to its pinned version, and only while that
version's content still matches its pinned hash.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from ..errors import Problem, RegistryError, ResolutionError, SpecError, VersionError, suggest
from ..graph._agent import CompiledAgent, compile_agent
from ..spec._agent_spec import AgentSpec
from ..spec._loading import Source, Sourced, load_any_spec
from ..spec._semver import Reference, Version
from ..spec._workflow_spec import WorkflowSpec
from ._content_hash import agent_hash, short, workflow_hash
from ._lock import Kind, Lock, Pin

SPEC_SUFFIXES = (".yaml", ".yml")
SpecT = TypeVar("SpecT", AgentSpec, WorkflowSpec)
_UNRESOLVED: dict[Kind, str] = {"agent": "MA301", "workflow": "MA303"}


@dataclass(frozen=True, slots=True)
class Entry(Generic[SpecT]):
    """One agent or workflow version offered by a source, with its content hash."""

    name: str
    version: Version
    sourced: Sourced[SpecT]
    source_name: str
    hash: str


AgentEntry = Entry[AgentSpec]
WorkflowEntry = Entry[WorkflowSpec]


class AgentSource(Protocol):
    """Something that offers agent (and workflow) specs: a folder, a package, a repository."""

    name: str

    def entries(self) -> Iterable[AgentEntry]:
        """Every agent version this source offers."""
        ...

    def workflows(self) -> Iterable[WorkflowEntry]:
        """Every workflow version this source offers (for `workflow:` nodes)."""
        ...

    def problems(self) -> list[Problem]:
        """Specs in this source that failed to load (the others still resolve)."""
        ...


@dataclass
class FolderSource:
    """Agent and workflow YAML files under a folder (recursively), told apart by content.

    A broken file is reported, not fatal; a missing folder is an error, because resolving
    its agents from a later source instead would be a silent surprise.
    """

    path: Path
    name: str = ""
    _agents: list[AgentEntry] | None = field(default=None, init=False, repr=False)
    _workflows: list[WorkflowEntry] = field(default_factory=list, init=False, repr=False)
    _problems: list[Problem] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        self.name = self.name or str(self.path)

    def entries(self) -> Iterable[AgentEntry]:
        if self._agents is None:
            self._agents = []
            self._scan()
        return self._agents

    def workflows(self) -> Iterable[WorkflowEntry]:
        self.entries()
        return self._workflows

    def problems(self) -> list[Problem]:
        self.entries()
        return self._problems

    def _scan(self) -> None:
        if not self.path.is_dir():
            raise RegistryError(
                "MA801", f"agent source '{self.name}': folder {self.path} does not exist; "
                "create it or fix the path in [tool.microagents] sources or --source",
            )  # fmt: skip
        seen: dict[tuple[str, str, str], Path] = {}
        for file in spec_files_under(self.path):
            try:
                kind, sourced = load_any_spec(file)
            except SpecError as exc:
                self._problems.extend(exc.problems)
                continue
            key = (kind, sourced.spec.name, sourced.spec.version)
            if key in seen:
                self._problems.append(
                    Problem(
                        "MA307",
                        f"{key[1]}@{key[2]} is also defined in {seen[key]}; a version is "
                        "published once: bump the version of one of them",
                        sourced.source.locate("version"),
                        "version",
                    )
                )
                continue
            seen[key] = file
            version = Version.parse(sourced.spec.version)
            if isinstance(sourced.spec, WorkflowSpec):
                self._workflows.append(
                    Entry(key[1], version, sourced, self.name, workflow_hash(sourced))
                )
            else:
                assert self._agents is not None
                self._agents.append(Entry(key[1], version, sourced, self.name, agent_hash(sourced)))


def spec_files_under(folder: Path) -> list[Path]:
    """The YAML files under `folder`, skipping hidden files and folders, in a stable order."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.suffix in SPEC_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


@dataclass
class SpecSource:
    """Agents built in Python."""

    specs: list[AgentSpec]
    name: str = "python"

    def entries(self) -> Iterable[AgentEntry]:
        for spec in self.specs:
            sourced = Sourced(spec, Source())
            yield Entry(
                spec.name, Version.parse(spec.version), sourced, self.name, agent_hash(sourced)
            )

    def workflows(self) -> Iterable[WorkflowEntry]:
        return ()

    def problems(self) -> list[Problem]:
        return []


class AgentRegistry:
    """Resolves agent and workflow references against ordered sources, compiling each agent
    once, and remembers what it resolved (which `microagents lock` writes down)."""

    def __init__(
        self,
        sources: Iterable[AgentSource],
        *,
        lock: Lock | None = None,
        strict: bool = True,
        in_code: frozenset[str] = frozenset(),
    ) -> None:
        self.sources = list(sources)
        self.lock = lock
        # Agents built in Python live in the program itself, which version control pins;
        # the lock covers what comes from sources.
        self.in_code = in_code
        # strict: only pinned versions resolve (run, validate); otherwise a pin is preferred
        # but a reference the lock does not cover resolves to the newest version (lock).
        self.strict = strict
        self.resolved: dict[tuple[Kind, str, Version], Entry[AgentSpec] | Entry[WorkflowSpec]] = {}
        self._compiled: dict[tuple[str, Version, str], CompiledAgent] = {}

    @classmethod
    def from_folders(cls, *folders: Path | str) -> AgentRegistry:
        return cls(FolderSource(Path(folder)) for folder in folders)

    def with_specs(self, specs: Iterable[AgentSpec]) -> AgentRegistry:
        """A registry that finds `specs` first, then this registry's sources."""
        specs = list(specs)
        if not specs:
            return self
        return AgentRegistry(
            [SpecSource(specs), *self.sources],
            lock=self.lock,
            strict=self.strict,
            in_code=self.in_code | {spec.name for spec in specs},
        )

    def with_lock(self, lock: Lock | None, *, strict: bool = True) -> AgentRegistry:
        """The same sources, resolving through `lock` (see `strict` in the class)."""
        return AgentRegistry(self.sources, lock=lock, strict=strict, in_code=self.in_code)

    def entries(self) -> list[AgentEntry]:
        """Every agent version, in source order; a name provided by an earlier source hides
        the same name in later ones."""
        return _winners(e for source in self.sources for e in source.entries())

    def workflows(self) -> list[WorkflowEntry]:
        """Every workflow version that sources publish, with the same precedence."""
        return _winners(e for source in self.sources for e in source.workflows())

    def providers(self, name: str) -> list[str]:
        """The sources that offer agent `name`, in order: the first one wins."""
        return list(
            dict.fromkeys(
                e.source_name for source in self.sources for e in source.entries() if e.name == name
            )
        )

    def problems(self) -> list[Problem]:
        return [problem for source in self.sources for problem in source.problems()]

    def resolve(self, reference: str) -> CompiledAgent:
        """The agent for ``name`` or ``name@range``: the highest version in range (or the
        pinned one, with a lock)."""
        entry = self.find(reference)
        key = (entry.name, entry.version, entry.source_name)
        if key not in self._compiled:
            self._compiled[key] = compile_agent(entry.sourced)
        return self._compiled[key]

    def find(self, reference: str) -> AgentEntry:
        """The entry an agent reference resolves to, without compiling it."""
        return self._find("agent", reference, self.entries())

    def find_workflow(self, reference: str) -> WorkflowEntry:
        """The entry a `workflow:` reference resolves to in the sources."""
        return self._find("workflow", reference, self.workflows())

    def pins(self) -> tuple[Pin, ...]:
        """What this registry has resolved so far, as lock file pins."""
        return tuple(
            Pin(kind, e.name, e.version, e.source_name, e.hash)
            for (kind, _, _), e in self.resolved.items()
        )

    def _find(self, kind: Kind, reference: str, offered: list[Entry[SpecT]]) -> Entry[SpecT]:
        try:
            parsed = Reference.parse(reference)
        except VersionError as exc:
            raise ResolutionError(str(exc), _UNRESOLVED[kind]) from None
        candidates = [e for e in offered if e.name == parsed.name]
        entry = self._pinned(kind, parsed, candidates)
        if entry is None:
            if not candidates:
                raise ResolutionError(self._unknown(kind, parsed.name, offered), _UNRESOLVED[kind])
            best = parsed.range.best([e.version for e in candidates])
            if best is None:
                versions = ", ".join(str(v) for v in sorted({e.version for e in candidates}))
                raise ResolutionError(
                    f"no version of {kind} '{parsed.name}' matches '{parsed.range}'; "
                    f"available: {versions}",
                    _UNRESOLVED[kind],
                )
            entry = next(e for e in candidates if e.version == best)
        if entry.name not in self.in_code:
            self.resolved[(kind, entry.name, entry.version)] = entry
        return entry

    def _pinned(
        self, kind: Kind, parsed: Reference, candidates: list[Entry[SpecT]]
    ) -> Entry[SpecT] | None:
        """The pinned entry for a reference; None when there is no lock, or a lenient lock
        does not pin it."""
        if self.lock is None or parsed.name in self.in_code:
            return None
        pins = self.lock.pinned(kind, parsed.name)
        best = parsed.range.best([p.version for p in pins])
        if best is None:
            if not self.strict or not candidates:
                return None  # a name no source offers is "unknown", said with suggestions
            pinned = ", ".join(p.reference for p in pins) or f"no version of '{parsed.name}'"
            raise ResolutionError(
                f"{kind} '{parsed}' is not pinned in {self.lock.path} (it pins {pinned}); "
                "run `microagents lock` to pin it",
                "MA808",
            )
        pin = next(p for p in pins if p.version == best)
        entry = next((e for e in candidates if e.version == pin.version), None)
        if entry is None:
            offered = ", ".join(str(e.version) for e in candidates) or "none"
            owner = candidates[0].source_name if candidates else "no source"
            raise ResolutionError(
                f"{self.lock.path} pins {kind} {pin.reference} from {pin.source}, but "
                f"{owner} offers versions: {offered}; restore that version in its source, or "
                f"move the pin with `microagents lock --upgrade {parsed.name}`",
                "MA807",
            )
        if entry.hash != pin.hash:
            raise ResolutionError(
                f"{kind} {pin.reference} from {entry.source_name} does not match "
                f"{self.lock.path}: pinned {short(pin.hash)}, found {short(entry.hash)}. "
                "Someone changed a published version: publish changes under a new version, "
                f"or accept this content with `microagents lock --upgrade {parsed.name}`",
                "MA806",
            )
        return entry

    def _unknown(self, kind: Kind, name: str, offered: list[Entry[SpecT]]) -> str:
        hint = suggest(name, sorted({e.name for e in offered}), f"{kind}s")
        broken = sorted({str(p.location.file) for p in self.problems() if p.location.file})
        if broken:
            # It may be in a file that failed to load: say so rather than guess.
            hint += f"; these {kind} files failed to load: {', '.join(broken)}"
        return f"unknown {kind} '{name}'; {hint}"


def _winners(entries: Iterable[Entry[SpecT]]) -> list[Entry[SpecT]]:
    """Keep each name's entries from the first source that offers it."""
    owner: dict[str, str] = {}
    return [e for e in entries if owner.setdefault(e.name, e.source_name) == e.source_name]
