"""Source definitions as data: which upstream topic carries which source, and how to validate it.

ingest ships no definitions: a use case brings them as a YAML document (``sources:`` list), registered
at runtime through ``IngestService.RegisterSource`` (``aimesh.ingest.operations.apply_sources``, the
``aimesh ingest apply FILE`` command) or applied at start from the optional ``INGEST_SOURCES_FILE``.
``parse_sources`` / ``load_sources`` check a document (``ValueError`` when it is invalid); the registry
(``aimesh.ingest.registry``) versions what is registered. A source without an upstream topic is
push-only: ``IngestService.Publish`` produces its records to ``push_topic(name)``, which the ingest
consumer reads like any upstream topic.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from aimesh.api.ingest.v1 import ingest_pb2

SOURCE_NAME = re.compile(r"[a-z0-9_]+")
PUSH_TOPIC = "aimesh.ingest.push.{source}.v1"


def push_topic(source: str) -> str:
    """The internal topic that carries the pushed records of a push-only source."""
    return PUSH_TOPIC.format(source=source)


class SourceFormat(StrEnum):
    JSON = "json"
    CSV = "csv"
    """One RFC 4180 line per record; columns named by ``csv_columns``; empty cells are missing."""


class FieldType(StrEnum):
    STRING = "string"
    INT64 = "int64"
    DOUBLE = "double"
    BOOL = "bool"
    TIMESTAMP = "timestamp"
    """RFC 3339 string with a UTC offset, or epoch milliseconds; stored as int64 epoch microseconds."""


class EventTimeUnit(StrEnum):
    """How a number in the event time field is read; RFC 3339 strings are read in every unit but ``iso8601``."""

    ISO8601 = "iso8601"
    """RFC 3339 / ISO 8601 strings with a UTC offset only; numbers are rejected."""
    EPOCH_SECONDS = "epoch_seconds"
    EPOCH_MILLIS = "epoch_millis"
    EPOCH_MICROS = "epoch_micros"


class UndeclaredFields(StrEnum):
    """What happens to payload fields the definition does not declare."""

    DROP = "drop"
    """Left out of the canonical record, counted (``aimesh_ingest_undeclared_fields_dropped_total``)."""
    KEEP = "keep"
    """Passed through to the canonical record's attributes (PAN-like digit runs tokenised), not to the lake."""
    REJECT = "reject"
    """The record is rejected with ``UNDECLARED_FIELD`` naming the fields."""


