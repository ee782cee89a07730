"""`microagents agents …`: find, inspect, scaffold and package the agents of a registry."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..errors import MicroagentsError
from ._common import EXIT_BAD_INPUT, echo_problems, make_project, project_options, terminal_width

if TYPE_CHECKING:
    from ..project._project import Project
    from ..registry._registry import AgentEntry


@click.group()
def agents() -> None:
    """Find, inspect, scaffold and package agents."""


@agents.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead of a table.")
@project_options
def agents_list(
    as_json: bool,
    agent_dirs: tuple[Path, ...],
    tool_modules: tuple[str, ...],
    sources: tuple[str, ...],
) -> None:
    """Every agent: its versions, tier, tools, description and the source it comes from.

    With --source, only the agents of the sources given.
    """
    project = make_project(agent_dirs, tool_modules, sources)
    entries = project.registry.entries()
    if sources:
        given = {s.name for s in project.registry.sources if s.name in sources}
        origins = {
            e.source_name for s in project.registry.sources if s.name in given for e in s.entries()
        }
        entries = [e for e in entries if e.source_name in origins]
    _print_agents(entries, as_json)
    echo_problems(project.problems())


@agents.command("search")
@click.argument("words", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead of a table.")
@project_options
def agents_search(
    words: tuple[str, ...],
    as_json: bool,
    agent_dirs: tuple[Path, ...],
    tool_modules: tuple[str, ...],
    sources: tuple[str, ...],
) -> None:
    """Agents whose name or description contains every one of WORDS (any case)."""
    project = make_project(agent_dirs, tool_modules, sources)
    wanted = [w.lower() for w in words]
    found = [
        e
        for e in project.registry.entries()
        if all(w in f"{e.name} {e.sourced.spec.description}".lower() for w in wanted)
    ]
    if not found:
        raise MicroagentsError(
            f"no agent's name or description contains {' and '.join(map(repr, words))}; "
            "`microagents agents list` shows them all"
        )
    _print_agents(found, as_json)


@agents.command("show")
@click.argument("reference")
@project_options
def agents_show(
    reference: str,
    agent_dirs: tuple[Path, ...],
    tool_modules: tuple[str, ...],
    sources: tuple[str, ...],
) -> None:
    """Show one agent (NAME or NAME@VERSION): spec, schemas, examples, its prompt rendered
    on the first example, where it comes from and which workflows use it."""
    from ..project._builder import spec_to_yaml
    from ..registry._content_hash import short

    project = make_project(agent_dirs, tool_modules, sources)
    entry = project.registry.find(reference)
    agent = project.registry.resolve(reference)
    click.echo(f"# {agent.reference} from {agent.source.file or 'python'}")
    others = [s for s in project.registry.providers(entry.name) if s != entry.source_name]
    hidden = f" (wins over {', '.join(others)})" if others else ""
    click.echo(f"# source: {entry.source_name}{hidden}")
    versions = [str(e.version) for e in project.registry.entries() if e.name == entry.name]
    click.echo(f"# versions: {', '.join(versions)}; content hash {short(entry.hash)}")
    if project.registry.lock is not None:
        click.echo(f"# pinned by {project.registry.lock.path}")
    click.echo(spec_to_yaml(agent.spec, with_defaults=True), nl=False)
    if agent.spec.examples:
        example = agent.spec.examples[0].input
        click.echo("\n# prompt rendered for the first example input")
        click.echo(agent.render_prompt(example), nl=False)
    users = _used_by(project, entry)
    click.echo("\n# used by")
    for line in users or ["no workflow in " + ", ".join(map(str, project.workflow_dirs))]:
        click.echo(line)


@agents.command("new")
@click.argument("name")
@click.option(
    "--dir",
    "agents_dir",
    type=click.Path(path_type=Path),
    default=Path("agents"),
    show_default=True,
    help="Folder for the spec and its template.",
)
@click.option(
    "--tests",
    "tests_dir",
    type=click.Path(path_type=Path),
    default=Path("tests"),
    show_default=True,
    help="Folder for the agent's test.",
)
def agents_new(name: str, agents_dir: Path, tests_dir: Path) -> None:
    """Scaffold agent NAME (team/name for a published one): YAML spec, prompt template,
    an example and a test. Existing files are never overwritten."""
    from ..registry._scaffold import scaffold_agent

    for path in scaffold_agent(name, agents_dir, tests_dir):
        click.echo(f"created  {path}")
    click.echo(f"next: edit the TODOs, then `microagents validate {agents_dir}` and pytest")


@agents.command("package")
@click.argument("path", type=click.Path(path_type=Path), default=Path())
def agents_package(path: Path) -> None:
    """Check that PATH (a Python project) is laid out as an agent package, so that
    `pip install PATH` makes its agents resolvable. Builds nothing.

    \b
    The layout: the specs (YAML) and templates (.j2) are package data inside a package, and
    pyproject.toml names that package under the entry-point group microagents.agents.
    """
    from ..registry._content_hash import short
    from ..registry._packaging import check_package

    report = check_package(path)
    for agent in report.agents:
        click.echo(f"agent     {agent.name}@{agent.version}  {short(agent.hash)}")
    for workflow in report.workflows:
        click.echo(f"workflow  {workflow.name}@{workflow.version}  {short(workflow.hash)}")
    echo_problems(report.problems)
    click.echo(f"\n# pyproject.toml of {report.distribution}:\n{report.snippet()}", nl=False)
    if not report.ok:
        raise SystemExit(EXIT_BAD_INPUT)
    click.echo(f"\nok: `pip install {path}` makes these resolvable (source 'packages')")


def _print_agents(entries: Sequence[AgentEntry], as_json: bool) -> None:
    by_name: dict[str, list[AgentEntry]] = {}
    for entry in sorted(entries, key=lambda e: (e.name, e.version)):
        by_name.setdefault(entry.name, []).append(entry)
    if as_json:
        for name, versions in by_name.items():
            spec, latest = versions[-1].sourced.spec, versions[-1]
            record = {
                "name": name, "versions": [str(e.version) for e in versions],
                "model": spec.model, "tools": spec.tools, "description": spec.description,
                "source": latest.source_name,
            }  # fmt: skip
            click.echo(json.dumps(record))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("name", "versions", "model", "tools", "description", "source", box=None)
    for name, versions in by_name.items():
        spec, latest = versions[-1].sourced.spec, versions[-1]
        shown = ", ".join(str(e.version) for e in versions)
        table.add_row(
            name, shown, spec.model, ", ".join(spec.tools), spec.description, latest.source_name
        )
    Console(width=max(100, terminal_width())).print(table)


def _used_by(project: Project, entry: AgentEntry) -> list[str]:
    """The workflow nodes whose agent reference resolves to `entry`'s name and version."""
    from ..errors import SpecError, VersionError
    from ..project._project import spec_files
    from ..spec._loading import load_workflow_spec
    from ..spec._semver import Reference

    lines: list[str] = []
    for file in spec_files([d for d in project.workflow_dirs if d.is_dir()]):
        try:
            spec = load_workflow_spec(file).spec
        except SpecError:
            continue  # `validate` reports it; here it only cannot be searched
        for node_id, node in spec.nodes.items():
            if node.agent is None:
                continue
            try:
                parsed = Reference.parse(node.agent)
            except VersionError:
                continue
            if parsed.name == entry.name and entry.version in parsed.range:
                lines.append(f"{file}: nodes.{node_id} ({node.agent})")
    return lines
