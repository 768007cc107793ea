"""``ValidRecord`` -> ``aimesh.api.ingest.v1.CanonicalRecord`` (the payload of ``aimesh.ingest.records.v1``)."""

from __future__ import annotations

from aimesh.api.common.v1 import common_pb2
from aimesh.api.ingest.v1 import events_pb2
from aimesh.ingest.sources import SourceDefinition
from aimesh.ingest.validation import Scalar, ValidRecord


def to_value(value: Scalar) -> common_pb2.Value:
    """A typed ``Value``; None is the empty (null) value."""
    if value is None:
        return common_pb2.Value()
    if isinstance(value, bool):
        return common_pb2.Value(bool_value=value)
    if isinstance(value, int):
        return common_pb2.Value(int64_value=value)
    if isinstance(value, float):
        return common_pb2.Value(double_value=value)
    return common_pb2.Value(string_value=value)


def canonical_record(
    record: ValidRecord,
    source: SourceDefinition,
    *,
    ingest_time_us: int,
    upstream: tuple[str, int, int] | None = None,
) -> events_pb2.CanonicalRecord:
    """The canonical record of ``record``; ``upstream`` is its (topic, partition, offset) when it came from Kafka."""
    out = events_pb2.CanonicalRecord(
        event_id=record.event_id,
        source=source.name,
        entity_key=record.entity_key,
        entity_type=source.entity_type,
        schema_version=source.version,
    )
    out.event_time.FromMicroseconds(record.event_time_us)
    out.ingest_time.FromMicroseconds(ingest_time_us)
    for name, value in record.attributes.items():
        out.attributes[name].CopyFrom(to_value(value))
    if upstream is not None:
        topic, partition, offset = upstream
        out.upstream.topic, out.upstream.partition, out.upstream.offset = topic, partition, offset
    return out
