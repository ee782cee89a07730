"""The other side of `--compare`: another workflow file, other agent versions, or a git ref.

| variant | what B is |
| --- | --- |
| `path/to/other.yaml` | another workflow file, compiled in the same project |
| `NAME@VERSION` | the same workflow, every node that runs agent NAME pinned to that version |
| `git:REF` | the workflow file and the agents as they are at REF (read with `git archive`) |

A stored eval (`eval:ID`) is handled by the caller: it needs no run.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

from ..errors import EvalError
from ..graph._compiled import CompiledWorkflow
from ..project._project import Project
from ..spec._loading import load_workflow_spec


@dataclass(frozen=True, slots=True)
class Variant:
    """A workflow to evaluate and the name it goes by in a comparison."""

    label: str
    workflow: CompiledWorkflow


def load_variant(
    text: str,
    workflow_path: Path,
    project: Project,
    *,
    project_at: Callable[[Path], Project],
) -> AbstractContextManager[Variant]:
    """The variant `text` names; a context, since a git ref lives in a temporary folder for
    as long as its agents may be read. `project_at(root)` makes a project rooted elsewhere."""
    if text.startswith("git:"):
        return _at_git_ref(text[4:], workflow_path, project_at)
    path = Path(text)
    if path.suffix in {".yaml", ".yml"} or path.is_file():
        return nullcontext(Variant(str(path), project.load_workflow(path)))
    if "@" in text:
        return nullcontext(Variant(text, with_agent_version(workflow_path, project, text)))
    raise EvalError(
        f"--compare '{text}' is not a workflow file, an agent version (NAME@VERSION), "
        "git:REF or eval:ID"
    )


def with_agent_version(workflow_path: Path, project: Project, reference: str) -> CompiledWorkflow:
    """The workflow with every node that runs agent NAME running `reference` (NAME@VERSION)."""
    name = reference.split("@", 1)[0]
    sourced = load_workflow_spec(workflow_path)
    spec = sourced.spec
    nodes = {
        node_id: node.model_copy(update={"agent": reference})
        if node.agent is not None and node.agent.split("@", 1)[0] == name
        else node
        for node_id, node in spec.nodes.items()
    }
    if nodes == spec.nodes:
        raise EvalError(f"no node of '{spec.name}' runs agent '{name}'; nothing to compare")
    return project.compile(spec.model_copy(update={"nodes": nodes}), sourced.source)


@contextmanager
def _at_git_ref(
    ref: str, workflow_path: Path, project_at: Callable[[Path], Project]
) -> Iterator[Variant]:
    top = Path(_git("rev-parse", "--show-toplevel").strip())
    relative = workflow_path.resolve().relative_to(top.resolve())
    archive = subprocess.run(
        ["git", "-C", str(top), "archive", "--format=tar", ref], capture_output=True, check=False
    )
    if archive.returncode != 0:
        raise EvalError(f"git cannot read '{ref}': {archive.stderr.decode().strip()}")
    with tempfile.TemporaryDirectory(prefix="microagents-eval-") as folder:
        root = Path(folder)
        subprocess.run(["tar", "-x", "-C", folder], input=archive.stdout, check=True)
        if not (root / relative).is_file():
            raise EvalError(f"'{relative}' does not exist at git ref '{ref}'")
        yield Variant(f"git:{ref}", project_at(root).load_workflow(root / relative))


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise EvalError(f"git {' '.join(args)} failed: {done.stderr.strip()} (is this a git tree?)")
    return done.stdout
