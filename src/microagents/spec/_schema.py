"""JSON Schema, the subset that agent and tool I/O needs, compiled once into pydantic models.

YAML specs write input and output schemas as JSON Schema; Python specs give pydantic models.
Both end up as a pydantic model class, so that there is one validation path at run time (fast,
in pydantic-core) and one way to produce the JSON Schema a model is shown. Keywords outside the
supported subset are refused by name rather than silently ignored.
"""

from __future__ import annotations

import difflib
import re
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from ..errors import SchemaError

JsonSchema = dict[str, Any]

SUPPORTED_KEYWORDS = frozenset(
    {
        "type", "properties", "required", "additionalProperties", "items", "enum", "const",
        "description", "title", "default", "examples", "format", "minimum", "maximum",
        "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "pattern",
        "minItems", "maxItems", "anyOf", "oneOf", "$ref", "$defs", "definitions",
    }
)  # fmt: skip

_JSON_TYPES = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "null": type(None),
}
_IDENTIFIER = re.compile(r"[^0-9a-zA-Z_]")


def model_from_schema(schema: JsonSchema, name: str) -> type[BaseModel]:
    """Compile a JSON Schema of `type: object` into a pydantic model class named `name`."""
    if schema.get("type", "object") != "object" and "properties" not in schema:
        raise SchemaError("must be a schema of type 'object' (a mapping of named fields)", ())
    compiler = _Compiler(schema)
    model = compiler.object_model(schema, _model_name(name), ())
    return model


def check_schema(schema: Any, path: tuple[str | int, ...] = ()) -> None:
    """Raise `SchemaError` if `schema` uses keywords or types outside the supported subset."""
    if not isinstance(schema, dict):
        raise SchemaError("a schema must be a mapping", path)
    for key in schema:
        if key not in SUPPORTED_KEYWORDS:
            close = difflib.get_close_matches(key, SUPPORTED_KEYWORDS, n=1, cutoff=0.8)
            hint = f"did you mean '{close[0]}'?" if close else "remove it"
            raise SchemaError(
                f"unsupported JSON Schema keyword '{key}'; {hint} "
                "(docs/yaml-reference.md lists the supported subset)",
                (*path, key),
            )
    types = schema.get("type")
    for type_name in types if isinstance(types, list) else [types] if types else []:
        if type_name not in (*_JSON_TYPES, "array", "object"):
            raise SchemaError(f"unknown type '{type_name}'", (*path, "type"))
    for prop, sub in (schema.get("properties") or {}).items():
        check_schema(sub, (*path, "properties", prop))
    if isinstance(schema.get("items"), dict):
        check_schema(schema["items"], (*path, "items"))
    if isinstance(schema.get("additionalProperties"), dict):
        check_schema(schema["additionalProperties"], (*path, "additionalProperties"))
    for keyword in ("anyOf", "oneOf"):
        for index, sub in enumerate(schema.get(keyword) or []):
            check_schema(sub, (*path, keyword, index))
    for keyword in ("$defs", "definitions"):
        for def_name, sub in (schema.get(keyword) or {}).items():
            check_schema(sub, (*path, keyword, def_name))
    required = schema.get("required") or []
    unknown = [r for r in required if r not in (schema.get("properties") or {})]
    if unknown:
        raise SchemaError(
            f"required field '{unknown[0]}' is not listed under properties", (*path, "required")
        )


def validation_problems(exc: ValidationError, whole: str) -> str:
    """A pydantic validation error as one line: ``field.path: message; ...``, with `whole`
    naming the value itself when the problem is not in one field."""
    return "; ".join(
        f"{'.'.join(str(p) for p in error['loc']) or whole}: {error['msg']}"
        for error in exc.errors()
    )


