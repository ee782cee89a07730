from __future__ import annotations

import pytest
from pydantic import ValidationError

from microagents.errors import SchemaError
from microagents.spec._schema import json_types, model_from_schema, subschema

SCHEMA = {
    "type": "object",
    "properties": {
        "category": {"type": "string", "enum": ["billing", "other"]},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "items": {
            "type": "array",
            "items": {"type": "object", "properties": {"sku": {"type": "string"}}},
        },
        "note": {"type": ["string", "null"]},
        "meta": {"type": "object"},
    },
    "required": ["category", "confidence"],
    "additionalProperties": False,
}


def test_compiled_model_validates_like_the_schema_says() -> None:
    model = model_from_schema(SCHEMA, "router output")
    ok = model.model_validate({"category": "billing", "confidence": 0.5, "items": [{"sku": "A"}]})
    assert ok.model_dump()["items"] == [{"sku": "A"}]
    for bad in (
        {"category": "nope", "confidence": 0.5},
        {"category": "billing", "confidence": 1.5},
        {"category": "billing"},
        {"category": "billing", "confidence": 0.5, "extra": 1},
    ):
        with pytest.raises(ValidationError):
            model.model_validate(bad)


def test_unsupported_keywords_are_named() -> None:
    with pytest.raises(
        SchemaError, match="unsupported JSON Schema keyword 'patternProperties'"
    ) as exc:
        model_from_schema({"type": "object", "properties": {"a": {"patternProperties": {}}}}, "x")
    assert exc.value.path == ("properties", "a", "patternProperties")


def test_required_field_must_be_declared() -> None:
    with pytest.raises(SchemaError, match="'b' is not listed"):
        model_from_schema({"type": "object", "properties": {"a": {}}, "required": ["b"]}, "x")


def test_subschema_and_types() -> None:
    assert subschema(SCHEMA, ("category",)) == SCHEMA["properties"]["category"]
    assert subschema(SCHEMA, ("items", "0", "sku")) == {"type": "string"}
    assert subschema(SCHEMA, ("meta", "anything")) is None  # free-form object: unknowable
    with pytest.raises(KeyError):
        subschema(SCHEMA, ("categroy",))
    assert json_types(SCHEMA["properties"]["category"]) == {"string"}
    assert json_types(SCHEMA["properties"]["confidence"]) == {"number", "integer"}
    assert json_types(SCHEMA["properties"]["note"]) == {"string", "null"}
