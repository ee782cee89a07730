"""The agent spec: one small job, written in YAML (+ a ``.j2`` prompt) or built in Python."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from ..errors import VersionError
from ._schema import JsonSchema
from ._semver import Version

Trigger = Literal[
    "invalid_output",
    "low_confidence",
    "rejected",
    "refusal",
    "max_tokens",
    "error",
    "tool_budget",
    "self",
]
"""What can make a step climb its escalation ladder (see docs/concepts.md)."""

DEFAULT_TRIGGERS: tuple[Trigger, ...] = ("invalid_output", "refusal", "max_tokens", "error", "self")

NAME_PATTERN = r"^[a-z][a-z0-9_]*(/[a-z][a-z0-9_]*)?$"

Effort = Literal["low", "medium", "high", "xhigh", "max"]
"""How much effort a model that offers the API's `effort` setting spends on an answer."""


class Strict(BaseModel):
    """Spec models refuse unknown fields so that a typo is an error, not a silent default."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class EscalationSpec(Strict):
    """Which tiers a step may climb, and what makes it climb.

    ```yaml
    escalation:
      ladder: [haiku, sonnet, opus]
      on: [invalid_output, low_confidence]
      confidence_below: 0.7
    ```
    """

    ladder: list[str] = Field(
        min_length=1,
        description=(
            "Tiers (haiku, sonnet, opus) or model ids, cheapest first; "
            "the step starts on the first."
        ),
    )
    on: list[Trigger] = Field(
        default=list(DEFAULT_TRIGGERS),
        description="Triggers that climb one rung of the ladder.",
    )
    confidence_below: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description=(
            "With the low_confidence trigger: climb when the output's confidence is below this."
        ),
    )
    confidence_field: str = Field(
        default="confidence",
        description="The output field that holds the model's confidence (0..1).",
    )

    @model_validator(mode="after")
    def _confidence_is_consistent(self) -> EscalationSpec:
        if "low_confidence" in self.on and self.confidence_below is None:
            raise ValueError(
                "the low_confidence trigger needs a threshold: add confidence_below (e.g. 0.7)"
            )
        if self.confidence_below is not None and "low_confidence" not in self.on:
            raise ValueError(
                "confidence_below is set but low_confidence is not in `on`; add it to `on`"
            )
        if len(set(self.ladder)) != len(self.ladder):
            raise ValueError("the ladder names a tier twice; list each tier once, cheapest first")
        return self


class Example(Strict):
    """A few-shot example: an input and the output the agent should give for it."""

    input: dict[str, Any]
    output: dict[str, Any]
    note: str | None = Field(
        default=None, description="Why this example is here (not sent to the model)."
    )


class AgentSpec(Strict):
    """One agent: a single, small job for a model.

    In Python, `input` and `output` may be pydantic model classes; results are then typed::

        triage = AgentSpec(
            name="triage", version="1.0.0", description="Pick a queue.",
            prompt="Ticket: {{ text }}", input=TicketIn, output=Queue,
        )
    """

    name: str = Field(
        pattern=NAME_PATTERN,
        description="Lower-case name, optionally namespaced: `extractor` or `billing/extractor`.",
    )
    version: str = Field(description="Semantic version, MAJOR.MINOR.PATCH.")
    description: str = Field(min_length=1, description="One line on what the agent does.")
    model: str = Field(
        default="haiku",
        description="Tier alias (haiku, sonnet, opus) or an explicit model id.",
    )
    escalation: EscalationSpec | None = Field(
        default=None, description="The tiers this agent may climb and when."
    )
    system: str | None = Field(default=None, description="System prompt (a Jinja2 template).")
    prompt: str = Field(
        min_length=1,
        description=(
            "User prompt: a Jinja2 template inline, or the name of a .j2 file beside the YAML."
        ),
    )
    input: JsonSchema = Field(description="JSON Schema (type: object) of the agent's input.")
    output: JsonSchema = Field(description="JSON Schema (type: object) of the agent's output.")
    tools: list[str] = Field(default_factory=list, description="Tools this agent may call.")
    examples: list[Example] = Field(
        default_factory=list, description="Few-shot examples, checked against the schemas."
    )
    max_tokens: int = Field(default=1024, ge=1, le=128_000)
    effort: Effort | None = Field(
        default=None,
        description=(
            "The API's effort level (low, medium, high, xhigh, max) on models that offer it; "
            "unset: the tier's setting, else the model's default."
        ),
    )
    temperature: float = Field(default=0.0, ge=0, le=1)
    max_tool_rounds: int = Field(
        default=4, ge=0, le=50, description="Tool-loop rounds before the tool_budget trigger fires."
    )
    input_model: SkipJsonSchema[type[BaseModel] | None] = Field(
        default=None, exclude=True, repr=False
    )
    output_model: SkipJsonSchema[type[BaseModel] | None] = Field(
        default=None, exclude=True, repr=False
    )

    @model_validator(mode="before")
    @classmethod
    def _accept_pydantic_models(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for field in ("input", "output"):
            value = data.get(field)
            if isinstance(value, type) and issubclass(value, BaseModel):
                data[field] = value.model_json_schema()
                data[f"{field}_model"] = value
        return data

    @field_validator("version", mode="before")
    @classmethod
    def _version_is_semver(cls, value: Any) -> Any:
        return check_version(value)


def check_version(value: Any) -> str:
    """Validate a semantic version, with a hint for the unquoted-number mistake."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(
            f"version {value} was read as a number; write a quoted semantic version like '1.0.0'"
        )
    if not isinstance(value, str):
        raise ValueError("version must be a string like '1.0.0'")
    try:
        Version.parse(value)
    except VersionError as exc:
        raise ValueError(str(exc)) from None
    return value
