"""Fallback checks name the field; a rule's first holding condition gives the score."""

from __future__ import annotations

import math

import pytest

from aimesh.api.common.v1 import common_pb2
from aimesh.api.training.v1 import training_pb2
from aimesh.core.fallback import MAX_RULE_CONDITIONS, describe, fallback_problems, kind_of, rule_score

C = training_pb2.FallbackCondition


def rule(*conditions: C, default: float = 0.05) -> training_pb2.FallbackRule:
    return training_pb2.FallbackRule(conditions=conditions, default_score=default)


RULE = rule(
    C(field="context.country", op=C.OP_EQ, text="XX", score=0.99),
    C(field="context.amount", op=C.OP_GT, number=1000.0, score=0.9),
    C(field="features.velocity", op=C.OP_GE, number=5.0, score=0.7),
)


@pytest.mark.parametrize(
    ("context", "features", "expected"),
    [
        ({"country": common_pb2.Value(string_value="XX"), "amount": common_pb2.Value(double_value=5000)}, {}, 0.99),
        ({"country": common_pb2.Value(string_value="FR"), "amount": common_pb2.Value(double_value=5000)}, {}, 0.9),
        ({"amount": common_pb2.Value(int64_value=1001)}, {}, 0.9),
        ({"amount": common_pb2.Value(double_value=10)}, {"velocity": 5.0}, 0.7),
        ({"amount": common_pb2.Value(double_value=10)}, {"velocity": 4.9}, 0.05),
        ({}, {}, 0.05),
        ({"amount": common_pb2.Value(string_value="5000")}, {}, 0.05),
        ({"country": common_pb2.Value(double_value=1.0)}, {}, 0.05),
        ({"amount": common_pb2.Value(double_value=math.nan)}, {}, 0.05),
    ],
    ids=["first-wins", "second", "int64", "inline-feature", "none", "empty", "text-vs-number", "number-vs-text", "nan"],
)
def test_rule_score_is_the_first_condition_that_holds(
    context: dict[str, common_pb2.Value], features: dict[str, float], expected: float
) -> None:
    assert rule_score(RULE, context, features) == expected


def test_bool_context_values_compare_as_one_and_zero() -> None:
    flagged = rule(C(field="context.new_device", op=C.OP_EQ, number=1.0, score=0.8))
    assert rule_score(flagged, {"new_device": common_pb2.Value(bool_value=True)}, {}) == 0.8
    assert rule_score(flagged, {"new_device": common_pb2.Value(bool_value=False)}, {}) == 0.05


@pytest.mark.parametrize(
    ("fallback", "problem"),
    [
        (training_pb2.Fallback(constant_score=math.inf), "fallback.constant_score is inf"),
        (
            training_pb2.Fallback(previous_version=training_pb2.PreviousVersionFallback(version=0)),
            "fallback.previous_version.version is 0",
        ),
        (training_pb2.Fallback(rule=rule(default=math.nan)), "fallback.rule.default_score is nan"),
        (
            training_pb2.Fallback(rule=rule(C(field="amount", op=C.OP_GT, number=1.0, score=0.5))),
            "fallback.rule.conditions[0].field is 'amount'",
        ),
        (
            training_pb2.Fallback(rule=rule(C(field="context.amount", op=C.OP_GT, score=0.5))),
            "fallback.rule.conditions[0] has no value",
        ),
        (
            training_pb2.Fallback(rule=rule(C(field="context.country", op=C.OP_LT, text="XX", score=0.5))),
            "fallback.rule.conditions[0].op is OP_LT, expected one of OP_EQ, OP_NE",
        ),
        (
            training_pb2.Fallback(rule=rule(C(field="context.a", op=C.OP_UNSPECIFIED, number=1.0, score=0.5))),
            "fallback.rule.conditions[0].op is OP_UNSPECIFIED",
        ),
        (
            training_pb2.Fallback(rule=rule(C(field="features.x", op=C.OP_EQ, text="a", score=0.5))),
            "compares the inline feature 'x' with a text",
        ),
        (
            training_pb2.Fallback(rule=rule(C(field="context.a", op=C.OP_GT, number=math.inf, score=0.5))),
            "fallback.rule.conditions[0].number is inf",
        ),
        (
            training_pb2.Fallback(rule=rule(C(field="context.a", op=C.OP_GT, number=1.0, score=math.nan))),
            "fallback.rule.conditions[0].score is nan",
        ),
        (
            training_pb2.Fallback(
                rule=rule(*[C(field="context.a", op=C.OP_GT, number=1.0, score=0.5)] * (MAX_RULE_CONDITIONS + 1))
            ),
            f"fallback.rule.conditions holds {MAX_RULE_CONDITIONS + 1}; the limit is {MAX_RULE_CONDITIONS}",
        ),
    ],
)
def test_a_bad_fallback_is_named_by_its_field(fallback: training_pb2.Fallback, problem: str) -> None:
    problems = fallback_problems(fallback)
    assert any(problem in p for p in problems), problems


def test_valid_fallbacks_have_no_problems_and_no_kind_is_none() -> None:
    assert fallback_problems(training_pb2.Fallback(rule=RULE)) == []
    assert fallback_problems(training_pb2.Fallback(constant_score=0.0)) == []
    assert kind_of(training_pb2.Fallback()) is None and kind_of(None) is None
    assert kind_of(training_pb2.Fallback(rule=RULE)) == "rule"


def test_describe_is_one_line_per_kind() -> None:
    assert describe(None) == "none"
    assert describe(training_pb2.Fallback(constant_score=0.5)) == "constant 0.5"
    assert describe(training_pb2.Fallback(previous_version=training_pb2.PreviousVersionFallback(version=3))) == (
        "previous version 3"
    )
    assert describe(training_pb2.Fallback(rule=RULE)) == (
        "rule: context.country == 'XX' -> 0.99; context.amount > 1000 -> 0.9; features.velocity >= 5 -> 0.7; else 0.05"
    )
