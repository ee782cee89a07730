"""`microagents agents new NAME`: the files of a new agent, ready to edit and publish.

An agent is a spec (YAML), its prompt template (``.j2``) and a test that keeps the two honest:
the spec compiles and its example renders. The scaffold writes all three and never overwrites
a file that exists.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import MicroagentsError
from ..spec._agent_spec import NAME_PATTERN

_SPEC = """\
name: {name}
version: 0.1.0
description: TODO say in one line what {name} does.
model: haiku
prompt: {base}.j2
input:
  type: object
  properties:
    text: {{type: string, description: The text to work on.}}
  required: [text]
output:
  type: object
  properties:
    answer: {{type: string}}
    confidence: {{type: number, minimum: 0, maximum: 1}}
  required: [answer, confidence]
escalation:
  ladder: [haiku, sonnet]
  on: [invalid_output, low_confidence, refusal, error]
  confidence_below: 0.6
examples:
  - input: {{text: "An example input."}}
    output: {{answer: "The answer for the example.", confidence: 0.9}}
"""

_TEMPLATE = """\
TODO: tell the model its one job.

Text:
{{ text }}
"""

_TEST = '''\
"""{name}: the spec compiles, and its first example renders and matches the output schema."""

from pathlib import Path

import microagents as ma

SPEC = Path(__file__).resolve().parent / {relative!r}


def test_{ident}_compiles_and_renders_its_example() -> None:
    agent = ma.Project(SPEC.parent, agent_dirs=[]).load_agent(SPEC)
    example = agent.spec.examples[0]
    assert example.input["text"] in agent.render_prompt(example.input)
    agent.output_model.model_validate(example.output)
'''


def scaffold_agent(name: str, agents_dir: Path, tests_dir: Path) -> list[Path]:
    """Write the spec, template and test of a new agent; return the files written."""
    if not re.match(NAME_PATTERN, name):
        raise MicroagentsError(
            f"'{name}' is not an agent name: use lower-case letters, digits and underscores, "
            "optionally namespaced as team/name"
        )
    base = name.rpartition("/")[2]
    spec = agents_dir / f"{base}.yaml"
    template = agents_dir / f"{base}.j2"
    test = tests_dir / f"test_{base}_agent.py"
    existing = [str(p) for p in (spec, template, test) if p.exists()]
    if existing:
        raise MicroagentsError(
            f"{', '.join(existing)} already exist{'s' if len(existing) == 1 else ''}; "
            "choose another name or remove them first"
        )
    relative = Path(os.path.relpath(spec.resolve(), tests_dir.resolve())).as_posix()
    files = {
        spec: _SPEC.format(name=name, base=base),
        template: _TEMPLATE,
        test: _TEST.format(name=name, relative=relative, ident=base),
    }
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return list(files)
