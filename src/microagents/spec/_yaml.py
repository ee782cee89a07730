"""Safe YAML loading that remembers where every value came from.

PyYAML's safe composer gives us nodes with line and column marks; we build the plain Python
data ourselves so that we can (a) record a source map from field path to location, (b) refuse
duplicate keys, which PyYAML silently overwrites, and (c) bound alias expansion so that a
"billion laughs" document is refused instead of eating the machine. Files are size-checked and
decoded before parsing, so a 50 MB or binary file is refused in microseconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..errors import Location, Problem, SpecError

MAX_SPEC_BYTES = 1024 * 1024
"""Spec files larger than this are refused unread: no agent or workflow needs a megabyte."""

MAX_EXPANDED_NODES = 100_000
"""Aliases may reuse parts of a document, but not expand it past this many nodes."""

FieldPath = tuple[str | int, ...]

try:  # the C composer is ~10x faster; fall back to pure Python where libyaml is absent
    _Loader: type[yaml.SafeLoader] = yaml.CSafeLoader  # type: ignore[assignment,unused-ignore]
except AttributeError:  # pragma: no cover - depends on the platform's PyYAML wheel
    _Loader = yaml.SafeLoader

_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True, slots=True)
class SourceMap:
    """Locations of the keys and items of one YAML document, by field path."""

    file: Path | None
    marks: dict[FieldPath, tuple[int, int]]

    def locate(self, path: FieldPath) -> Location:
        """The location of `path`, or of its nearest ancestor that has one."""
        for end in range(len(path), -1, -1):
            mark = self.marks.get(tuple(path[:end]))
            if mark is not None:
                return Location(self.file, mark[0], mark[1])
        return Location(self.file)


@dataclass(frozen=True, slots=True)
class LoadedYaml:
    """A parsed document with its source map."""

    data: Any
    source_map: SourceMap


def read_spec_text(path: Path) -> str:
    """Read a spec or template file, refusing what is too large, binary or not UTF-8."""
    location = Location(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise SpecError([Problem("MA101", f"cannot read file: {exc.strerror}", location)]) from None
    if size > MAX_SPEC_BYTES:
        raise SpecError(
            [
                Problem(
                    "MA102",
                    f"file is {size:,} bytes; spec files are limited to {MAX_SPEC_BYTES:,} bytes. "
                    "Is this the right file?",
                    Location(path, 1),
                )
            ]
        )
    raw = path.read_bytes()
    nul = raw.find(b"\x00")
    if nul >= 0:
        line = raw[:nul].count(b"\n") + 1
        raise SpecError(
            [
                Problem(
                    "MA103",
                    "file is binary (contains NUL bytes), not YAML text",
                    Location(path, line),
                )
            ]
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise SpecError(
            [
                Problem(
                    "MA103",
                    "file is not UTF-8 text; save it as UTF-8",
                    Location(path, line),
                )
            ]
        ) from None


def load_yaml_file(path: Path) -> LoadedYaml:
    """Load one YAML document from `path` (see `load_yaml`)."""
    return load_yaml(read_spec_text(path), path)


def load_yaml(text: str, file: Path | None = None) -> LoadedYaml:
    """Parse one YAML document safely into plain data plus a source map.

    Raises `SpecError` for syntax errors, tabs used as indentation, duplicate keys, more than
    one document, an empty document and alias bombs.
    """
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        raise SpecError([_syntax_problem(exc, text, file)]) from None
    except yaml.YAMLError as exc:  # pragma: no cover - composer errors are always marked
        raise SpecError([Problem("MA110", f"invalid YAML: {exc}", Location(file))]) from None
    if node is None:
        raise SpecError(
            [Problem("MA104", "file is empty; write the spec as a YAML mapping", Location(file, 1))]
        )
    builder = _Builder(file)
    data = builder.build(node, ())
    if builder.problems:
        raise SpecError(builder.problems)
    return LoadedYaml(data, SourceMap(file, builder.marks))


def _syntax_problem(exc: yaml.MarkedYAMLError, text: str, file: Path | None) -> Problem:
    # An unclosed bracket is reported where parsing gave up; the bracket itself is the
    # context mark, which is where the user has to look.
    unclosed = (exc.context or "").startswith("while parsing a flow")
    mark = (exc.context_mark if unclosed else None) or exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark else None
    column = mark.column + 1 if mark else None
    problem = exc.problem or "invalid YAML"
    if "'\\t'" in problem or "\t" in _line_text(text, line):
        return Problem(
            "MA105",
            "a tab character is used for indentation; YAML allows only spaces there",
            Location(file, line, column),
        )
    if "expected a single document" in (exc.context or ""):
        return Problem(
            "MA106",
            "file holds more than one YAML document ('---'); put one spec per file",
            Location(file, line, column),
        )
    detail = f"{exc.context}, {problem}" if exc.context else problem
    return Problem(
        "MA110",
        f"invalid YAML: {detail}; check the quoting and indentation here",
        Location(file, line, column),
    )


def _line_text(text: str, line: int | None) -> str:
    if line is None:
        return ""
    lines = text.splitlines()
    return lines[line - 1] if 0 < line <= len(lines) else ""


class _Builder:
    """Turns composed nodes into plain data, recording marks and refusing what YAML allows but
    a spec must not contain."""

    def __init__(self, file: Path | None) -> None:
        self.file = file
        self.marks: dict[FieldPath, tuple[int, int]] = {}
        self.problems: list[Problem] = []
        self._constructor = yaml.SafeLoader("")
        self._expanded = 0

    def build(self, node: yaml.Node, path: FieldPath) -> Any:
        self._expanded += 1
        if self._expanded > MAX_EXPANDED_NODES:
            # The node is the anchored one; the place to fix is the alias use, under the
            # top-level key being built.
            where = SourceMap(self.file, self.marks).locate(path[:1])
            raise SpecError(
                [
                    Problem(
                        "MA107",
                        f"aliases expand this document past {MAX_EXPANDED_NODES:,} values "
                        "(a 'billion laughs' document?); write the values out or use fewer aliases",
                        where,
                        format_path(path[:1]),
                    )
                ]
            )
        self.marks.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, index)) for index, item in enumerate(node.value)]
        return self._constructor.construct_object(node, deep=True)

    def _mapping(self, node: yaml.MappingNode, path: FieldPath) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        merged: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merged.update(self._merge_source(value_node, path))
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self._problem("MA108", "mapping keys must be plain strings", key_node, path)
                continue
            # Keys are field names: keep their text, so that YAML 1.1 does not turn `on:`
            # (an escalation field) into True or `1.0:` into a float.
            key = str(key_node.value)
            child = (*path, key)
            if key in result:
                first = self.marks[child]
                self._problem(
                    "MA109",
                    f"duplicate key '{key}' (first defined on line {first[0]}); remove one of them",
                    key_node,
                    child,
                )
                continue
            self.marks[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            result[key] = self.build(value_node, child)
        for key, value in merged.items():
            result.setdefault(key, value)
        return result

    def _merge_source(self, node: yaml.Node, path: FieldPath) -> dict[Any, Any]:
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        merged: dict[Any, Any] = {}
        for source in sources:
            if not isinstance(source, yaml.MappingNode):
                self._problem("MA108", "'<<' merges only mappings", source, path)
                continue
            for key, value in self._mapping(source, path).items():
                merged.setdefault(key, value)
        return merged

    def _problem(self, code: str, message: str, node: yaml.Node, path: FieldPath) -> None:
        mark = node.start_mark
        self.problems.append(
            Problem(
                code,
                message,
                Location(self.file, mark.line + 1, mark.column + 1),
                format_path(path),
            )
        )


def format_path(path: FieldPath) -> str:
    """`('nodes', 'route', 'input', 0)` → `nodes.route.input[0]`."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text
