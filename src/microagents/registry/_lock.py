"""The lock file: the exact version, source and content hash of everything a project uses.

`microagents lock` writes ``microagents.lock`` (TOML, like Cargo.lock or uv.lock, so that a
review diff reads well); `run` and `validate` resolve references to the pinned versions only
and refuse content that no longer matches its pin. The file carries a format number: a
microagents that finds a newer format says so instead of guessing.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from ..errors import RegistryError, VersionError
from ..spec._semver import Version
from ._content_hash import HASH_PREFIX, short

LOCK_FILE = "microagents.lock"
LOCK_FORMAT = 1
"""Bump when the file's meaning changes; older readers then refuse it (MA805)."""

Kind = Literal["agent", "workflow"]
_TABLES: dict[Kind, str] = {"agent": "agent", "workflow": "workflow"}
_HEADER = (
    "# Written by `microagents lock`: the exact version, source and content hash of every\n"
    "# agent and workflow this project's workflows use. Commit it; do not edit it by hand.\n"
    "# Move pins on purpose with `microagents lock --upgrade [NAME]`.\n"
)


@dataclass(frozen=True, slots=True)
class Pin:
    """One pinned agent or workflow version."""

    kind: Kind
    name: str
    version: Version
    source: str
    hash: str

    @property
    def reference(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass(frozen=True, slots=True)
class Lock:
    """The pins of a project, read from or written to its lock file."""

    pins: tuple[Pin, ...] = ()
    path: Path = Path(LOCK_FILE)

    def pinned(self, kind: Kind, name: str) -> list[Pin]:
        return [p for p in self.pins if p.kind == kind and p.name == name]

    def without(self, names: set[str]) -> Lock:
        """This lock minus the pins of `names` (all of them when `names` is empty)."""
        kept = tuple(p for p in self.pins if names and p.name not in names)
        return replace(self, pins=kept)

    @classmethod
    def read(cls, path: Path) -> Lock:
        """Read a lock file; a corrupt file or a newer format is a `RegistryError`."""
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise _corrupt(path, f"cannot be read ({exc})") from None
        except tomllib.TOMLDecodeError as exc:
            raise _corrupt(path, f"is not valid TOML: {exc}") from None
        found = data.get("format")
        if not isinstance(found, int) or isinstance(found, bool):
            raise _corrupt(path, "has no `format = N` line")
        if found > LOCK_FORMAT:
            raise RegistryError(
                "MA805",
                f"{path} was written by a newer microagents (lock format {found}; this one "
                f"reads format {LOCK_FORMAT}): upgrade microagents",
            )
        pins: list[Pin] = []
        for kind, table in _TABLES.items():
            rows = data.get(table, [])
            if not isinstance(rows, list):
                raise _corrupt(path, f"`{table}` must be an array of tables ([[{table}]])")
            pins.extend(_pin(kind, row, path, index) for index, row in enumerate(rows))
        return cls(tuple(pins), path)

    def dumps(self) -> str:
        """The file's text: pins sorted, so that relocking an unchanged project is a no-op."""
        lines = [_HEADER, f"format = {LOCK_FORMAT}\n"]
        for pin in sorted(self.pins, key=lambda p: (p.kind, p.name, p.version)):
            lines.append(f"\n[[{_TABLES[pin.kind]}]]\n")
            for key in ("name", "version", "source", "hash"):
                # A JSON string is a valid TOML basic string.
                lines.append(f"{key} = {json.dumps(str(getattr(pin, key)))}\n")
        return "".join(lines)

    def write(self) -> None:
        temporary = self.path.with_name(self.path.name + ".tmp")
        temporary.write_text(self.dumps(), encoding="utf-8")
        temporary.replace(self.path)  # never leave a half-written lock behind


def lock_changes(old: Lock, new: Lock) -> list[str]:
    """What moved between two locks, one line each, for `microagents lock` to print."""
    before = {(p.kind, p.name): p for p in old.pins}
    after = {(p.kind, p.name): p for p in new.pins}
    changes: list[str] = []
    for key in sorted(before.keys() | after.keys()):
        was, now = before.get(key), after.get(key)
        kind = key[0]
        if was is None and now is not None:
            changes.append(f"added    {kind} {now.reference} from {now.source}")
        elif now is None and was is not None:
            changes.append(f"removed  {kind} {was.reference} (no workflow uses it)")
        elif was is not None and now is not None and was != now:
            if was.version != now.version:
                what = f"{was.version} → {now.version}"
            elif was.hash != now.hash:
                what = f"{now.version}: content {short(was.hash)} → {short(now.hash)}"
            else:
                what = f"{now.version}: source {was.source} → {now.source}"
            changes.append(f"upgraded {kind} {now.name} {what}")
    return changes


def _pin(kind: Kind, row: Any, path: Path, index: int) -> Pin:
    where = f"[[{_TABLES[kind]}]] number {index + 1}"
    if not isinstance(row, dict):
        raise _corrupt(path, f"{where} is not a table")
    values: dict[str, str] = {}
    for key in ("name", "version", "source", "hash"):
        value = row.get(key)
        if not isinstance(value, str) or not value:
            raise _corrupt(path, f"{where} has no `{key}` string")
        values[key] = value
    if not values["hash"].startswith(HASH_PREFIX):
        raise _corrupt(path, f"{where}: hash must start with '{HASH_PREFIX}'")
    try:
        version = Version.parse(values["version"])
    except VersionError as exc:
        raise _corrupt(path, f"{where}: {exc}") from None
    return Pin(kind, values["name"], version, values["source"], values["hash"])


def _corrupt(path: Path, what: str) -> RegistryError:
    return RegistryError(
        "MA804",
        f"lock file {path} {what}; restore it from version control, or delete it and run "
        "`microagents lock` to pin the current versions again",
    )