class FieldRule(BaseModel):
    """Validation rules for one top-level field (mirrors ``aimesh.api.ingest.v1.FieldSpec``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    type: FieldType
    required: bool = False
    allowed_values: tuple[str, ...] = ()
    min: float | None = None
    min_exclusive: bool = False
    max: float | None = None
    max_length: int | None = Field(default=None, gt=0)
    pattern: str = ""
    description: str = ""

    @model_validator(mode="after")
    def _pattern_compiles(self) -> Self:
        if self.pattern:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"field {self.name}: pattern {self.pattern!r} does not compile: {exc}") from exc
        return self

    @classmethod
    def from_proto(cls, spec: ingest_pb2.FieldSpec) -> FieldRule:
        """The rule of a ``FieldSpec``; raises ``ValueError`` for an unset type or an invalid rule."""
        type_name = ingest_pb2.FieldType.Name(spec.type).removeprefix("FIELD_TYPE_")
        if type_name not in FieldType.__members__:
            raise ValueError(f"field {spec.name or '(unnamed)'}: type must be set")
        return cls(
            name=spec.name,
            type=FieldType[type_name],
            required=spec.required,
            allowed_values=tuple(spec.allowed_values),
            min=spec.min if spec.HasField("min") else None,
            min_exclusive=spec.min_exclusive,
            max=spec.max if spec.HasField("max") else None,
            max_length=spec.max_length if spec.HasField("max_length") else None,
            pattern=spec.pattern,
            description=spec.description,
        )

    def to_proto(self) -> ingest_pb2.FieldSpec:
        spec = ingest_pb2.FieldSpec(
            name=self.name,
            type=f"FIELD_TYPE_{self.type.name}",
            required=self.required,
            allowed_values=self.allowed_values,
            min_exclusive=self.min_exclusive,
            pattern=self.pattern,
            description=self.description,
        )
        if self.min is not None:
            spec.min = self.min
        if self.max is not None:
            spec.max = self.max
        if self.max_length is not None:
            spec.max_length = self.max_length
        return spec


class SourceDefinition(BaseModel):
    """One upstream source (mirrors ``aimesh.api.ingest.v1.SourceDefinition``).

    ``topic`` empty means push-only (see ``intake_topic``). ``version`` is assigned by the registry.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    topic: str = ""
    format: SourceFormat = SourceFormat.JSON
    csv_columns: tuple[str, ...] = ()
    entity_type: str
    entity_key: str
    event_id_field: str
    event_time_field: str
    fields: tuple[FieldRule, ...]
    pii_fields: tuple[str, ...] = ()
    pii_token_fields: dict[str, str] = Field(default_factory=dict)
    event_time_unit: EventTimeUnit = EventTimeUnit.EPOCH_MILLIS
    undeclared_fields: UndeclaredFields = UndeclaredFields.DROP
    max_future_skew_seconds: float | None = Field(default=None, ge=0)
    """Overrides ``INGEST_EVENT_TIME_MAX_FUTURE_SKEW_SECONDS`` for this source."""
    oldest_event_time: datetime | None = None
    """Overrides the service's oldest accepted event time for this source (a time with a UTC offset)."""
    version: int = 1
    description: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if not SOURCE_NAME.fullmatch(self.name):
            raise ValueError(f"source name {self.name!r} must match [a-z0-9_]+")
        by_name = {f.name: f for f in self.fields}
        if len(by_name) != len(self.fields):
            raise ValueError(f"source {self.name}: a field is declared twice")
        for role in ("entity_key", "event_id_field", "event_time_field"):
            rule = by_name.get(getattr(self, role))
            if rule is None or not rule.required:
                raise ValueError(f"source {self.name}: {role} must name a required declared field")
        if by_name[self.event_time_field].type is not FieldType.TIMESTAMP:
            raise ValueError(f"source {self.name}: event_time_field must be a timestamp field")
        for role in ("entity_key", "event_id_field"):
            if by_name[getattr(self, role)].type is not FieldType.STRING:
                raise ValueError(f"source {self.name}: {role} must be a string field")
        if unknown := set(self.pii_token_fields) - set(self.pii_fields):
            raise ValueError(f"source {self.name}: pii_token_fields names non-PII fields {sorted(unknown)}")
        if clash := set(self.pii_token_fields.values()) & set(by_name):
            raise ValueError(f"source {self.name}: token attribute names clash with fields {sorted(clash)}")
        if self.oldest_event_time is not None and self.oldest_event_time.utcoffset() is None:
            raise ValueError(f"source {self.name}: oldest_event_time needs a UTC offset (e.g. 2015-01-01T00:00:00Z)")
        self._check_csv_columns()
        return self

    def _check_csv_columns(self) -> None:
        if self.format is SourceFormat.JSON:
            if self.csv_columns:
                raise ValueError(f"source {self.name}: csv_columns is only for the csv format")
            return
        if len(set(self.csv_columns)) != len(self.csv_columns):
            raise ValueError(f"source {self.name}: a CSV column is named twice")
        if missing := sorted({f.name for f in self.fields if f.required} - set(self.csv_columns)):
            raise ValueError(f"source {self.name}: required fields {missing} are not CSV columns")

    @property
    def intake_topic(self) -> str:
        """The topic the ingest consumer reads for this source: its upstream topic, else its push topic."""
        return self.topic or push_topic(self.name)

    def field(self, name: str) -> FieldRule | None:
        """The rule of the declared field ``name``, if any."""
        return next((f for f in self.fields if f.name == name), None)

    @classmethod
    def from_proto(cls, proto: ingest_pb2.SourceDefinition) -> SourceDefinition:
        """The definition of a ``SourceDefinition`` message (version and create_time ignored).

        Raises ``ValueError`` (pydantic's ``ValidationError`` included) naming what is invalid.
        """
        format_name = ingest_pb2.SourceFormat.Name(proto.format).removeprefix("SOURCE_FORMAT_")
        if format_name not in SourceFormat.__members__:
            raise ValueError(f"source {proto.name}: format must be set (SOURCE_FORMAT_JSON or SOURCE_FORMAT_CSV)")
        unit = ingest_pb2.EventTimeUnit.Name(proto.event_time_unit).removeprefix("EVENT_TIME_UNIT_")
        undeclared = ingest_pb2.UndeclaredFields.Name(proto.undeclared_fields).removeprefix("UNDECLARED_FIELDS_")
        skew = proto.max_future_skew_seconds if proto.HasField("max_future_skew_seconds") else None
        return cls(
            name=proto.name,
            topic=proto.topic,
            format=SourceFormat[format_name],
            csv_columns=tuple(proto.csv_columns),
            entity_type=proto.entity_type,
            entity_key=proto.entity_key,
            event_id_field=proto.event_id_field,
            event_time_field=proto.event_time_field,
            fields=tuple(FieldRule.from_proto(f) for f in proto.fields),
            pii_fields=tuple(proto.pii_fields),
            pii_token_fields=dict(proto.pii_token_fields),
            event_time_unit=EventTimeUnit.EPOCH_MILLIS if unit == "UNSPECIFIED" else EventTimeUnit[unit],
            undeclared_fields=UndeclaredFields.DROP if undeclared == "UNSPECIFIED" else UndeclaredFields[undeclared],
            max_future_skew_seconds=skew,
            oldest_event_time=proto.oldest_event_time.ToDatetime(UTC) if proto.HasField("oldest_event_time") else None,
            description=proto.description,
        )

    def to_proto(self) -> ingest_pb2.SourceDefinition:
        proto = ingest_pb2.SourceDefinition(
            name=self.name,
            topic=self.topic,
            format=f"SOURCE_FORMAT_{self.format.name}",
            csv_columns=self.csv_columns,
            fields=[f.to_proto() for f in self.fields],
            entity_key=self.entity_key,
            event_time_field=self.event_time_field,
            event_id_field=self.event_id_field,
            pii_fields=self.pii_fields,
            pii_token_fields=self.pii_token_fields,
            version=self.version,
            entity_type=self.entity_type,
            description=self.description,
            event_time_unit=f"EVENT_TIME_UNIT_{self.event_time_unit.name}",
            undeclared_fields=f"UNDECLARED_FIELDS_{self.undeclared_fields.name}",
        )
        if self.max_future_skew_seconds is not None:
            proto.max_future_skew_seconds = self.max_future_skew_seconds
        if self.oldest_event_time is not None:
            proto.oldest_event_time.FromDatetime(self.oldest_event_time)
        return proto


