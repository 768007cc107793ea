"""The one decode + validate path of ingest: upstream bytes -> ``ValidRecord`` or ``Rejection``.

The Kafka consumer and the gRPC push API both call ``Validator.validate`` (the payload is decoded by
the source's ``aimesh.ingest.formats.PayloadFormat``: JSON by default, or a CSV line).

``Validator.validate`` never raises for any input bytes: every problem becomes a ``Rejection`` with a
``ReasonCode`` name, a message and the offending field. Messages never contain the value of a PII
field. The first problem found (fields in definition order) is the one reported.

PII: in a ``ValidRecord`` the PII fields are gone and tokenised ones appear under their token attribute.
Undeclared payload fields follow the source's ``undeclared_fields``: ``drop`` (the default; how many
were dropped is ``ValidRecord.undeclared_dropped``), ``keep`` (passed through as attributes, objects and
arrays as their JSON text; a name that clashes with a token attribute is dropped) or ``reject``
(``UNDECLARED_FIELD`` naming them, checked after the declared fields). A CSV source's columns without
a field rule are declared by ``csv_columns``: they are kept as strings. Every string a ``ValidRecord``
holds (event id, entity key, declared non-PII strings, kept undeclared names and values) has its
PANs (``aimesh.core.pan``: Luhn-valid 13-19 digit runs) replaced by their tokens; so has a kept
undeclared number whose digits are a PAN (it becomes the token string).

A ``Rejection`` carries ``dlq_payload``: the original bytes, except that when they decode, every PII
field present is replaced by its token (``masked_fields`` names them) and every PAN anywhere else in
the document by its token (the message names those fields); a JSON payload with such replacements is
re-serialised. Bytes that do not decode are kept except for runs of 12-19 digits (possible account or
ID numbers) and grouped PANs, which are tokenised. A rejection's message, event id and field have
their PANs tokenised too.

Already-masked PII: a record re-submitted from the DLQ (``aimesh ingest replay-dlq``) carries tokens
instead of raw PII values and says so in the header ``aimesh-pii-masked`` (comma-separated field
names; ``masked`` of ``validate``). Such a field must hold a token (64 lowercase hex digits) and skips
the field's other rules, which describe the raw value; the token is carried over as it is, so the
raw value never has to come back.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from aimesh.core.events import Event
from aimesh.ingest.field_checks import (
    ABSENT,
    INT64_MAX,
    INT64_MIN,
    EventTimeBounds,
    FieldCheck,
    InvalidField,
    Scalar,
    compile_check,
    missing_value,
)
from aimesh.ingest.formats import DecodeFailure, format_for
from aimesh.ingest.pii import PanMasker, Tokenizer
from aimesh.ingest.sources import FieldRule, SourceDefinition, UndeclaredFields

PII_MASKED_HEADER = "aimesh-pii-masked"
TOKEN = re.compile(r"[0-9a-f]{64}")
MAX_NAMED = 10


def masked_fields_header(fields: Collection[str]) -> tuple[str, bytes]:
    """The header that marks ``fields`` of a re-submitted payload as already tokenised."""
    return (PII_MASKED_HEADER, ",".join(sorted(fields)).encode())


def parse_masked_fields(value: str | None) -> frozenset[str]:
    """The field names an ``aimesh-pii-masked`` header value declares as already tokenised."""
    return frozenset(name.strip() for name in (value or "").split(",") if name.strip())


@dataclass(frozen=True, slots=True)
class ValidRecord:
    """An accepted record: identity, event time (epoch microseconds) and typed, PII-free attributes.

    ``undeclared_dropped``: how many undeclared fields were left out; ``pans_masked``: how many PANs
    were replaced by their tokens (both for the metrics).
    """

    event_id: str
    entity_key: str
    event_time_us: int
    attributes: dict[str, Scalar]
    undeclared_dropped: int = 0
    pans_masked: int = 0


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

    def __init__(
        self,
        source: SourceDefinition,
        tokenizer: Tokenizer,
        *,
        max_payload_bytes: int = 1024 * 1024,
        event_time_bounds: EventTimeBounds | None = None,
    ) -> None:
        """``event_time_bounds`` (default ``EventTimeBounds()``: 5 minutes ahead, 10 years back) are the
        service's; the source's own overrides apply on top."""
        self.source = source
        self._tokenizer = tokenizer
        self.masker = PanMasker(tokenizer)
        self._max_payload_bytes = max_payload_bytes
        self._pii = frozenset(source.pii_fields)
        self._format = format_for(source)
        bounds = event_time_bounds or EventTimeBounds()
        self._checks: list[tuple[str, FieldCheck]] = [(f.name, compile_check(f, source, bounds)) for f in source.fields]
        names = [f.name for f in source.fields]
        self._declared = frozenset(names)
        self._event_id_at = names.index(source.event_id_field)
        self._entity_key_at = names.index(source.entity_key)
        self._event_time_at = names.index(source.event_time_field)
        self._attribute_slots = _attribute_slots(source)
        self._token_attributes = frozenset(out for _, out, tokenise in self._attribute_slots if tokenise)
        self._listed = self._declared | frozenset(source.csv_columns)
        self._extra_columns = tuple(
            c for c in source.csv_columns if c not in self._declared and c not in self._token_attributes
        )
        self._undeclared = source.undeclared_fields

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
            return self._unparsed(failure.reason, failure.message, payload, field=failure.field)
        tokenised = self._pii.intersection(masked)
        try:
            return self._record(document, tokenised)
        except InvalidField as invalid:
            event_id = document.get(self.source.event_id_field)
            dlq_payload, masked_now, pan_fields = self._masked_copy(document, payload, tokenised)
            message = invalid.message
            if pan_fields:
                message += f" (PANs in {_named(pan_fields)} replaced by their tokens in original_payload)"
            return self._scrubbed(
                Rejection(
                    invalid.reason,
                    message,
                    field=invalid.field,
                    event_id=event_id if isinstance(event_id, str) else "",
                    dlq_payload=dlq_payload,
                    masked_fields=masked_now,
                )
            )

    def masked_payload(self, payload: bytes, *, masked: Collection[str] = ()) -> tuple[bytes, tuple[str, ...]]:
        """``payload`` as the DLQ keeps it (PII values and PANs replaced by their tokens) and the PII fields
        it holds tokens for; bytes that do not decode are scrubbed as in a rejection. Never raises."""
        try:
            document = self._format.decode(payload)
        except DecodeFailure:
            return self.masker.scrub(payload)[0], ()
        dlq_payload, present, _ = self._masked_copy(document, payload, self._pii.intersection(masked))
        return dlq_payload, present

    def _scrubbed(self, rejection: Rejection) -> Rejection:
        """``rejection`` with the PANs in its message, event id and field tokenised."""
        mask = self.masker.mask_text
        message, event_id, field = mask(rejection.message)[0], mask(rejection.event_id)[0], mask(rejection.field)[0]
        if (message, event_id, field) == (rejection.message, rejection.event_id, rejection.field):
            return rejection
        return Rejection(
            rejection.reason,
            message,
            field=field,
            event_id=event_id,
            dlq_payload=rejection.dlq_payload,
            masked_fields=rejection.masked_fields,
        )

    def _unparsed(self, reason: str, message: str, payload: bytes, *, field: str = "") -> Rejection:
        """A rejection of bytes that do not decode: runs of 12-19 digits and PANs (possibly PII) are tokenised."""
        scrubbed, count = self.masker.scrub(payload)
        if count:
            message += (
                f" ({count} run(s) of 12-19 digits or PANs, possibly PII, replaced by their tokens in original_payload)"
            )
        return self._scrubbed(Rejection(reason, message, field=field, dlq_payload=scrubbed))

    def _masked_copy(
        self, document: dict[str, Any], payload: bytes, tokenised: frozenset[str]
    ) -> tuple[bytes, tuple[str, ...], tuple[str, ...]]:
        """The DLQ payload, the PII fields it holds tokens for and the other fields whose PANs it tokenised.

        Raw PII values are replaced by their tokens, PANs in every other value (at any depth) and in the
        top-level names by theirs; unchanged bytes are returned when there is nothing to replace.
        """
        present = tuple(name for name in self.source.pii_fields if document.get(name) is not None)
        values: dict[str, Any] = {
            name: self._tokenizer.token(_text(document[name])) for name in present if name not in tokenised
        }
        pan_fields: list[str] = []
        for name, value in document.items():
            if name in self._pii:
                continue
            masked_value, count = self.masker.mask_value(value)
            if count:
                values[name] = masked_value
                pan_fields.append(name)
        out = self._format.replaced(payload, document, values) if values else payload
        out, in_names = self.masker.mask_bytes(out)  # what is left: PANs in top-level names
        if in_names:
            pan_fields.append("field names")
        return out, present, tuple(pan_fields)

    def _record(self, document: dict[str, Any], tokenised: frozenset[str]) -> ValidRecord:
        """The record of a decoded document; raises ``InvalidField`` for the first field (in definition
        order) that breaks its rule, then for undeclared fields under ``reject``."""
        checks = self._checks if not tokenised else self._token_checks(tokenised)
        get = document.get
        values = [check(get(name, ABSENT)) for name, check in checks]
        mask = self.masker.mask_text
        pans = 0
        attributes: dict[str, Scalar] = {}
        for at, out, tokenise in self._attribute_slots:
            value = values[at]
            if tokenise and value is not None:
                name = checks[at][0]
                value = str(value) if name in tokenised else self._tokenizer.token(str(value))
            elif type(value) is str and len(value) >= 13:
                value, count = mask(value)
                pans += count
            attributes[out] = value
        for name in self._extra_columns:
            if (cell := document.get(name)) is not None:
                attributes[name], count = self.masker.mask_text(str(cell))
                pans += count
        undeclared = document.keys() - self._listed
        dropped = 0
        if undeclared:
            if self._undeclared is UndeclaredFields.DROP:
                dropped = len(undeclared)
            elif self._undeclared is UndeclaredFields.KEEP:
                pans += self._keep(document, attributes)
            else:
                names = [name for name in document if name in undeclared]
                raise InvalidField(
                    "UNDECLARED_FIELD",
                    names[0],
                    f"undeclared fields {_named(names)} (the source's undeclared_fields is reject: declare "
                    "them or set it to drop or keep)",
                )
        event_time = values[self._event_time_at]
        assert isinstance(event_time, int)
        event_id, count_id = mask(str(values[self._event_id_at]))
        entity_key, count_key = mask(str(values[self._entity_key_at]))
        return ValidRecord(
            event_id=event_id,
            entity_key=entity_key,
            event_time_us=event_time,
            attributes=attributes,
            undeclared_dropped=dropped,
            pans_masked=pans + count_id + count_key,
        )

    def _keep(self, document: dict[str, Any], attributes: dict[str, Scalar]) -> int:
        """Add the undeclared fields of ``document`` to ``attributes`` (PANs tokenised); returns the PAN count."""
        pans = 0
        for name, value in document.items():
            if name in self._declared or name in self._token_attributes:
                continue
            masked_name, in_name = self.masker.mask_text(name)
            masked_value, in_value = self.masker.mask_value(_passthrough(value))
            attributes[masked_name] = masked_value
            pans += in_name + in_value
        return pans

    def _token_checks(self, tokenised: frozenset[str]) -> list[tuple[str, FieldCheck]]:
        """The checks with those of already-masked PII fields replaced by the token check."""
        rules = {f.name: f for f in self.source.fields}
        return [(name, self._token_check(rules[name]) if name in tokenised else check) for name, check in self._checks]

    def _token_check(self, rule: FieldRule) -> FieldCheck:
        """The check of an already-masked PII field: it holds a token (its raw-value rules do not apply)."""
        source = self.source

        def check(value: Any) -> Scalar:
            if value is None or value is ABSENT:
                return missing_value(rule, source, value)
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


def masked_headers(
    masker: PanMasker, headers: Iterable[tuple[str, bytes]]
) -> tuple[tuple[tuple[str, bytes], ...], tuple[str, ...]]:
    """``headers`` with the PANs in their names and values tokenised, and the names of those changed."""
    out: list[tuple[str, bytes]] = []
    changed: list[str] = []
    for key, value in headers:
        masked_key, in_key = masker.mask_text(key)
        masked_value, in_value = masker.mask_bytes(value)
        if in_key or in_value:
            changed.append(masked_key)
        out.append((masked_key, masked_value))
    return tuple(out), tuple(changed)


def headers_note(names: Collection[str]) -> str:
    """The message suffix saying which headers had PANs replaced (empty when none)."""
    return f" (PANs in headers {_named(names)} replaced by their tokens)" if names else ""


def _named(names: Collection[str]) -> str:
    """Field names for a message: at most ``MAX_NAMED`` of them, then how many more."""
    listed = list(names)
    shown = ", ".join(name[:64] for name in listed[:MAX_NAMED])
    return shown + (f" and {len(listed) - MAX_NAMED} more" if len(listed) > MAX_NAMED else "")


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
