"""The one decode + validate path of ingest: upstream bytes -> ``ValidRecord`` or ``Rejection``.

The Kafka consumer and the gRPC push API both call ``Validator.validate`` (the payload is decoded by
the source's ``aimesh.ingest.formats.PayloadFormat``: JSON by default, or a CSV line).

``Validator.validate`` never raises for any input bytes: every problem becomes a ``Rejection`` with a
``ReasonCode`` name, a message and the offending field. Messages never contain the value of a PII
field. The first problem found (fields in definition order) is the one reported.

PII: in a ``ValidRecord`` the PII fields are gone and tokenised ones appear under their token attribute.
A ``Rejection`` carries ``dlq_payload``: the original bytes, except that when they decode, every PII
field present is replaced by its token (``masked_fields`` names them). Bytes that do not decode are
kept except for digit runs that may be card numbers, which are tokenised.

Already-masked PII: a record re-submitted from the DLQ (``aimesh ingest replay-dlq``) carries tokens
instead of raw PII values and says so in the header ``aimesh-pii-masked`` (comma-separated field
names; ``masked`` of ``validate``). Such a field must hold a token (64 lowercase hex digits) and skips
the field's other rules, which describe the raw value; the token is carried over as it is, so the
raw value never has to come back.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from aimesh.core.events import Event
from aimesh.ingest.formats import DecodeFailure, format_for
from aimesh.ingest.pii import Tokenizer
from aimesh.ingest.sources import FieldRule, FieldType, SourceDefinition

Scalar = str | int | float | bool | None
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_SHOWN = 64
PII_MASKED_HEADER = "aimesh-pii-masked"
TOKEN = re.compile(r"[0-9a-f]{64}")


def masked_fields_header(fields: Collection[str]) -> tuple[str, bytes]:
    """The header that marks ``fields`` of a re-submitted payload as already tokenised."""
    return (PII_MASKED_HEADER, ",".join(sorted(fields)).encode())


def parse_masked_fields(value: str | None) -> frozenset[str]:
    """The field names an ``aimesh-pii-masked`` header value declares as already tokenised."""
    return frozenset(name.strip() for name in (value or "").split(",") if name.strip())


@dataclass(frozen=True, slots=True)
class ValidRecord:
    """An accepted record: identity, event time (epoch microseconds) and typed, PII-free attributes."""

    event_id: str
    entity_key: str
    event_time_us: int
    attributes: dict[str, Scalar]


@dataclass(frozen=True, slots=True)
class Rejection:
    """A rejected record: ``reason`` is a ``ReasonCode`` name without prefix (e.g. ``MISSING_FIELD``)."""

    reason: str
    message: str
    field: str = ""
    event_id: str = ""
    dlq_payload: bytes = b""
    masked_fields: tuple[str, ...] = ()


class _Invalid(Exception):
    def __init__(self, reason: str, field_name: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.field, self.message = reason, field_name, message


def parse_rfc3339_us(text: str) -> int:
    """Epoch microseconds of an RFC 3339 time with a UTC offset; raises ``ValueError`` otherwise."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("no UTC offset")
    return (moment - EPOCH) // timedelta(microseconds=1)


