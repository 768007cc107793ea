"""The one decode + validate path of ingest: upstream bytes -> ``ValidRecord`` or ``Rejection``.

The Kafka consumer and the gRPC push API both call ``Validator.validate`` (the payload is decoded by
the source's ``aimesh.ingest.formats.PayloadFormat``: JSON by default, or a CSV line).

``Validator.validate`` never raises for any input bytes: every problem becomes a ``Rejection`` with a
``ReasonCode`` name, a message and the offending field. Messages never contain the value of a PII
field. The first problem found (fields in definition order) is the one reported.

PII: in a ``ValidRecord`` the PII fields are gone and tokenised ones appear under their token attribute.
A ``Rejection`` carries ``dlq_payload``: the original bytes, except that when they decode, every PII
field present is replaced by its token (``masked_fields`` names them). Bytes that do not decode are
kept except for runs of 12-19 digits (possible account or ID numbers), which are tokenised.

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
from typing import Any

import orjson

from aimesh.core.events import Event
from aimesh.ingest.field_checks import (
    INT64_MAX,
    INT64_MIN,
    FieldCheck,
    InvalidField,
    Scalar,
    compile_check,
    missing_value,
)
from aimesh.ingest.formats import DecodeFailure, format_for
from aimesh.ingest.pii import Tokenizer
from aimesh.ingest.sources import FieldRule, SourceDefinition

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


class Validator:
    """Validates and canonicalises the payloads of one source (see the module doc); stateless, cheap to call."""

    def __init__(self, source: SourceDefinition, tokenizer: Tokenizer, *, max_payload_bytes: int = 1024 * 1024) -> None:
        self.source = source
        self._tokenizer = tokenizer
        self._max_payload_bytes = max_payload_bytes
        self._pii = frozenset(source.pii_fields)
        self._format = format_for(source)
        self._checks: list[tuple[str, FieldCheck]] = [(f.name, compile_check(f, source)) for f in source.fields]
        names = [f.name for f in source.fields]
        self._event_id_at = names.index(source.event_id_field)
        self._entity_key_at = names.index(source.entity_key)
        self._event_time_at = names.index(source.event_time_field)
        self._attribute_slots = _attribute_slots(source)
        self._not_passed_through = frozenset(names) | self._pii | {out for _, out, _ in self._attribute_slots}

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
        except InvalidField as invalid:
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
        tokens for; bytes that do not decode get their long digit runs tokenised. Never raises."""
        try:
            document = self._format.decode(payload)
        except DecodeFailure:
            return self._tokenizer.scrub_digit_runs(payload)[0], ()
        return self._masked(document, payload, self._pii.intersection(masked))

    def _unparsed(self, reason: str, message: str, payload: bytes) -> Rejection:
        """A rejection of bytes that do not decode: runs of 12-19 digits (possibly PII) are tokenised."""
        scrubbed, count = self._tokenizer.scrub_digit_runs(payload)
        if count:
            message += f" ({count} run(s) of 12-19 digits, possibly PII, replaced by their tokens in original_payload)"
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
        """The record of a decoded document; raises ``InvalidField`` for the first field (in definition
        order) that breaks its rule."""
        checks = self._checks if not tokenised else self._token_checks(tokenised)
        get = document.get
        values = [check(get(name)) for name, check in checks]
        attributes: dict[str, Scalar] = {}
        for at, out, tokenise in self._attribute_slots:
            value = values[at]
            if tokenise and value is not None:
                name = checks[at][0]
                value = str(value) if name in tokenised else self._tokenizer.token(str(value))
            attributes[out] = value
        for name, value in document.items():
            if name not in self._not_passed_through:
                attributes[name] = _passthrough(value)
        event_time = values[self._event_time_at]
        assert isinstance(event_time, int)
        return ValidRecord(
            event_id=str(values[self._event_id_at]),
            entity_key=str(values[self._entity_key_at]),
            event_time_us=event_time,
            attributes=attributes,
        )

    def _token_checks(self, tokenised: frozenset[str]) -> list[tuple[str, FieldCheck]]:
        """The checks with those of already-masked PII fields replaced by the token check."""
        rules = {f.name: f for f in self.source.fields}
        return [(name, self._token_check(rules[name]) if name in tokenised else check) for name, check in self._checks]

    def _token_check(self, rule: FieldRule) -> FieldCheck:
        """The check of an already-masked PII field: it holds a token (its raw-value rules do not apply)."""
        source = self.source

        def check(value: Any) -> Scalar:
            if value is None:
                return missing_value(rule, source)
            if not isinstance(value, str) or not TOKEN.fullmatch(value):
                raise InvalidField(
                    "NOT_ALLOWED_VALUE",
                    rule.name,
                    f"{rule.name} is marked {PII_MASKED_HEADER} but holds no PII token",
                )
            return value

        return check


def _attribute_slots(source: SourceDefinition) -> list[tuple[int, str, bool]]:
    """Where each attribute comes from, in definition order: (field index, attribute name, tokenise).

    Identity fields are no attributes; a PII field is one only when it has a token attribute (its
    token under that name), else it is dropped.
    """
    identity = {source.event_id_field, source.entity_key, source.event_time_field}
    slots: list[tuple[int, str, bool]] = []
    for at, rule in enumerate(source.fields):
        if rule.name in identity:
            continue
        if rule.name in source.pii_fields:
            if token_field := source.pii_token_fields.get(rule.name):
                slots.append((at, token_field, True))
            continue
        slots.append((at, rule.name, False))
    return slots


def _text(value: Any) -> str:
    """A PII value as the text its token is computed from (non-strings as their JSON)."""
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _passthrough(value: Any) -> Scalar:
    """An undeclared field as a scalar attribute: objects and arrays become their JSON text."""
    if value is None or isinstance(value, str | bool | int | float):
        if isinstance(value, int) and not isinstance(value, bool) and not INT64_MIN <= value <= INT64_MAX:
            return str(value)
        return value
    return orjson.dumps(value).decode()