def open_object(schema: Any, path: str = "output") -> str | None:
    """The path of the first object that allows keys it does not name, or None.

    The API's structured outputs close every object (`additionalProperties: false`), so an
    output with a free-form object (a record of whatever fields were asked for) cannot be
    asked for that way without losing its keys: such an agent answers through a tool instead.
    """
    if not isinstance(schema, dict):
        return None
    if schema.get("type") == "object" or "properties" in schema:
        extra = schema.get("additionalProperties")
        if extra is not False and (extra is not None or not schema.get("properties")):
            return path
    for key in ("properties", "$defs", "definitions"):
        children = schema.get(key)
        if isinstance(children, dict):
            for name, child in children.items():
                found = open_object(child, f"{path}.{name}")
                if found:
                    return found
    found = open_object(schema.get("items"), f"{path}[]")
    if found:
        return found
    for key in ("anyOf", "oneOf", "allOf"):
        variants = schema.get(key)
        if isinstance(variants, list):
            for variant in variants:
                found = open_object(variant, path)
                if found:
                    return found
    return None


def subschema(schema: JsonSchema, path: tuple[str, ...]) -> JsonSchema | None:
    """The schema of the value at `path` inside a value of `schema`, or None if unknowable.

    Returns None when the path leaves what the schema describes in a way that might still be
    valid (free-form objects); raises `KeyError` naming the missing field when the schema is
    declares its fields and `path` names one it does not.
    """
    current = _resolve(schema, schema)
    for part in path:
        if current is None:
            return None
        properties = current.get("properties")
        if properties is None:
            if current.get("type") == "array" and part.isdigit():
                items = current.get("items")
                current = _resolve(schema, items) if isinstance(items, dict) else None
                continue
            return None
        if part not in properties:
            # Even an open schema makes an undeclared field a likely typo: report it.
            raise KeyError(part)
        current = _resolve(schema, properties[part])
    return current


def json_types(schema: JsonSchema | None) -> frozenset[str] | None:
    """The JSON types a value of `schema` may have, or None when any type is possible."""
    if schema is None:
        return None
    if "enum" in schema:
        return frozenset(json_type_of(v) for v in schema["enum"])
    if "const" in schema:
        return frozenset({json_type_of(schema["const"])})
    variants = schema.get("anyOf") or schema.get("oneOf")
    if variants:
        found: set[str] = set()
        for variant in variants:
            sub = json_types(variant)
            if sub is None:
                return None
            found |= sub
        return frozenset(found)
    declared = schema.get("type")
    if declared is None:
        return frozenset({"object"}) if "properties" in schema else None
    names = set(declared if isinstance(declared, list) else [declared])
    if "number" in names:
        names.add("integer")  # every integer is a number
    return frozenset(names)


def enum_values(schema: JsonSchema | None) -> list[Any] | None:
    """The allowed values of `schema` when it is an enum (or a const), else None."""
    if schema is None:
        return None
    if "enum" in schema:
        return list(schema["enum"])
    if "const" in schema:
        return [schema["const"]]
    if schema.get("type") == "boolean":
        return [True, False]
    return None


