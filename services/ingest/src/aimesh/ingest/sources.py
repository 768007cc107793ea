"""Source definitions as data: which upstream topic carries which source, and how to validate it.

The definitions ship with the package (``sources.yaml``) and can be replaced by a file named in
``INGEST_SOURCES_FILE``. ``load_sources`` checks them once at start-up (``ValueError`` on a bad file),
so a running service only ever holds consistent definitions.
"""

from __future__ import annotations

import re
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from aimesh.api.ingest.v1 import ingest_pb2

SOURCE_NAME = re.compile(r"[a-z0-9_]+")


class FieldType(StrEnum):
    STRING = "string"
    INT64 = "int64"
    DOUBLE = "double"
    BOOL = "bool"
    TIMESTAMP = "timestamp"
    """RFC 3339 string with a UTC offset, or epoch milliseconds; stored as int64 epoch microseconds."""


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
    """One upstream source (mirrors ``aimesh.api.ingest.v1.SourceDefinition``; JSON payloads only)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    topic: str
    entity_type: str
    entity_key: str
    event_id_field: str
    event_time_field: str
    fields: tuple[FieldRule, ...]
    pii_fields: tuple[str, ...] = ()
    pii_token_fields: dict[str, str] = Field(default_factory=dict)
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
        return self

    def to_proto(self) -> ingest_pb2.SourceDefinition:
        return ingest_pb2.SourceDefinition(
            name=self.name,
            topic=self.topic,
            format=ingest_pb2.SOURCE_FORMAT_JSON,
            fields=[f.to_proto() for f in self.fields],
            entity_key=self.entity_key,
            event_time_field=self.event_time_field,
            event_id_field=self.event_id_field,
            pii_fields=self.pii_fields,
            pii_token_fields=self.pii_token_fields,
            version=self.version,
            entity_type=self.entity_type,
            description=self.description,
        )


class _SourcesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sources: tuple[SourceDefinition, ...]


def parse_sources(document: Any) -> tuple[SourceDefinition, ...]:
    """Definitions from a parsed YAML/JSON document; raises ``ValueError`` (pydantic's) when invalid."""
    sources = _SourcesFile.model_validate(document).sources
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate source names in {names}")
    topics = [s.topic for s in sources]
    if len(set(topics)) != len(topics):
        raise ValueError(f"two sources read the same topic: {topics}")
    return sources


def load_sources(
    path: Path | None = None, topic_overrides: dict[str, str] | None = None
) -> tuple[SourceDefinition, ...]:
    """Read and check the definitions (the packaged ``sources.yaml`` when ``path`` is None).

    ``topic_overrides`` maps source names to the upstream topic to read instead; naming an unknown
    source raises ``ValueError``.
    """
    text = path.read_text("utf-8") if path else resources.files(__package__).joinpath("sources.yaml").read_text("utf-8")
    sources = parse_sources(yaml.safe_load(text))
    overrides = dict(topic_overrides or {})
    if unknown := set(overrides) - {s.name for s in sources}:
        raise ValueError(f"topic overrides name unknown sources: {sorted(unknown)}")
    if overrides:
        sources = parse_sources(
            {"sources": [s.model_dump() | {"topic": overrides.get(s.name, s.topic)} for s in sources]}
        )
    return sources
