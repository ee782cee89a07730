"""Compiling an agent spec once: templates parsed, schemas turned into models, examples checked."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from ..errors import ExpressionError, Location, Problem, SchemaError, SpecError
from ..spec._agent_spec import AgentSpec, EscalationSpec
from ..spec._expressions import ENVIRONMENT, Prompt, compile_prompt
from ..spec._loading import Source, Sourced, describe_error
from ..spec._schema import JsonSchema, model_from_schema
from ..spec._yaml import format_path, read_spec_text

PROMPT_FILE_SUFFIX = ".j2"
TEMPLATE_MARKERS = ("{{", "{%", "{#")


@dataclass(frozen=True, slots=True)
class CompiledAgent:
    """An agent ready to run: everything that can be prepared once has been."""

    spec: AgentSpec
    source: Source
    prompt_source: str
    prompt_template: Prompt
    system_template: Prompt | None
    input_model: type[BaseModel]
    output_model: type[BaseModel]
    input_schema: JsonSchema
    output_schema: JsonSchema
    warnings: tuple[Problem, ...] = ()
    static_prompt: str | None = None
    """The prompt's leading text up to its first variable or tag: the same for every input,
    so it can be the cached end of the prompt's repeating part (None when the prompt starts
    with a variable)."""

    @property
    def reference(self) -> str:
        return f"{self.spec.name}@{self.spec.version}"

    @property
    def escalation(self) -> EscalationSpec:
        return self.spec.escalation or EscalationSpec(ladder=[self.spec.model])

    def render_prompt(self, values: dict[str, Any]) -> str:
        """Render the user prompt for an input (the input's fields are top-level names)."""
        return self.prompt_template.render(values)

    @property
    def static_system(self) -> str | None:
        """The system prompt when it has no template syntax (the same for every input)."""
        system = self.spec.system
        return system if system is not None and not _has_markers(system) else None


def static_prefix(template: str) -> str | None:
    """The text a template renders the same way for every input: everything before its first
    tag, less trailing whitespace (which a tag's whitespace control may strip)."""
    cut = min((i for i in (template.find(m) for m in TEMPLATE_MARKERS) if i >= 0), default=-1)
    if cut < 0:
        return None  # no variables at all: the prompt never changes, nothing to split
    prefix = template[:cut].rstrip()
    return prefix or None


def _has_markers(text: str) -> bool:
    return any(marker in text for marker in TEMPLATE_MARKERS)


def compile_agent(sourced: Sourced[AgentSpec]) -> CompiledAgent:
    """Compile an agent spec, collecting every problem before raising `SpecError`."""
    spec, source = sourced.spec, sourced.source
    problems: list[Problem] = []

    prompt_text, prompt_location = _prompt_text(spec, source, problems)
    prompt_template = None
    prompt_names: frozenset[str] = frozenset()
    if prompt_text is not None:
        try:
            prompt_template = compile_prompt(prompt_text)
            prompt_names = prompt_template.names
        except ExpressionError as exc:
            problems.append(_template_problem(exc, prompt_location, "prompt", source))
    system_template = None
    if spec.system is not None:
        try:
            system_template = compile_prompt(spec.system)
        except ExpressionError as exc:
            problems.append(Problem("MA212", str(exc), source.locate("system"), "system"))

    input_model = _model(
        spec.input_model, spec.input, f"{spec.name} input", "input", source, problems
    )
    output_model = _model(
        spec.output_model, spec.output, f"{spec.name} output", "output", source, problems
    )
    if input_model is not None and output_model is not None:
        _check_examples(spec, source, input_model, output_model, problems)
    _check_escalation(spec, source, problems)

    warnings: list[Problem] = []
    known_inputs = set((spec.input.get("properties") or {}).keys()) | {"input"}
    for name in sorted(prompt_names - known_inputs - set(ENVIRONMENT.globals)):
        warnings.append(
            Problem(
                "MA215",
                f"the prompt uses '{name}', which is not an input field; "
                "it will render empty (declare it under input.properties)",
                prompt_location,
                "prompt",
                severity="warning",
            )
        )
    if problems or prompt_template is None or input_model is None or output_model is None:
        raise SpecError(problems + warnings)
    return CompiledAgent(
        spec=spec,
        source=source,
        prompt_source=prompt_text or "",
        prompt_template=prompt_template,
        system_template=system_template,
        input_model=input_model,
        output_model=output_model,
        input_schema=spec.input,
        output_schema=output_model.model_json_schema() if spec.output_model else spec.output,
        warnings=tuple(warnings),
        static_prompt=static_prefix(prompt_text or ""),
    )


def prompt_file(spec: AgentSpec, source: Source) -> Path | None:
    """The `.j2` file the prompt names (beside the spec), or None for an inline prompt."""
    prompt = spec.prompt
    if "\n" in prompt or not prompt.strip().endswith(PROMPT_FILE_SUFFIX):
        return None
    return source.folder / prompt.strip()


def _prompt_text(
    spec: AgentSpec, source: Source, problems: list[Problem]
) -> tuple[str | None, Location]:
    prompt = spec.prompt
    path = prompt_file(spec, source)
    if path is None:
        return prompt, source.locate("prompt")
    if not path.is_file():
        problems.append(
            Problem(
                "MA211",
                f"prompt file '{prompt.strip()}' not found next to the spec ({path}); "
                "create it or write the prompt inline",
                source.locate("prompt"),
                "prompt",
            )
        )
        return None, source.locate("prompt")
    try:
        return read_spec_text(path), Location(path, 1, 1)
    except SpecError as exc:
        problems.extend(exc.problems)
        return None, Location(path)


def _template_problem(
    exc: ExpressionError, location: Location, field: str, source: Source
) -> Problem:
    if location.file is not None and location.file != source.file:
        # The template lives in its own .j2 file: point at the line inside it.
        return Problem("MA212", str(exc), Location(location.file, exc.line), field)
    return Problem("MA212", str(exc), location, field)


def _model(
    given: type[BaseModel] | None,
    schema: JsonSchema,
    name: str,
    field: str,
    source: Source,
    problems: list[Problem],
) -> type[BaseModel] | None:
    if given is not None:
        return given
    try:
        return model_from_schema(schema, name)
    except SchemaError as exc:
        path = (field, *exc.path)
        problems.append(Problem("MA213", str(exc), source.locate(*path), format_path(path)))
        return None


def _check_examples(
    spec: AgentSpec,
    source: Source,
    input_model: type[BaseModel],
    output_model: type[BaseModel],
    problems: list[Problem],
) -> None:
    for index, example in enumerate(spec.examples):
        for part, model, value in (
            ("input", input_model, example.input),
            ("output", output_model, example.output),
        ):
            try:
                model.model_validate(value)
            except ValidationError as exc:
                for error in exc.errors(include_url=False):
                    path = ("examples", index, part, *error["loc"])
                    _, message = describe_error(error)
                    problems.append(
                        Problem(
                            "MA214",
                            f"example {part} does not match the {part} schema: {message}",
                            source.locate(*path),
                            format_path(path),
                        )
                    )


def _check_escalation(spec: AgentSpec, source: Source, problems: list[Problem]) -> None:
    escalation = spec.escalation
    if escalation is None:
        return
    if escalation.ladder[0] != spec.model:
        problems.append(
            Problem(
                "MA216",
                f"the ladder starts at '{escalation.ladder[0]}' but the agent's model is "
                f"'{spec.model}'; start the ladder at the agent's model",
                source.locate("escalation", "ladder"),
                "escalation.ladder",
            )
        )
    if "low_confidence" in escalation.on:
        properties = spec.output.get("properties") or {}
        if escalation.confidence_field not in properties:
            problems.append(
                Problem(
                    "MA217",
                    f"low_confidence needs a '{escalation.confidence_field}' field in the output "
                    "schema (a number from 0 to 1); add it or set confidence_field",
                    source.locate("escalation", "on"),
                    "escalation.on",
                )
            )