def json_type_of(value: Any) -> str:
    """The JSON Schema type name of a Python value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _resolve(root: JsonSchema, schema: Any) -> JsonSchema | None:
    seen = 0
    while isinstance(schema, dict) and "$ref" in schema and seen < 32:
        ref = schema["$ref"]
        if not isinstance(ref, str) or not ref.startswith("#/"):
            return None
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part) if isinstance(target, dict) else None
        schema = target
        seen += 1
    return schema if isinstance(schema, dict) else None


def _model_name(name: str) -> str:
    cleaned = "".join(part.capitalize() for part in _IDENTIFIER.sub(" ", name).split())
    return cleaned or "Model"


class _Compiler:
    def __init__(self, root: JsonSchema) -> None:
        self.root = root

    def object_model(
        self, schema: JsonSchema, name: str, path: tuple[str | int, ...]
    ) -> type[BaseModel]:
        check_schema(schema, path)
        required = set(schema.get("required") or [])
        extra = "forbid" if schema.get("additionalProperties") is False else "allow"
        fields: dict[str, Any] = {}
        for prop, sub in (schema.get("properties") or {}).items():
            annotation = self.annotation(sub, f"{name}{_model_name(prop)}", (*path, prop))
            description = sub.get("description") if isinstance(sub, dict) else None
            if prop in required:
                fields[prop] = (annotation, Field(description=description))
            else:
                default = sub.get("default") if isinstance(sub, dict) else None
                fields[prop] = (annotation | None, Field(default=default, description=description))
        config = ConfigDict(extra=extra, title=schema.get("title", name))  # type: ignore[typeddict-item]
        return create_model(name, __config__=config, **fields)

    def annotation(self, schema: Any, name: str, path: tuple[str | int, ...]) -> Any:
        resolved = _resolve(self.root, schema)
        if resolved is None:
            return Any
        if "enum" in resolved:
            return Literal[tuple(resolved["enum"])]
        if "const" in resolved:
            return Literal[resolved["const"]]
        variants = resolved.get("anyOf") or resolved.get("oneOf")
        if variants:
            options = tuple(
                self.annotation(v, f"{name}{i}", (*path, i)) for i, v in enumerate(variants)
            )
            return Union[options]  # noqa: UP007 - a runtime-built union needs the subscript form
        declared = resolved.get("type")
        if isinstance(declared, list):
            options = tuple(self.annotation({**resolved, "type": t}, name, path) for t in declared)
            return Union[options]  # noqa: UP007
        if declared == "object" or (declared is None and "properties" in resolved):
            if "properties" in resolved:
                return self.object_model(resolved, name, path)
            extra = resolved.get("additionalProperties")
            value = self.annotation(extra, f"{name}Value", path) if isinstance(extra, dict) else Any
            return dict[str, value]  # type: ignore[valid-type]
        if declared == "array":
            item = self.annotation(resolved.get("items"), f"{name}Item", path)
            constraints = _constraints(
                resolved, ("minItems", "min_length"), ("maxItems", "max_length")
            )
            return Annotated[list[item], Field(**constraints)] if constraints else list[item]  # type: ignore[valid-type]
        base = _JSON_TYPES.get(declared) if isinstance(declared, str) else None
        if base is None:
            return Any
        if base is str:
            constraints = _constraints(
                resolved,
                ("minLength", "min_length"),
                ("maxLength", "max_length"),
                ("pattern", "pattern"),
            )
        elif base in (int, float):
            constraints = _constraints(
                resolved, ("minimum", "ge"), ("maximum", "le"),
                ("exclusiveMinimum", "gt"), ("exclusiveMaximum", "lt"),
            )  # fmt: skip
        else:
            constraints = {}
        return Annotated[base, Field(**constraints)] if constraints else base


def _constraints(schema: JsonSchema, *pairs: tuple[str, str]) -> dict[str, Any]:
    return {field: schema[key] for key, field in pairs if key in schema}


def example_instance(schema: JsonSchema | None, root: JsonSchema | None = None) -> Any:
    """A small value that satisfies `schema`: the first enum value, the minimum, every
    required field. Used to answer when there is nothing better to answer with."""
    root = root if root is not None else schema
    resolved = _resolve(root or {}, schema)
    if resolved is None:
        return None
    if "const" in resolved:
        return resolved["const"]
    if resolved.get("enum"):
        return resolved["enum"][0]
    variants = resolved.get("anyOf") or resolved.get("oneOf")
    if variants:
        return example_instance(variants[0], root)
    declared = resolved.get("type")
    if isinstance(declared, list):
        declared = next((t for t in declared if t != "null"), "null")
    if declared == "object" or (declared is None and "properties" in resolved):
        properties = resolved.get("properties") or {}
        return {
            name: example_instance(properties[name], root)
            for name in resolved.get("required", [])
            if name in properties
        }
    if declared == "array":
        count = resolved.get("minItems", 0)
        return [example_instance(resolved.get("items"), root) for _ in range(count)]
    if declared in ("number", "integer"):
        low: float = resolved.get("minimum", resolved.get("exclusiveMinimum")) or 0
        high: float | None = resolved.get("maximum", resolved.get("exclusiveMaximum"))
        value = low if high is None else (low + high) / 2
        return int(value) if declared == "integer" else float(value)
    if declared == "boolean":
        return True
    if declared == "string":
        return "x" * resolved.get("minLength", 0) or "example"
    return None
