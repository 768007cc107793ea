"""A model's fallback (``aimesh.api.training.v1.Fallback``): its checks and the rule it may hold.

A ``Fallback`` holds one kind: a constant score, a ``FallbackRule`` over the request's own fields, or a
``PreviousVersionFallback`` naming another version of the model. The training registry refuses a policy
whose fallback ``fallback_problems`` objects to (``InvalidArgument``), the model catalog refuses such an
event (``PoisonEvent``): both name the field path under ``fallback.``. A ``Fallback`` of no kind is no
fallback (``kind_of`` answers None for it).

``rule_score(rule, context, features)`` evaluates a rule: its conditions in order, the first that holds
gives the score, none the rule's ``default_score``. A condition's field is ``context.<name>`` (a
``ScoreRequest.context`` value: double, int64 and bool values are numbers, true being 1; string values are
text) or ``features.<name>`` (an inline feature); a condition on a field the request lacks, or of the other
type than its value, does not hold. Only the request is read: no feature service, no model.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping

from aimesh.api.common.v1 import common_pb2
from aimesh.api.training.v1 import training_pb2

MAX_RULE_CONDITIONS = 32
"""Most conditions one ``FallbackRule`` may hold."""

_PREFIXES = ("context.", "features.")
Op = training_pb2.FallbackCondition.Op
_NUMERIC_OPS: Mapping[int, Callable[[float, float], bool]] = {
    training_pb2.FallbackCondition.OP_LT: operator.lt,
    training_pb2.FallbackCondition.OP_LE: operator.le,
    training_pb2.FallbackCondition.OP_GT: operator.gt,
    training_pb2.FallbackCondition.OP_GE: operator.ge,
    training_pb2.FallbackCondition.OP_EQ: operator.eq,
    training_pb2.FallbackCondition.OP_NE: operator.ne,
}
_TEXT_OPS: Mapping[int, Callable[[str, str], bool]] = {
    training_pb2.FallbackCondition.OP_EQ: operator.eq,
    training_pb2.FallbackCondition.OP_NE: operator.ne,
}


def kind_of(fallback: training_pb2.Fallback | None) -> str | None:
    """The kind ``fallback`` holds (``constant_score``, ``rule``, ``previous_version``); None for none."""
    return None if fallback is None else fallback.WhichOneof("kind")


def fallback_problems(fallback: training_pb2.Fallback) -> list[str]:
    """What is wrong with ``fallback``, each naming its field (``fallback.rule.conditions[0].op ...``);
    empty when it is valid (or holds no kind)."""
    kind = kind_of(fallback)
    if kind == "constant_score" and not math.isfinite(fallback.constant_score):
        return [f"fallback.constant_score is {fallback.constant_score}, expected a finite number"]
    if kind == "previous_version" and fallback.previous_version.version <= 0:
        return [f"fallback.previous_version.version is {fallback.previous_version.version}, expected a version"]
    if kind == "rule":
        return _rule_problems(fallback.rule)
    return []


def _rule_problems(rule: training_pb2.FallbackRule) -> list[str]:
    problems: list[str] = []
    if len(rule.conditions) > MAX_RULE_CONDITIONS:
        problems.append(f"fallback.rule.conditions holds {len(rule.conditions)}; the limit is {MAX_RULE_CONDITIONS}")
    if not math.isfinite(rule.default_score):
        problems.append(f"fallback.rule.default_score is {rule.default_score}, expected a finite number")
    for i, condition in enumerate(rule.conditions[:MAX_RULE_CONDITIONS]):
        path = f"fallback.rule.conditions[{i}]"
        name = condition.field.partition(".")[2]
        if not condition.field.startswith(_PREFIXES) or not name:
            problems.append(f"{path}.field is {condition.field!r}, expected 'context.<name>' or 'features.<name>'")
        value = condition.WhichOneof("value")
        if value is None:
            problems.append(f"{path} has no value (number or text)")
        elif value == "number" and not math.isfinite(condition.number):
            problems.append(f"{path}.number is {condition.number}, expected a finite number")
        elif value == "text" and condition.field.startswith("features."):
            problems.append(f"{path} compares the inline feature {name!r} with a text; inline features are numbers")
        ops = _TEXT_OPS if value == "text" else _NUMERIC_OPS
        if condition.op not in ops:
            allowed = ", ".join(Op.Name(o) for o in ops)
            problems.append(f"{path}.op is {Op.Name(condition.op)}, expected one of {allowed}")
        if not math.isfinite(condition.score):
            problems.append(f"{path}.score is {condition.score}, expected a finite number")
    return problems


def _request_value(
    field: str, context: Mapping[str, common_pb2.Value], features: Mapping[str, float]
) -> float | str | None:
    """The request's value of a condition's ``field`` (None when absent or not a scalar)."""
    source, _, name = field.partition(".")
    if source == "features":
        return features.get(name)
    value = context.get(name)
    kind = None if value is None else value.WhichOneof("kind")
    if value is None or kind is None or kind == "list_value":
        return None
    if kind == "string_value":
        return value.string_value
    return float(getattr(value, kind))


def _holds(
    condition: training_pb2.FallbackCondition,
    context: Mapping[str, common_pb2.Value],
    features: Mapping[str, float],
) -> bool:
    found = _request_value(condition.field, context, features)
    if condition.WhichOneof("value") == "text":
        text_op = _TEXT_OPS.get(condition.op)
        return isinstance(found, str) and text_op is not None and text_op(found, condition.text)
    number_op = _NUMERIC_OPS.get(condition.op)
    return (
        isinstance(found, float)
        and math.isfinite(found)
        and number_op is not None
        and number_op(found, condition.number)
    )


def rule_score(
    rule: training_pb2.FallbackRule, context: Mapping[str, common_pb2.Value], features: Mapping[str, float]
) -> float:
    """The score ``rule`` gives a request with these ``context`` values and inline ``features`` (see the
    module doc)."""
    for condition in rule.conditions:
        if _holds(condition, context, features):
            return float(condition.score)
    return float(rule.default_score)


def describe(fallback: training_pb2.Fallback | None) -> str:
    """One line for operators: ``constant 0.5``, ``rule: context.amount > 1000 -> 0.9; else 0.05``,
    ``previous version 3``, or ``none``."""
    kind = kind_of(fallback)
    if fallback is None or kind is None:
        return "none"
    if kind == "constant_score":
        return f"constant {fallback.constant_score:g}"
    if kind == "previous_version":
        return f"previous version {fallback.previous_version.version}"
    symbols = {"OP_LT": "<", "OP_LE": "<=", "OP_GT": ">", "OP_GE": ">=", "OP_EQ": "==", "OP_NE": "!="}
    parts = [
        f"{c.field} {symbols.get(Op.Name(c.op), '?')} {_shown(c)} -> {c.score:g}" for c in fallback.rule.conditions
    ]
    return "rule: " + "; ".join([*parts, f"else {fallback.rule.default_score:g}"])


def _shown(condition: training_pb2.FallbackCondition) -> str:
    return repr(condition.text) if condition.WhichOneof("value") == "text" else f"{condition.number:g}"
