"""Content hashes of published agent and workflow versions, which a lock file pins.

A hash covers what changes behaviour: the validated spec as its author wrote it (fields left
to their defaults are not part of it, so a new optional field in microagents does not change
every hash) and the text of the prompt template file. Formatting, comments and key order of
the YAML do not count, and template line endings are normalised, so that a checkout on another
platform hashes the same.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pydantic import BaseModel

from ..graph._agent import prompt_file
from ..spec._agent_spec import AgentSpec
from ..spec._loading import Sourced
from ..spec._workflow_spec import WorkflowSpec

HASH_PREFIX = "sha256:"


def agent_hash(sourced: Sourced[AgentSpec]) -> str:
    """The content hash of an agent: its spec and its prompt template file, if it has one."""
    template = prompt_file(sourced.spec, sourced.source)
    # A missing or unreadable template hashes as absent; compiling the agent reports it.
    text = _read_text(template) if template is not None else None
    return _digest(sourced.spec, [] if text is None else [text])


def workflow_hash(sourced: Sourced[WorkflowSpec]) -> str:
    """The content hash of a workflow spec."""
    return _digest(sourced.spec, [])


def short(content_hash: str) -> str:
    """A hash shortened for messages, like git's short commit ids."""
    return content_hash[: len(HASH_PREFIX) + 12]


def _digest(spec: BaseModel, templates: list[str]) -> str:
    digest = hashlib.sha256()
    written = spec.model_dump(mode="json", by_alias=True, exclude_unset=True)
    digest.update(json.dumps(written, sort_keys=True, separators=(",", ":")).encode())
    for template in templates:
        digest.update(b"\0template\0")
        digest.update(template.replace("\r\n", "\n").encode())
    return HASH_PREFIX + digest.hexdigest()


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
