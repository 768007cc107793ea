"""One field's rules compiled into a function: ``compile_check(rule, source)`` is built once per source
version and called for every record, so the hot path does no rule lookups or type dispatch.

A check takes the decoded value of the field (None when absent) and returns the typed value (None for
a missing optional field; timestamps as epoch microseconds) or raises ``InvalidField`` with a
``ReasonCode`` name, the field and a message. Messages never show the value of a PII field.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from aimesh.ingest.sources import FieldRule, FieldType, SourceDefinition

Scalar = str | int | float | bool | None
FieldCheck = Callable[[Any], Scalar]
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_SHOWN = 64


class InvalidField(Exception):
    """A field breaks its rule: ``reason`` is a ``ReasonCode`` name without prefix."""

    def __init__(self, reason: str, field_name: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.field, self.message = reason, field_name, message


def parse_rfc3339_us(text: str) -> int:
    """Epoch microseconds of an RFC 3339 time with a UTC offset; raises ``ValueError`` otherwise."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("no UTC offset")
    return (moment - EPOCH) // timedelta(microseconds=1)


def kind(value: Any) -> str:
    """The JSON kind of a decoded value, for messages."""
    return {str: "string", bool: "bool", int: "number", float: "number", list: "array", dict: "object"}.get(
        type(value), type(value).__name__
    )


def missing_value(rule: FieldRule, source: SourceDefinition) -> Scalar:
    """None for an optional field; raises the rejection of a missing required one."""
    name = rule.name
    if not rule.required:
        return None
    if name == source.entity_key:
        raise InvalidField("MISSING_ENTITY_KEY", name, f"entity key {name} is missing or empty")
    if name == source.event_time_field:
        raise InvalidField("INVALID_EVENT_TIME", name, f"event time {name} is missing")
    raise InvalidField("MISSING_FIELD", name, f"required field {name} is missing or empty")


def compile_check(rule: FieldRule, source: SourceDefinition) -> FieldCheck:
    """The check of ``rule`` within ``source`` (see the module doc). An empty string counts as missing
    for the entity key and the event id field."""
    present = _typed_check(rule, source)
    if rule.name in (source.entity_key, source.event_id_field):

        def check_identity(value: Any) -> Scalar:
            if value is None or value == "":
                return missing_value(rule, source)
            return present(value)

        return check_identity

    def check(value: Any) -> Scalar:
        if value is None:
            return missing_value(rule, source)
        return present(value)

    return check


def _typed_check(rule: FieldRule, source: SourceDefinition) -> FieldCheck:
    pii = rule.name in source.pii_fields
    if rule.type is FieldType.STRING:
        return _string_check(rule, pii)
    if rule.type is FieldType.TIMESTAMP:
        return _timestamp_check(rule, pii, is_event_time=rule.name == source.event_time_field)
    if rule.type is FieldType.BOOL:
        return _bool_check(rule)
    return _number_check(rule, pii)


def _shown(value: Any, pii: bool) -> str:
    return "(PII)" if pii else repr(value)[:MAX_SHOWN]


def _string_check(rule: FieldRule, pii: bool) -> FieldCheck:
    name, max_length, pattern = rule.name, rule.max_length, rule.pattern
    allowed = frozenset(rule.allowed_values)
    compiled = re.compile(pattern) if pattern else None

    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise InvalidField("TYPE_MISMATCH", name, f"{name} must be a string, got {kind(value)}")
        if max_length is not None and len(value) > max_length:
            raise InvalidField("TOO_LONG", name, f"{name} is {len(value)} characters > max {max_length}")
        if allowed and value not in allowed:
            shown = _shown(value, pii)
            raise InvalidField("NOT_ALLOWED_VALUE", name, f"{name}={shown} is not one of {list(rule.allowed_values)}")
        if compiled is not None and not compiled.fullmatch(value):
            raise InvalidField("NOT_ALLOWED_VALUE", name, f"{name}={_shown(value, pii)} does not match {pattern}")
        return value

    return check


def _bool_check(rule: FieldRule) -> FieldCheck:
    name = rule.name

    def check(value: Any) -> bool:
        if not isinstance(value, bool):
            raise InvalidField("TYPE_MISMATCH", name, f"{name} must be true or false, got {kind(value)}")
        return value

    return check


def _number_check(rule: FieldRule, pii: bool) -> FieldCheck:
    name, low, high, exclusive = rule.name, rule.min, rule.max, rule.min_exclusive
    is_double = rule.type is FieldType.DOUBLE

    def out_of_range(number: float) -> bool:
        if low is not None and (number <= low if exclusive else number < low):
            return True
        return high is not None and number > high

    def check(value: Any) -> int | float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidField("TYPE_MISMATCH", name, f"{name} must be a number, got {kind(value)}")
        number: int | float
        if is_double:
            number = float(value)
        elif isinstance(value, float) and not value.is_integer():
            raise InvalidField("TYPE_MISMATCH", name, f"{name} must be an integer, got {_shown(value, pii)}")
        else:
            number = int(value)
            if not INT64_MIN <= number <= INT64_MAX:
                raise InvalidField("OUT_OF_RANGE", name, f"{name}={_shown(value, pii)} does not fit int64")
        if out_of_range(number):
            bounds = f"{'(' if exclusive else '['}{low}, {high}]"
            raise InvalidField("OUT_OF_RANGE", name, f"{name}={_shown(value, pii)} is outside {bounds}")
        return number

    return check


def _timestamp_check(rule: FieldRule, pii: bool, *, is_event_time: bool) -> FieldCheck:
    name = rule.name
    reason = "INVALID_EVENT_TIME" if is_event_time else "TYPE_MISMATCH"

    def check(value: Any) -> int:
        try:
            if isinstance(value, str):
                return parse_rfc3339_us(value)
            if isinstance(value, int | float) and not isinstance(value, bool):
                micros = int(value * 1000)
                if INT64_MIN <= micros <= INT64_MAX:
                    return micros
                raise ValueError("out of range")
        except (ValueError, OverflowError) as exc:
            shown = _shown(value, pii)
            raise InvalidField(reason, name, f"{name}={shown} is not an RFC 3339 time with offset: {exc}") from exc
        raise InvalidField(reason, name, f"{name} must be an RFC 3339 string or epoch ms, got {kind(value)}")

    return check
