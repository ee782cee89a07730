"""Finding agents by reference (``name`` or ``name@range``) in an ordered list of sources.

A source is anything that can list agent specs; the registry asks its sources in order and the
first that has a name wins. Folders and in-memory specs are the sources today; entry points and
git repositories are further `AgentSource` implementations, with no change to callers.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ._agent import CompiledAgent, compile_agent
from ._agent_spec import AgentSpec
from ._errors import MicroagentsError, Problem, SpecError, suggest
from ._loading import Source, Sourced, load_agent_spec
from ._version import Reference, Version, VersionError

SPEC_SUFFIXES = (".yaml", ".yml")


class ResolutionError(MicroagentsError):
    """A reference names no agent, or no version in its range."""


@dataclass(frozen=True, slots=True)
class AgentEntry:
    """One agent version offered by a source."""

    name: str
    version: Version
    sourced: Sourced[AgentSpec]
    source_name: str


class AgentSource(Protocol):
    """Something that offers agent specs: a folder, a package, a repository."""

    name: str

    def entries(self) -> Iterable[AgentEntry]:
        """Every agent version this source offers."""
        ...

    def problems(self) -> list[Problem]:
        """Specs in this source that failed to load (the others still resolve)."""
        ...


@dataclass
class FolderSource:
    """Agent YAML files under a folder (recursively); a broken file is reported, not fatal."""

    path: Path
    name: str = ""
    _entries: list[AgentEntry] | None = field(default=None, init=False, repr=False)
    _problems: list[Problem] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        self.name = self.name or str(self.path)

    def entries(self) -> Iterable[AgentEntry]:
        if self._entries is None:
            self._entries = list(self._scan())
        return self._entries

    def problems(self) -> list[Problem]:
        self.entries()
        return self._problems

    def _scan(self) -> Iterator[AgentEntry]:
        if not self.path.is_dir():
            self._problems.append(
                Problem(
                    "MA301", f"agent folder '{self.path}' does not exist; create it or fix the path"
                )
            )
            return
        files = sorted(
            p
            for p in self.path.rglob("*")
            if p.suffix in SPEC_SUFFIXES
            and not any(part.startswith(".") for part in p.relative_to(self.path).parts)
        )
        seen: dict[tuple[str, str], Path] = {}
        for file in files:
            try:
                sourced = load_agent_spec(file)
            except SpecError as exc:
                self._problems.extend(exc.problems)
                continue
            key = (sourced.spec.name, sourced.spec.version)
            if key in seen:
                self._problems.append(
                    Problem(
                        "MA307",
                        f"{key[0]}@{key[1]} is also defined in {seen[key]}; a version is "
                        "published once: bump the version of one of them",
                        sourced.source.locate("version"),
                        "version",
                    )
                )
                continue
            seen[key] = file
            yield AgentEntry(key[0], Version.parse(key[1]), sourced, self.name)


@dataclass
class SpecSource:
    """Agents built in Python."""

    specs: list[AgentSpec]
    name: str = "python"

    def entries(self) -> Iterable[AgentEntry]:
        for spec in self.specs:
            yield AgentEntry(
                spec.name, Version.parse(spec.version), Sourced(spec, Source()), self.name
            )

    def problems(self) -> list[Problem]:
        return []


class AgentRegistry:
    """Resolves agent references against ordered sources, compiling each agent once."""

    def __init__(self, sources: Iterable[AgentSource]) -> None:
        self.sources = list(sources)
        self._compiled: dict[tuple[str, Version, str], CompiledAgent] = {}

    @classmethod
    def from_folders(cls, *folders: Path | str) -> AgentRegistry:
        return cls(FolderSource(Path(folder)) for folder in folders)

    def with_specs(self, specs: Iterable[AgentSpec]) -> AgentRegistry:
        """A registry that finds `specs` first, then this registry's sources."""
        specs = list(specs)
        return AgentRegistry([SpecSource(specs), *self.sources]) if specs else self

    def entries(self) -> list[AgentEntry]:
        """Every agent version, in source order; a name provided by an earlier source hides
        the same name in later ones."""
        owner: dict[str, str] = {}
        found: list[AgentEntry] = []
        for source in self.sources:
            for entry in source.entries():
                if owner.setdefault(entry.name, source.name) == source.name:
                    found.append(entry)
        return found

    def problems(self) -> list[Problem]:
        return [problem for source in self.sources for problem in source.problems()]

    def resolve(self, reference: str) -> CompiledAgent:
        """The agent for ``name`` or ``name@range``: the highest version in range."""
        try:
            parsed = Reference.parse(reference)
        except VersionError as exc:
            raise ResolutionError(str(exc)) from None
        candidates = [e for e in self.entries() if e.name == parsed.name]
        if not candidates:
            hint = suggest(parsed.name, sorted({e.name for e in self.entries()}), "agents")
            broken = sorted({str(p.location.file) for p in self.problems() if p.location.file})
            if broken:
                # The agent may be in a file that failed to load: say so rather than guess.
                hint += f"; these agent files failed to load: {', '.join(broken)}"
            raise ResolutionError(f"unknown agent '{parsed.name}'; {hint}")
        best = parsed.range.best([e.version for e in candidates])
        if best is None:
            versions = ", ".join(str(v) for v in sorted({e.version for e in candidates}))
            raise ResolutionError(
                f"no version of agent '{parsed.name}' matches '{parsed.range}'; "
                f"available: {versions}"
            )
        entry = next(e for e in candidates if e.version == best)
        key = (entry.name, entry.version, entry.source_name)
        if key not in self._compiled:
            self._compiled[key] = compile_agent(entry.sourced)
        return self._compiled[key]
