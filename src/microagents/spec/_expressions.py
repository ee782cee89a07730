"""Sandboxed expressions and templates: node input bindings, edge conditions, prompts.

Everything a spec author writes between ``{{ }}`` (or in a ``when:``) runs in Jinja2's
immutable sandbox — never ``eval`` — and is parsed once, when the spec is compiled. Parsing
also yields the names an expression reads (``input.ticket``, ``nodes.route.output.category``),
which the graph compiler checks against the schemas before any model is called.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import ChainableUndefined, Template, TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError, TemplateAssertionError
from jinja2.meta import find_undeclared_variables
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import BaseModel

from ..errors import ExpressionError, suggest

Path = tuple[str, ...]
"""A dotted reference read by an expression, e.g. ``("nodes", "route", "output", "category")``."""

BINDING_NAMES = frozenset({"input", "nodes"})
MAP_NAMES = frozenset({"item", "index"})


def _to_json(value: Any, indent: int | None = None) -> str:
    # Jinja's own tojson escapes <, > and & for HTML; prompts want the text as it is.
    return json.dumps(value, indent=indent, ensure_ascii=False, default=_jsonable)


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


MAX_PRODUCED_LENGTH = 100_000
"""A ``*`` that would build a longer string or list than this is refused by the sandbox."""
MAX_EXPONENT = 100


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, plus bounds on ``*`` and ``**`` so that an expression
    cannot build a gigabyte string or a huge number."""

    intercepted_binops = frozenset({"*", "**"})

    def getattr(self, obj: Any, attribute: str) -> Any:
        # `input.items` must read the field `items`, not the dict method: for mappings the
        # key wins (Jinja's default tries the attribute first).
        if isinstance(obj, Mapping) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for sequence, count in ((left, right), (right, left)):
                if (
                    isinstance(sequence, str | list | tuple)
                    and isinstance(count, int)
                    and len(sequence) * count > MAX_PRODUCED_LENGTH
                ):
                    raise SecurityError(
                        f"'*' would build {len(sequence) * count:,} items; "
                        f"the limit is {MAX_PRODUCED_LENGTH:,}"
                    )
        if operator == "**" and isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
            raise SecurityError(f"'**' exponents are limited to {MAX_EXPONENT}")
        return super().call_binop(context, operator, left, right)


