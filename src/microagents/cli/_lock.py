"""`microagents lock`: pin every agent and workflow the project's workflows use."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import MicroagentsError
from ._common import make_project, project_options


@click.command("lock")
@click.option(
    "--upgrade",
    is_flag=True,
    help="Move pins to the newest versions in range: of the NAMEs given, or of everything.",
)
@click.argument("names", nargs=-1)
@project_options
def lock(
    upgrade: bool,
    names: tuple[str, ...],
    agent_dirs: tuple[Path, ...],
    tool_modules: tuple[str, ...],
    sources: tuple[str, ...],
) -> None:
    """Write microagents.lock: the exact version, source and content hash of every agent
    and published workflow that the workflows in ./workflows use.

    \b
    Existing pins stay unless --upgrade moves them; `run` and `validate` then resolve to
    the pinned versions only, and refuse content that no longer matches its hash.
      microagents lock                      pin what is new, keep the rest
      microagents lock --upgrade            move every pin to the newest version in range
      microagents lock --upgrade team/x     move only team/x
    """
    if names and not upgrade:
        raise MicroagentsError(
            f"NAME goes with --upgrade: microagents lock --upgrade {' '.join(names)}"
        )
    project = make_project(agent_dirs, tool_modules, sources, use_lock=False)
    old, new = project.relock(set(names) if upgrade else None)
    known = {p.name for p in (*old.pins, *new.pins)}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise MicroagentsError(
            f"'{unknown[0]}' is not pinned and no workflow uses it; pinned: "
            + (", ".join(sorted(known)) or "nothing")
        )
    from ..registry._lock import lock_changes

    changes = lock_changes(old, new)
    new.write()
    for line in changes:
        click.echo(line)
    agents = sum(p.kind == "agent" for p in new.pins)
    summary = f"{agents} agents and {len(new.pins) - agents} workflows pinned"
    click.echo(f"{new.path}: {summary}" + ("" if changes else " (unchanged)"))
