"""A corpus of broken spec files and the exact error text `microagents validate` prints for each.

Every file in ``tests/broken/cases/`` is broken in one way (its first line says how). The CLI
must refuse each one with exit code 2 and one line per problem that starts with FILE:LINE (or
FILE:LINE:COL), carries a stable ``MA1xx``/``MA2xx``/``MA3xx`` code, and never a traceback.
The full stderr is pinned by a syrupy snapshot, and `EXPECTED` records, for each case, the
problems a person reading the file would point at: code, line and field.

Workflows in the corpus use the valid helper agents in ``tests/broken/agents/``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest
from syrupy.assertion import SnapshotAssertion

from microagents.cli import main

ROOT = Path(__file__).resolve().parent.parent
BROKEN = Path("tests/broken")
AGENTS = BROKEN / "agents"
CASES = BROKEN / "cases"
CASE_FILES = sorted((ROOT / CASES).glob("*.yaml"))

EXIT_BAD_INPUT = 2
FIFTY_MB = 50 * 1024 * 1024
CONSOLE_SCRIPT = Path(sys.executable).parent / "microagents"

PROBLEM_LINE = re.compile(
    r"^(?P<file>[^\s:][^:]*):(?P<line>\d+)(?::(?P<column>\d+))?: "
    r"(?P<severity>error|warning) (?P<code>MA[123]\d\d): (?P<rest>.+)$"
)
FIELD = re.compile(r"^(?P<field>[A-Za-z_$][\w$./\-\[\]]*): ")


class Want(NamedTuple):
    """A problem the CLI must report: its code, the line it points at and the field it names.

    `field` None means "not checked" (loading errors have no field); `file` defaults to the
    case file itself (a prompt template's syntax error points into the .j2 file).
    """

    code: str
    line: int
    field: str | None = None
    file: str | None = None


EXPECTED: dict[str, list[Want]] = {
    # -- loading: size, encoding, YAML syntax (MA1xx) ------------------------------------------
    "agent_binary_file": [Want("MA103", 2)],  # the line of the first NUL byte
    "agent_duplicate_key": [Want("MA109", 6, "description")],
    "agent_empty_file": [Want("MA104", 1)],
    "agent_malformed_yaml_unclosed_bracket": [Want("MA110", 6)],  # where the '{' is opened
    "agent_multiple_documents": [Want("MA106", 8)],
    "agent_not_utf8": [Want("MA103", 4)],
    "agent_tab_indented": [Want("MA105", 7)],
    "agent_top_level_list": [Want("MA111", 2)],
    "agent_yaml_bomb": [Want("MA107", 6)],  # key `e`: its aliases push past the limit
    "workflow_malformed_yaml_bad_indentation": [Want("MA110", 11)],
    # -- agent spec fields (MA2xx) --------------------------------------------------------------
    "agent_bad_name": [Want("MA204", 2, "name")],
    "agent_escalation_ladder_mismatch": [Want("MA216", 7, "escalation.ladder")],
    "agent_example_missing_field": [
        Want("MA214", 9, "examples[0].input.text"),
        Want("MA214", 10, "examples[0].output.words"),
    ],
    "agent_example_violates_schema": [Want("MA214", 19, "examples[1].output.category")],
    "agent_low_confidence_without_threshold": [Want("MA205", 5, "escalation")],
    "agent_missing_required_field": [Want("MA201", 2, "output")],
    "agent_prompt_file_missing": [Want("MA211", 5, "prompt")],
    "agent_prompt_file_syntax_error": [
        Want("MA212", 3, "prompt", file="agent_prompt_file_syntax_error.j2")
    ],
    "agent_prompt_includes_another_template": [
        Want("MA212", 3, "prompt", file="agent_prompt_includes_another_template.j2")
    ],
    "agent_prompt_syntax_error_inline": [Want("MA212", 5, "prompt")],
    "agent_unknown_field_typo": [Want("MA202", 6, "escalaton")],
    "agent_unknown_trigger": [Want("MA204", 7, "escalation.on[1]")],
    "agent_unsupported_schema_keyword": [
        Want("MA213", 12, "input.properties.metadata.patternProperties")
    ],
    "agent_version_bare_number": [Want("MA205", 3, "version")],
    "agent_version_not_semver": [Want("MA205", 3, "version")],
    "agent_output_not_object": [Want("MA213", 7, "output")],
    "agent_unknown_tool": [Want("MA302", 5, "tools[0]")],  # the code is the fix's choice
    "agent_wrong_type": [Want("MA203", 6, "max_tokens"), Want("MA203", 7, "tools")],
    # -- workflow spec fields (MA2xx) -----------------------------------------------------------
    "workflow_bad_node_id": [Want("MA204", 10, "nodes.route-ticket")],
    "workflow_map_edge_without_into": [Want("MA205", 17, "edges[0]")],
    "workflow_no_nodes": [Want("MA204", 9, "nodes")],
    "workflow_node_agent_and_tool": [Want("MA205", 10, "nodes.route")],
    "workflow_node_without_kind": [Want("MA205", 10, "nodes.route")],
    "workflow_unknown_edge_field": [Want("MA202", 18, "edges[1].max_visit")],
    "workflow_max_visits_zero": [Want("MA204", 18, "edges[1].max_visits")],
    # The first unsupported keyword, as for agents (the code is the fix's choice).
    "workflow_input_schema_unsupported_keyword": [Want("MA213", 8, "input.patternProperties")],
    # -- graph checks (MA3xx) -------------------------------------------------------------------
    "workflow_edge_unknown_node": [Want("MA311", 17, "edges[0].to")],
    "workflow_entry_unknown_node": [Want("MA311", 9, "entry")],
    "workflow_expression_does_not_parse": [Want("MA310", 12, "nodes.route.input.text")],
    "workflow_expression_unknown_name": [Want("MA316", 12, "nodes.route.input.text")],
    "workflow_input_type_mismatch": [Want("MA322", 17, "nodes.check.input.record")],
    "workflow_input_type_mismatch_literal": [Want("MA322", 12, "nodes.extract.input.fields")],
    "workflow_missing_required_input": [Want("MA320", 12, "nodes.extract.input")],
    "workflow_node_cannot_reach_output": [Want("MA326", 13, "nodes.extract")],
    "workflow_node_input_not_declared": [Want("MA321", 12, "nodes.route.input.txt")],
    "workflow_reads_node_not_yet_run": [Want("MA318", 12, "nodes.route.input.text")],
    "workflow_switch_case_not_in_enum": [Want("MA324", 20, "edges[0].cases.sales")],
    "workflow_switch_unknown_field": [Want("MA319", 17, "edges[0].switch")],
    "workflow_unbounded_cycle": [Want("MA312", 18, "edges[1]")],
    "workflow_unknown_agent": [Want("MA301", 11, "nodes.route.agent")],
    "workflow_unknown_output_field": [Want("MA319", 17, "edges[0].when")],
    "workflow_unknown_tool": [Want("MA302", 14, "nodes.review.tool")],
    "workflow_unknown_workflow_input_field": [Want("MA319", 12, "nodes.route.input.text")],
    "workflow_unreachable_node": [Want("MA314", 13, "nodes.check")],
    "workflow_unsafe_expression_class": [Want("MA310", 12, "nodes.route.input.text")],
    "workflow_unsafe_expression_in_when": [Want("MA310", 17, "edges[0].when")],
    "workflow_unsafe_expression_init": [Want("MA310", 12, "nodes.route.input.text")],
    "workflow_version_range_malformed": [Want("MA301", 11, "nodes.route.agent")],
    "workflow_version_range_no_match": [Want("MA301", 11, "nodes.route.agent")],
    "workflow_when_does_not_parse": [Want("MA310", 17, "edges[0].when")],
    "workflow_unsafe_expression_attr_filter": [Want("MA310", 12, "nodes.route.input.text")],
    "workflow_unsafe_expression_computed_key": [Want("MA310", 16, "nodes.check.input.source")],
    "workflow_unknown_filter": [Want("MA310", 12, "nodes.route.input.text")],
}


def _case_params() -> list[object]:
    return [pytest.param(path, id=path.stem) for path in CASE_FILES]


def _validate(
    capsys: pytest.CaptureFixture[str], target: Path, agents: Path = AGENTS
) -> tuple[int, str, str]:
    """Run `microagents validate` in-process; return its exit code, stdout and stderr."""
    with pytest.raises(SystemExit) as exit_info:
        main(["validate", "--agents", str(agents), str(target)])
    captured = capsys.readouterr()
    code = exit_info.value.code
    return code if isinstance(code, int) else -1, captured.out, captured.err


def _problem_lines(stderr: str, target: Path) -> list[str]:
    """stderr without its last line, `invalid  FILE`, which closes a file's report."""
    lines = stderr.splitlines()
    assert lines, "nothing on stderr"
    assert lines[-1] == f"invalid  {target}"
    return lines[:-1]


@pytest.fixture(autouse=True)
def _at_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    # Paths in messages are relative to the working directory: keep them stable.
    monkeypatch.chdir(ROOT)


def _relative(path: Path) -> Path:
    return path.relative_to(ROOT)


# -- the corpus --------------------------------------------------------------------------------


def test_corpus_is_complete() -> None:
    names = {path.stem for path in CASE_FILES}
    assert len(names) >= 26
    assert names == set(EXPECTED), "every case needs an EXPECTED entry, and only cases do"
    for path in CASE_FILES:
        assert path.stem.startswith(("agent_", "workflow_")), path.name


def test_helper_agents_are_valid(capsys: pytest.CaptureFixture[str]) -> None:
    """The broken workflows fail for their own reason, never because a helper agent is broken."""
    with pytest.raises(SystemExit) as exit_info:
        main(["validate", "--agents", str(AGENTS), str(AGENTS)])
    captured = capsys.readouterr()
    assert exit_info.value.code == 0, captured.err
    assert captured.err == ""


@pytest.mark.parametrize("case", _case_params())
def test_broken_spec_stderr(
    case: Path, capsys: pytest.CaptureFixture[str], snapshot: SnapshotAssertion
) -> None:
    target = _relative(case)
    code, stdout, stderr = _validate(capsys, target)
    assert code == EXIT_BAD_INPUT, stderr
    assert "Traceback" not in stderr
    assert "internal error" not in stderr
    assert stdout == "0 valid, 1 invalid\n"
    assert stderr == snapshot


@pytest.mark.parametrize("case", _case_params())
def test_every_problem_line_starts_with_file_and_line(
    case: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = _relative(case)
    _, _, stderr = _validate(capsys, target)
    problems = _problem_lines(stderr, target)
    assert problems, "no problem reported"
    for line in problems:
        match = PROBLEM_LINE.match(line)
        assert match is not None, f"not FILE:LINE[:COL]: severity MAxxx: ...: {line!r}"
        file = Path(match["file"])
        assert file.parent == target.parent, f"points outside the case's folder: {line!r}"
        text = (ROOT / file).read_bytes().decode("utf-8", "replace").splitlines() or [""]
        assert 1 <= int(match["line"]) <= len(text), f"line out of range: {line!r}"
        if match["column"] is not None:
            width = len(text[int(match["line"]) - 1])
            assert 1 <= int(match["column"]) <= width + 1, f"column out of range: {line!r}"


@pytest.mark.parametrize("case", _case_params())
def test_every_case_reports_a_code(case: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = _relative(case)
    _, _, stderr = _validate(capsys, target)
    assert re.search(r"\berror MA[123]\d\d: ", stderr), stderr


@pytest.mark.parametrize("case", _case_params())
def test_problems_point_where_a_person_would(
    case: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The reported errors are exactly the expected ones: code, line, and field."""
    target = _relative(case)
    _, _, stderr = _validate(capsys, target)
    found: list[Want] = []
    for line in _problem_lines(stderr, target):
        match = PROBLEM_LINE.match(line)
        assert match is not None, line
        if match["severity"] != "error":
            continue
        field = FIELD.match(match["rest"])
        file = Path(match["file"])
        found.append(
            Want(
                match["code"],
                int(match["line"]),
                field["field"] if field else "",
                None if file == target else file.name,
            )
        )
    wanted = EXPECTED[case.stem]
    unchecked = {(w.code, w.line, w.file) for w in wanted if w.field is None}
    got = [p._replace(field=None) if (p.code, p.line, p.file) in unchecked else p for p in found]
    assert sorted(got, key=str) == sorted(wanted, key=str), "\n" + stderr


# -- files that are generated rather than committed --------------------------------------------


def test_fifty_megabyte_file_is_refused_by_the_size_check(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    snapshot: SnapshotAssertion,
) -> None:
    """A 50 MB file is refused unread. It is sparse (all NUL bytes), so had it been read it
    would be reported as binary (MA103); MA102 shows the size check came first."""
    huge = tmp_path / "agent_huge.yaml"
    with huge.open("wb") as handle:
        handle.truncate(FIFTY_MB)
    monkeypatch.chdir(tmp_path)
    code, _, stderr = _validate(capsys, Path(huge.name), agents=ROOT / AGENTS)
    assert code == EXIT_BAD_INPUT
    assert "Traceback" not in stderr
    assert "error MA102: " in stderr
    assert "MA103" not in stderr
    assert stderr == snapshot


def test_fifty_megabyte_file_error_names_a_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    huge = tmp_path / "agent_huge.yaml"
    with huge.open("wb") as handle:
        handle.truncate(FIFTY_MB)
    monkeypatch.chdir(tmp_path)
    _, _, stderr = _validate(capsys, Path(huge.name), agents=ROOT / AGENTS)
    for line in _problem_lines(stderr, Path(huge.name)):
        assert PROBLEM_LINE.match(line), line


def test_binary_file_generated_at_run_time_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    blob = tmp_path / "agent_blob.yaml"
    blob.write_bytes(bytes(range(256)) * 16)
    monkeypatch.chdir(tmp_path)
    code, _, stderr = _validate(capsys, Path(blob.name), agents=ROOT / AGENTS)
    assert code == EXIT_BAD_INPUT
    assert "Traceback" not in stderr
    assert "error MA103: " in stderr


def test_console_script_prints_the_same_as_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    """The real entry point, in a subprocess, agrees with the in-process runs above."""
    target = CASES / "workflow_unbounded_cycle.yaml"
    _, _, in_process = _validate(capsys, target)
    result = subprocess.run(
        [str(CONSOLE_SCRIPT), "validate", "--agents", str(AGENTS), str(target)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert result.returncode == EXIT_BAD_INPUT
    assert result.stderr == in_process


# -- command-line paths that do not exist --------------------------------------------------------


def test_missing_spec_file_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    target = CASES / "no_such_file.yaml"
    code, _, stderr = _validate(capsys, target)
    assert code == EXIT_BAD_INPUT
    assert stderr.startswith(f"{target}: error MA101: "), stderr


def test_missing_agent_folder_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    target = CASES / "workflow_unknown_agent.yaml"
    code, _, stderr = _validate(capsys, target, agents=BROKEN / "no_such_folder")
    assert code == EXIT_BAD_INPUT
    assert "no_such_folder" in stderr, stderr