class Validator:
    """Validates and canonicalises the payloads of one source (see the module doc); stateless, cheap to call."""

    def __init__(self, source: SourceDefinition, tokenizer: Tokenizer, *, max_payload_bytes: int = 1024 * 1024) -> None:
        self.source = source
        self._tokenizer = tokenizer
        self._max_payload_bytes = max_payload_bytes
        self._patterns = {f.name: re.compile(f.pattern) for f in source.fields if f.pattern}
        self._pii = frozenset(source.pii_fields)
        self._identity = {source.event_id_field, source.entity_key, source.event_time_field}
        self._format = format_for(source)

    def validate_event(self, event: Event) -> ValidRecord | Rejection:
        """``validate`` of a consumed record, honouring its ``aimesh-pii-masked`` header; never raises."""
        return self.validate(event.value, masked=parse_masked_fields(event.header(PII_MASKED_HEADER)))

    def validate(self, payload: bytes, *, masked: Collection[str] = ()) -> ValidRecord | Rejection:
        """Check ``payload`` against the source definition; never raises.

        ``masked`` names PII fields that hold their token already (see the module doc); names that are
        not PII fields of the source are ignored.
        """
        if len(payload) > self._max_payload_bytes:
            return self._unparsed(
                "PAYLOAD_TOO_LARGE", f"{len(payload)} bytes > limit {self._max_payload_bytes}", payload
            )
        try:
            document = self._format.decode(payload)
        except DecodeFailure as failure:
            return self._unparsed("MALFORMED_PAYLOAD", failure.message, payload)
        tokenised = self._pii.intersection(masked)
        try:
            return self._record(document, tokenised)
        except _Invalid as invalid:
            event_id = document.get(self.source.event_id_field)
            dlq_payload, masked_now = self._masked(document, payload, tokenised)
            return Rejection(
                invalid.reason,
                invalid.message,
                field=invalid.field,
                event_id=event_id if isinstance(event_id, str) else "",
                dlq_payload=dlq_payload,
                masked_fields=masked_now,
            )

    def masked_payload(self, payload: bytes, *, masked: Collection[str] = ()) -> tuple[bytes, tuple[str, ...]]:
        """``payload`` as the DLQ keeps it (PII values replaced by their tokens) and the PII fields it holds
        tokens for; bytes that do not decode get their possible card numbers tokenised. Never raises."""
        try:
            document = self._format.decode(payload)
        except DecodeFailure:
            return self._tokenizer.scrub_card_numbers(payload)[0], ()
        return self._masked(document, payload, self._pii.intersection(masked))

    def _unparsed(self, reason: str, message: str, payload: bytes) -> Rejection:
        """A rejection of bytes that are no JSON object: digit runs that may be card numbers are tokenised."""
        scrubbed, count = self._tokenizer.scrub_card_numbers(payload)
        if count:
            message += f" ({count} digit run(s) that may be card numbers replaced by their tokens in original_payload)"
        return Rejection(reason, message, dlq_payload=scrubbed)

    def _masked(
        self, document: dict[str, Any], payload: bytes, tokenised: frozenset[str]
    ) -> tuple[bytes, tuple[str, ...]]:
        """The DLQ payload (raw PII values replaced by their tokens) and the PII fields it holds tokens for."""
        present = tuple(name for name in self.source.pii_fields if document.get(name) is not None)
        tokens = {name: self._tokenizer.token(_text(document[name])) for name in present if name not in tokenised}
        if not tokens:
            return payload, present
        return self._format.replaced(payload, document, tokens), present

    def _record(self, document: dict[str, Any], tokenised: frozenset[str]) -> ValidRecord:
        src = self.source
        values: dict[str, Scalar] = {
            rule.name: self._token(rule, document.get(rule.name))
            if rule.name in tokenised
            else self._checked(rule, document.get(rule.name))
            for rule in src.fields
        }
        attributes: dict[str, Scalar] = {}
        for name, value in values.items():
            if name in self._identity:
                continue
            if name in self._pii:
                token_field = src.pii_token_fields.get(name)
                if token_field is not None and value is not None:
                    token = str(value) if name in tokenised else self._tokenizer.token(str(value))
                    attributes[token_field] = token
                elif token_field is not None:
                    attributes[token_field] = None
                continue
            attributes[name] = value
        for name, value in document.items():
            if name not in values and name not in self._pii and name not in attributes:
                attributes[name] = _passthrough(value)
        event_time = values[src.event_time_field]
        assert isinstance(event_time, int)
        return ValidRecord(
            event_id=str(values[src.event_id_field]),
            entity_key=str(values[src.entity_key]),
            event_time_us=event_time,
            attributes=attributes,
        )

    def _checked(self, rule: FieldRule, value: Any) -> Scalar:
        src = self.source
        if value is None or (value == "" and rule.name in (src.entity_key, src.event_id_field)):
            return self._missing(rule)
        shown = "(PII)" if rule.name in self._pii else repr(value)[:MAX_SHOWN]
        if rule.type is FieldType.TIMESTAMP:
            return self._timestamp(rule, value, shown, is_event_time=rule.name == src.event_time_field)
        if rule.type is FieldType.STRING:
            return self._string(rule, value, shown)
        if rule.type is FieldType.BOOL:
            if not isinstance(value, bool):
                raise _Invalid("TYPE_MISMATCH", rule.name, f"{rule.name} must be true or false, got {_kind(value)}")
            return value
        return self._number(rule, value, shown)

    def _token(self, rule: FieldRule, value: Any) -> Scalar:
        """The token an already-masked PII field holds (its raw-value rules do not apply)."""
        if value is None:
            return self._missing(rule)
        if not isinstance(value, str) or not TOKEN.fullmatch(value):
            raise _Invalid(
                "NOT_ALLOWED_VALUE", rule.name, f"{rule.name} is marked {PII_MASKED_HEADER} but holds no PII token"
            )
        return value

    def _missing(self, rule: FieldRule) -> Scalar:
        """None for an optional field; raises the rejection of a missing required one."""
        name = rule.name
        if not rule.required:
            return None
        if name == self.source.entity_key:
            raise _Invalid("MISSING_ENTITY_KEY", name, f"entity key {name} is missing or empty")
        if name == self.source.event_time_field:
            raise _Invalid("INVALID_EVENT_TIME", name, f"event time {name} is missing")
        raise _Invalid("MISSING_FIELD", name, f"required field {name} is missing or empty")

    def _string(self, rule: FieldRule, value: Any, shown: str) -> str:
        name = rule.name
        if not isinstance(value, str):
            raise _Invalid("TYPE_MISMATCH", name, f"{name} must be a string, got {_kind(value)}")
        if rule.max_length is not None and len(value) > rule.max_length:
            raise _Invalid("TOO_LONG", name, f"{name} is {len(value)} characters > max {rule.max_length}")
        if rule.allowed_values and value not in rule.allowed_values:
            raise _Invalid("NOT_ALLOWED_VALUE", name, f"{name}={shown} is not one of {list(rule.allowed_values)}")
        pattern = self._patterns.get(name)
        if pattern is not None and not pattern.fullmatch(value):
            raise _Invalid("NOT_ALLOWED_VALUE", name, f"{name}={shown} does not match {rule.pattern}")
        return value

    def _number(self, rule: FieldRule, value: Any, shown: str) -> int | float:
        name = rule.name
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _Invalid("TYPE_MISMATCH", name, f"{name} must be a number, got {_kind(value)}")
        if rule.type is FieldType.DOUBLE:
            number: int | float = float(value)
        elif isinstance(value, float) and not value.is_integer():
            raise _Invalid("TYPE_MISMATCH", name, f"{name} must be an integer, got {shown}")
        else:
            number = int(value)
            if not INT64_MIN <= number <= INT64_MAX:
                raise _Invalid("OUT_OF_RANGE", name, f"{name}={shown} does not fit int64")
        self._check_range(rule, number, shown)
        return number

    @staticmethod
    def _check_range(rule: FieldRule, number: float, shown: str) -> None:
        low_fails = rule.min is not None and (number <= rule.min if rule.min_exclusive else number < rule.min)
        high_fails = rule.max is not None and number > rule.max
        if low_fails or high_fails:
            low = "(" if rule.min_exclusive else "["
            raise _Invalid("OUT_OF_RANGE", rule.name, f"{rule.name}={shown} is outside {low}{rule.min}, {rule.max}]")

    @staticmethod
    def _timestamp(rule: FieldRule, value: Any, shown: str, *, is_event_time: bool) -> int:
        reason = "INVALID_EVENT_TIME" if is_event_time else "TYPE_MISMATCH"
        name = rule.name
        try:
            if isinstance(value, str):
                return parse_rfc3339_us(value)
            if isinstance(value, int | float) and not isinstance(value, bool):
                micros = int(value * 1000)
                if INT64_MIN <= micros <= INT64_MAX:
                    return micros
                raise ValueError("out of range")
        except (ValueError, OverflowError) as exc:
            raise _Invalid(reason, name, f"{name}={shown} is not an RFC 3339 time with offset: {exc}") from exc
        raise _Invalid(reason, name, f"{name} must be an RFC 3339 string or epoch ms, got {_kind(value)}")


def _text(value: Any) -> str:
    """A PII value as the text its token is computed from (non-strings as their JSON)."""
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _kind(value: Any) -> str:
    return {str: "string", bool: "bool", int: "number", float: "number", list: "array", dict: "object"}.get(
        type(value), type(value).__name__
    )


def _passthrough(value: Any) -> Scalar:
    """An undeclared field as a scalar attribute: objects and arrays become their JSON text."""
    if value is None or isinstance(value, str | bool | int | float):
        if isinstance(value, int) and not isinstance(value, bool) and not INT64_MIN <= value <= INT64_MAX:
            return str(value)
        return value
    return orjson.dumps(value).decode()