def _make_environment() -> ImmutableSandboxedEnvironment:
    env = _Sandbox(
        undefined=ChainableUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["tojson"] = _to_json
    return env


ENVIRONMENT = _make_environment()
"""The one sandboxed environment every template and expression is compiled in."""


@dataclass(frozen=True, slots=True)
class Expression:
    """A compiled expression and the references it reads."""

    source: str
    references: tuple[Path, ...]
    names: frozenset[str]
    evaluate: Callable[[Mapping[str, Any]], Any]
    direct: Path | None = None
    """The path when the whole expression is one reference (so its type is the path's type)."""
    renders_text: bool = False
    """True when the expression is a template that always renders to a string."""


def parse_expression(source: str) -> Expression:
    """Compile a bare expression (``not nodes.check.output.valid``) for the sandbox."""
    ast = _parse("{{ " + source + " }}", source)
    compiled = ENVIRONMENT.compile_expression(source, undefined_to_none=True)

    def in_sandbox(context: Mapping[str, Any]) -> Any:
        return compiled(**context)

    names = _attribute_names(ast)
    return Expression(
        source,
        tuple(_references(ast)),
        frozenset(find_undeclared_variables(ast)),
        _lookup(names, in_sandbox) if names else in_sandbox,
        direct=_direct_path(ast),
    )


_ABSENT = object()


def _lookup(names: tuple[str, ...], in_sandbox: Callable[[Mapping[str, Any]], Any]) -> Any:
    """Evaluate ``a.b.c`` by plain dict lookups while every step is a dict that has the key
    (what the sandbox would return too), and in the sandbox otherwise (a missing key, a
    method name, an object): most bindings are such paths, and this skips setting up a Jinja
    context for each, about a fifth of a small run's CPU."""
    head, rest = names[0], names[1:]

    def evaluate(context: Mapping[str, Any]) -> Any:
        value = context.get(head, _ABSENT)
        for name in rest:
            if type(value) is not dict or name not in value:
                return in_sandbox(context)
            value = value[name]
        return in_sandbox(context) if value is _ABSENT else value

    return evaluate


def _attribute_names(ast: nodes.Template) -> tuple[str, ...] | None:
    """``("a", "b", "c")`` when the expression is exactly ``a.b.c`` (names and dots only)."""
    if len(ast.body) != 1 or not isinstance(ast.body[0], nodes.Output):
        return None
    if len(ast.body[0].nodes) != 1:
        return None
    names: list[str] = []
    current = ast.body[0].nodes[0]
    while isinstance(current, nodes.Getattr):
        names.append(current.attr)
        current = current.node
    if not isinstance(current, nodes.Name) or current.ctx != "load":
        return None
    names.append(current.name)
    return tuple(reversed(names))


def parse_template_string(source: str) -> Expression:
    """Compile a binding string. A string that is exactly one ``{{ expr }}`` keeps the value's
    type (a dict stays a dict); any other string renders to text."""
    stripped = source.strip()
    inner = stripped[2:-2] if stripped.startswith("{{") and stripped.endswith("}}") else None
    if inner is not None and "{{" not in inner and "}}" not in inner:
        return parse_expression(inner.strip())
    ast = _parse(source, source)
    template = ENVIRONMENT.from_string(ast)
    return Expression(
        source,
        tuple(_references(ast)),
        frozenset(find_undeclared_variables(ast)),
        lambda context: template.render(context),
        renders_text=True,
    )


def is_templated(value: str) -> bool:
    return "{{" in value or "{%" in value


def compile_value(value: Any) -> Any:
    """A binding with every templated string replaced by its compiled `Expression`."""
    if isinstance(value, str):
        return parse_template_string(value) if is_templated(value) else value
    if isinstance(value, dict):
        return {key: compile_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [compile_value(item) for item in value]
    return value


def evaluate_value(compiled: Any, context: Mapping[str, Any]) -> Any:
    """Evaluate a binding made by `compile_value` in `context`."""
    if isinstance(compiled, Expression):
        return compiled.evaluate(context)
    if isinstance(compiled, dict):
        return {key: evaluate_value(item, context) for key, item in compiled.items()}
    if isinstance(compiled, list):
        return [evaluate_value(item, context) for item in compiled]
    return compiled


def expressions_in(
    compiled: Any, path: tuple[str | int, ...] = ()
) -> list[tuple[tuple[str | int, ...], Expression]]:
    """Every `Expression` inside a compiled binding, with its path in the binding."""
    if isinstance(compiled, Expression):
        return [(path, compiled)]
    if isinstance(compiled, dict):
        return [
            found for key, item in compiled.items() for found in expressions_in(item, (*path, key))
        ]
    if isinstance(compiled, list):
        return [
            found
            for index, item in enumerate(compiled)
            for found in expressions_in(item, (*path, index))
        ]
    return []


@dataclass(frozen=True, slots=True)
class Prompt:
    """A compiled prompt template and the variables it reads."""

    template: Template
    names: frozenset[str]
    globals: dict[str, Any]
    """The environment's globals, copied once (Jinja's `render` copies them on every call,
    most of a render's cost for a prompt of a few kilobytes)."""

    def render(self, values: Mapping[str, Any]) -> str:
        """Render with the input's fields as top-level names and the whole input as `input`."""
        context = self.template.new_context(
            {**self.globals, **values, "input": values}, shared=True
        )
        try:
            return ENVIRONMENT.concat(self.template.root_render_func(context))
        except Exception:
            return str(ENVIRONMENT.handle_exception())


def compile_prompt(source: str) -> Prompt:
    """Compile a prompt template (sandboxed, like every expression)."""
    ast = _parse(source, source)
    template = ENVIRONMENT.from_string(ast)
    return Prompt(template, frozenset(find_undeclared_variables(ast)), dict(template.globals))


def _parse(source: str, shown: str) -> nodes.Template:
    try:
        ast = ENVIRONMENT.parse(source)
        _refuse_private_access(ast)
        _refuse_other_templates(ast)
        ENVIRONMENT.compile(ast)  # unknown filters and tests are found at compile time
    except TemplateAssertionError as exc:
        raise ExpressionError(_describe_assertion(exc), exc.lineno) from None
    except TemplateSyntaxError as exc:
        raise ExpressionError(_describe_syntax_error(exc, shown), exc.lineno) from None
    return ast


_JINJA_WORDS = {
    "end of print statement": "end of the expression",
    "end of statement block": "end of the block",
}


def _describe_syntax_error(exc: TemplateSyntaxError, shown: str) -> str:
    message = (exc.message or "syntax error").rstrip(".")
    for jinja_word, plain in _JINJA_WORDS.items():
        message = message.replace(jinja_word, plain)
    unclosed = re.search(r"innermost block that needs to be closed is '(\w+)'", message)
    if unclosed:
        block = unclosed.group(1)
        message = f"the template ends inside a '{block}' block"
    hint = ""
    if unclosed:
        hint = f"; close it with {{% end{unclosed.group(1)} %}}"
    elif "got '='" in message:
        hint = "; use == to compare"
    elif "unexpected end of template" in message or "end of the expression" in message:
        hint = "; check that the expression is complete and its brackets are closed"
    if len(shown) > 60 or "\n" in shown:
        return f"template syntax error on its line {exc.lineno}: {message}{hint}"
    return f"cannot parse `{shown}`: {message}{hint}"


def _describe_assertion(exc: TemplateAssertionError) -> str:
    message = exc.message or "invalid template"
    for kind, known in (("filter", ENVIRONMENT.filters), ("test", ENVIRONMENT.tests)):
        prefix = f"No {kind} named '"
        if message.startswith(prefix):
            name = message[len(prefix) :].split("'", 1)[0]
            return f"no {kind} named '{name}'; {suggest(name, sorted(known), kind + 's')}"
    return message[:1].lower() + message[1:]


def _refuse_other_templates(ast: nodes.Template) -> None:
    """A prompt is one file: nothing loads other templates (and an agent's content hash
    covers exactly its spec and its template)."""
    for node in ast.find_all((nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)):
        tag = {
            nodes.Include: "include",
            nodes.Import: "import",
            nodes.FromImport: "from ... import",
            nodes.Extends: "extends",
        }[type(node)]
        raise ExpressionError(
            f"{{% {tag} %}} is not supported: a prompt is one template file; put the text "
            "in it, or pass what varies as an input",
            node.lineno,
        )


def _refuse_private_access(ast: nodes.Template) -> None:
    """Refuse `_private` and `__dunder__` access however it is spelled: `.x`, `['x']`,
    a constant-folded key (`['__cla' ~ 'ss__']`) or the `attr` filter."""
    for node in ast.find_all((nodes.Getattr, nodes.Getitem, nodes.Filter)):
        if isinstance(node, nodes.Getattr):
            names: list[Any] = [node.attr]
        elif isinstance(node, nodes.Getitem):
            names = [_const_key(node)]
        elif isinstance(node, nodes.Filter) and node.name == "attr":
            names = [_const_value(arg) for arg in node.args]
            if any(name is None for name in names):
                raise ExpressionError("the attr filter needs a literal attribute name", node.lineno)
        else:
            continue
        for name in names:
            if isinstance(name, str) and name.startswith("_"):
                raise ExpressionError(
                    f"'{name}' is not allowed: expressions may not reach private or dunder "
                    "attributes (the sandbox refuses them)",
                    node.lineno,
                )


def _const_value(node: nodes.Node | None) -> Any:
    if not isinstance(node, nodes.Expr):
        return None
    try:
        return node.as_const(nodes.EvalContext(ENVIRONMENT))
    except nodes.Impossible:
        return None


def _const_key(node: nodes.Getitem | nodes.Expr) -> Any:
    return _const_value(getattr(node, "arg", None))


def _references(ast: nodes.Node) -> list[Path]:
    """Every dotted path rooted at a name, outermost chains only: ``a.b.c`` gives one path."""
    found: list[Path] = []

    def visit(node: nodes.Node) -> None:
        chain = _chain(node)
        if chain is not None:
            found.append(chain[0])
            for child in chain[1]:
                visit(child)
            return
        for child in node.iter_child_nodes():
            visit(child)

    visit(ast)
    return found


def _direct_path(ast: nodes.Template) -> Path | None:
    if len(ast.body) == 1 and isinstance(ast.body[0], nodes.Output) and len(ast.body[0].nodes) == 1:
        chain = _chain(ast.body[0].nodes[0])
        if chain is not None and not chain[1]:
            return chain[0]
    return None


def _chain(node: nodes.Node) -> tuple[Path, list[nodes.Node]] | None:
    """(path, sub-expressions to keep visiting) if `node` is a name or attribute chain."""
    parts: list[str] = []
    others: list[nodes.Node] = []
    current = node
    while True:
        if isinstance(current, nodes.Getattr):
            parts.append(current.attr)
            current = current.node
        elif isinstance(current, nodes.Getitem):
            key = _const_key(current)
            if key is None:  # a computed key: the path is only known up to here
                parts.clear()
                others.append(current.arg)
            else:
                parts.append(str(key))
            current = current.node
        elif isinstance(current, nodes.Name):
            if current.ctx != "load":
                return None
            parts.append(current.name)
            return tuple(reversed(parts)), others
        else:
            return None
