"""One field's rules compiled into a function: ``compile_check(rule, source)`` is built once per source
version and called for every record, so the hot path does no rule lookups or type dispatch.

A check takes the decoded value of the field (``ABSENT`` when the payload lacks it, None for a JSON
null) and returns the typed value (None for a missing or null optional field; timestamps as epoch
microseconds) or raises ``InvalidField`` with a ``ReasonCode`` name, the field and a message that says
what was seen (``null``, ``missing``, the JSON kind) and what was expected. Messages never show the
value of a PII field.

The event time field is read in the source's ``event_time_unit`` and must be plausible
(``EventTimeBounds``): at most the maximum future skew ahead of ingest's clock and not before the oldest
accepted time; otherwise ``INVALID_EVENT_TIME`` with both times and, for a number that would be
plausible in another unit, the unit it probably is. Other timestamp fields take RFC 3339 strings or
epoch milliseconds, without plausibility bounds. The clock is read once per checked record.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aimesh.ingest.sources import EventTimeUnit, FieldRule, FieldType, SourceDefinition

Scalar = str | int | float | bool | None
FieldCheck = Callable[[Any], Scalar]
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_SHOWN = 64
ABSENT: Any = type("Absent", (), {"__repr__": lambda self: "ABSENT"})()
"""The value a check gets for a field the payload does not have (None is a JSON null)."""
_MICROS_PER = {
    EventTimeUnit.EPOCH_SECONDS: 1_000_000,
    EventTimeUnit.EPOCH_MILLIS: 1000,
    EventTimeUnit.EPOCH_MICROS: 1,
}
DAY_US = 86_400_000_000


@dataclass(frozen=True, slots=True)
class EventTimeBounds:
    """Which event times are plausible (see the module doc); a source's overrides win (``for_source``).

    ``oldest_us`` (epoch microseconds), when set, is the oldest accepted time; otherwise it is
    ``max_age_days`` before the clock's now. ``clock`` returns epoch seconds (``time.time``).
    """

    max_future_skew_s: float = 300.0
    max_age_days: float = 3650.0
    oldest_us: int | None = None
    clock: Callable[[], float] = field(default=time.time, compare=False)

    def for_source(self, source: SourceDefinition) -> EventTimeBounds:
        """These bounds with ``source``'s ``max_future_skew_seconds`` and ``oldest_event_time`` applied."""
        skew = self.max_future_skew_s if source.max_future_skew_seconds is None else source.max_future_skew_seconds
        oldest = self.oldest_us
        if source.oldest_event_time is not None:
            oldest = (source.oldest_event_time - EPOCH) // timedelta(microseconds=1)
        return EventTimeBounds(skew, self.max_age_days, oldest, self.clock)


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
    """The JSON kind of a decoded value, for messages (``null`` for None)."""
    return {
        str: "string",
        bool: "bool",
        int: "number",
        float: "number",
        list: "array",
        dict: "object",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def missing_value(rule: FieldRule, source: SourceDefinition, value: Any = ABSENT) -> Scalar:
    """None for an optional field; raises the rejection of a required one that is ``value`` (``ABSENT``,
    None for a JSON null, or an empty string)."""
    name = rule.name
    if not rule.required:
        return None
    seen = "missing" if value is ABSENT else "null" if value is None else "empty"
    if name == source.entity_key:
        raise InvalidField("MISSING_ENTITY_KEY", name, f"entity key {name} is {seen}")
    if name == source.event_time_field:
        raise InvalidField("INVALID_EVENT_TIME", name, f"event time {name} is {seen}")
    raise InvalidField("MISSING_FIELD", name, f"required field {name} is {seen}")


def compile_check(rule: FieldRule, source: SourceDefinition, bounds: EventTimeBounds | None = None) -> FieldCheck:
    """The check of ``rule`` within ``source`` (see the module doc); ``bounds`` (default:
    ``EventTimeBounds()``) apply to the event time field. An empty string counts as missing for the
    entity key and the event id field."""
    present = _typed_check(rule, source, bounds or EventTimeBounds())
    if rule.name in (source.entity_key, source.event_id_field):

        def check_identity(value: Any) -> Scalar:
            if value is None or value is ABSENT or value == "":
                return missing_value(rule, source, value)
            return present(value)

        return check_identity

    def check(value: Any) -> Scalar:
        if value is None or value is ABSENT:
            return missing_value(rule, source, value)
        return present(value)

    return check


def _typed_check(rule: FieldRule, source: SourceDefinition, bounds: EventTimeBounds) -> FieldCheck:
    pii = rule.name in source.pii_fields
    if rule.type is FieldType.STRING:
        return _string_check(rule, pii)
    if rule.type is FieldType.TIMESTAMP:
        if rule.name == source.event_time_field:
            return _event_time_check(rule, pii, source.event_time_unit, bounds.for_source(source))
        return _timestamp_check(rule, pii)
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


def _timestamp_check(rule: FieldRule, pii: bool) -> FieldCheck:
    """A timestamp field other than the event time: RFC 3339 text or epoch milliseconds."""
    name = rule.name

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
            raise InvalidField(
                "TYPE_MISMATCH", name, f"{name}={shown} is not an RFC 3339 time with offset: {exc}"
            ) from exc
        raise InvalidField("TYPE_MISMATCH", name, f"{name} must be an RFC 3339 string or epoch ms, got {kind(value)}")

    return check


def _event_time_check(rule: FieldRule, pii: bool, unit: EventTimeUnit, bounds: EventTimeBounds) -> FieldCheck:
    """The event time field: read in ``unit``, then checked against ``bounds`` (see the module doc)."""
    name = rule.name
    factor = _MICROS_PER.get(unit)
    expected = "an RFC 3339 string" if factor is None else f"an RFC 3339 string or a number in {unit.value}"
    skew_us = int(bounds.max_future_skew_s * 1_000_000)
    age_us = int(bounds.max_age_days * DAY_US)
    oldest_fixed, clock = bounds.oldest_us, bounds.clock

    def read(value: Any) -> int:
        if isinstance(value, str):
            try:
                return parse_rfc3339_us(value)
            except ValueError as exc:
                shown = _shown(value, pii)
                raise InvalidField(
                    "INVALID_EVENT_TIME", name, f"{name}={shown} is not an RFC 3339 time with offset: {exc}"
                ) from exc
        if factor is None or isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidField("INVALID_EVENT_TIME", name, f"{name} must be {expected}, got {kind(value)}")
        micros = value * factor if isinstance(value, int) else int(value * factor)
        if not INT64_MIN <= micros <= INT64_MAX:
            raise InvalidField(
                "INVALID_EVENT_TIME", name, f"{name}={_shown(value, pii)} read as {unit.value} does not fit a timestamp"
            )
        return micros

    def check(value: Any) -> int:
        micros = read(value)
        now_us = int(clock() * 1_000_000)
        oldest = oldest_fixed if oldest_fixed is not None else now_us - age_us
        if micros <= now_us + skew_us and micros >= oldest:
            return micros
        shown = "(PII)" if pii else _time_text(micros)
        seen = shown if isinstance(value, str) or pii else f"{value!r} read as {unit.value} is {shown}"
        if micros > now_us:
            problem = (
                f"{name} {seen}, {_duration(micros - now_us)} ahead of ingest's clock "
                f"(max future skew {bounds.max_future_skew_s:g} s)"
            )
        else:
            problem = f"{name} {seen}, older than the oldest accepted {_time_text(oldest)}"
        raise InvalidField("INVALID_EVENT_TIME", name, problem + _unit_hint(value, unit, now_us + skew_us, oldest))

    return check


def _time_text(micros: int) -> str:
    """An epoch-microseconds time as RFC 3339 text (or as a year beyond 9999)."""
    try:
        return (EPOCH + timedelta(microseconds=micros)).isoformat().replace("+00:00", "Z")
    except OverflowError:
        return f"year {1970 + micros // (DAY_US * 36525 // 100):,}"


def _duration(micros: int) -> str:
    """A positive duration in its largest whole unit (years, days, hours, minutes or seconds)."""
    for size, unit in ((DAY_US * 365, "years"), (DAY_US, "days"), (3_600_000_000, "hours"), (60_000_000, "minutes")):
        if micros >= size:
            return f"{micros // size:,} {unit}"
    return f"{micros / 1_000_000:g} seconds"


def _unit_hint(value: Any, unit: EventTimeUnit, latest: int, oldest: int) -> str:
    """For a number that is plausible in another epoch unit: the question whether that is the source's."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return ""
    for other, factor in _MICROS_PER.items():
        if other is not unit and oldest <= value * factor <= latest:
            return f": is the source's event_time_unit {other.value}?"
    return ""