class _SourcesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sources: tuple[SourceDefinition, ...]


def parse_sources(document: Any) -> tuple[SourceDefinition, ...]:
    """Definitions from a parsed YAML/JSON document; raises ``ValueError`` (pydantic's) when invalid."""
    sources = _SourcesFile.model_validate(document).sources
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate source names in {names}")
    topics = [s.intake_topic for s in sources]
    if len(set(topics)) != len(topics):
        raise ValueError(f"two sources read the same topic: {topics}")
    return sources


def parse_sources_yaml(document: str) -> tuple[SourceDefinition, ...]:
    """Definitions from the text of a sources file; raises ``ValueError`` when it is no valid YAML or invalid."""
    try:
        parsed = yaml.safe_load(document)
    except yaml.YAMLError as exc:
        raise ValueError(f"not valid YAML: {exc}") from exc
    return parse_sources(parsed)


def load_sources(path: Path, topic_overrides: dict[str, str] | None = None) -> tuple[SourceDefinition, ...]:
    """Read and check the definitions of the sources file ``path``.

    ``topic_overrides`` maps source names to the upstream topic to read instead; naming an unknown
    source raises ``ValueError``, as does an invalid file (``OSError`` when it cannot be read).
    """
    sources = parse_sources_yaml(path.read_text("utf-8"))
    overrides = dict(topic_overrides or {})
    if unknown := set(overrides) - {s.name for s in sources}:
        raise ValueError(f"topic overrides name unknown sources: {sorted(unknown)}")
    if overrides:
        sources = parse_sources(
            {"sources": [s.model_dump() | {"topic": overrides.get(s.name, s.topic)} for s in sources]}
        )
    return sources
