from __future__ import annotations

import pytest
from jinja2.exceptions import SecurityError
from pydantic import BaseModel

from microagents.errors import ExpressionError
from microagents.spec._expressions import (
    ENVIRONMENT,
    compile_value,
    evaluate_value,
    parse_expression,
    parse_template_string,
)

CONTEXT = {
    "input": {"ticket": "hi", "n": 2},
    "nodes": {"route": {"output": {"category": "billing"}}},
}


def test_a_single_expression_keeps_its_type_and_text_renders() -> None:
    binding = compile_value(
        {
            "whole": "{{ nodes.route.output }}",
            "text": "Ticket: {{ input.ticket }}!",
            "n": "{{ input.n }}",
            "lit": 3,
        }
    )
    assert evaluate_value(binding, CONTEXT) == {
        "whole": {"category": "billing"},
        "text": "Ticket: hi!",
        "n": 2,
        "lit": 3,
    }


def test_references_are_extracted_from_chains() -> None:
    expression = parse_expression(
        "nodes.route.output.category == 'billing' and input['ticket'] | length > 0"
    )
    assert set(expression.references) == {
        ("nodes", "route", "output", "category"),
        ("input", "ticket"),
    }
    assert expression.direct is None
    assert parse_template_string("{{ nodes.route.output }}").direct == ("nodes", "route", "output")


def test_a_node_that_has_not_run_reads_as_none() -> None:
    expression = parse_expression("nodes.check.output.valid")
    assert expression.evaluate(CONTEXT) is None


@pytest.mark.parametrize(
    "source",
    ["''.__class__", "input.__init__", "input['__class__']", "lipsum.__globals__", "x._private"],
)
def test_private_and_dunder_access_is_refused_at_compile_time(source: str) -> None:
    with pytest.raises(ExpressionError, match="not allowed"):
        parse_expression(source)


def test_the_runtime_sandbox_refuses_mutation() -> None:
    expression = parse_expression("input.tags.append(1)")
    with pytest.raises(SecurityError):
        expression.evaluate({"input": {"tags": []}})


def test_syntax_errors_and_unknown_filters() -> None:
    with pytest.raises(ExpressionError, match="cannot parse"):
        parse_expression("nodes.route.output.")
    with pytest.raises(ExpressionError, match="no filter named 'nope'"):
        parse_template_string("{{ input.ticket | nope }}")


def test_mapping_keys_win_over_dict_methods() -> None:
    context = {"input": {"items": [1, 2], "keys": "k"}}
    assert parse_expression("input.items").evaluate(context) == [1, 2]
    assert parse_template_string("{{ input.keys }}").evaluate(context) == "k"


def test_expressions_cannot_build_huge_values() -> None:
    with pytest.raises(SecurityError, match="limit is 100,000"):
        parse_expression("input.ticket * 1000000000").evaluate({"input": {"ticket": "ab"}})
    with pytest.raises(SecurityError, match="exponents are limited"):
        parse_expression("9 ** input.n").evaluate({"input": {"n": 10**6}})
    assert parse_expression("input.ticket * 3").evaluate({"input": {"ticket": "ab"}}) == "ababab"


@pytest.mark.parametrize(
    "source",
    [
        "input.ticket",
        "input.missing",
        "input.missing.deeper",
        "input.items",  # no such key: the sandbox's answer (the dict method), not a lookup
        "input.nested.list",
        "input.nested.none.x",
        "input.nested.model.name",
        "nodes.route.output.category",
        "nodes.absent.output",
        "unknown_name",
        "input",
    ],
)
def test_plain_paths_take_a_shortcut_that_answers_as_the_sandbox_does(source: str) -> None:
    class Named(BaseModel):
        name: str = "n"

    context = {
        "input": {"ticket": "hi", "nested": {"list": [1, 2], "none": None, "model": Named()}},
        "nodes": {"route": {"output": {"category": "billing"}}},
    }
    in_sandbox = ENVIRONMENT.compile_expression(source, undefined_to_none=True)(**context)
    assert parse_expression(source).evaluate(context) == in_sandbox
