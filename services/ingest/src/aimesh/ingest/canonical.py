"""``ValidRecord`` -> ``aimesh.api.ingest.v1.CanonicalRecord`` (the payload of ``aimesh.ingest.records.v1``).

Built by assigning fields in place (no intermediate ``Value`` messages copied into the map): this runs
once per accepted record.
"""

from __future__ import annotations

from google.protobuf import timestamp_pb2

from aimesh.api.common.v1 import common_pb2
from aimesh.api.ingest.v1 import events_pb2
from aimesh.ingest.field_checks import Scalar
from aimesh.ingest.sources import SourceDefinition
from aimesh.ingest.validation import ValidRecord


def set_value(target: common_pb2.Value, value: Scalar) -> None:
    """Make ``target`` hold ``value``; None leaves it empty (the null value)."""
    if value is None:
        return
    if isinstance(value, str):
        target.string_value = value
    elif isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int):
        target.int64_value = value
    else:
        target.double_value = value


def _set_time(target: timestamp_pb2.Timestamp, micros: int) -> None:
    """``target.FromMicroseconds(micros)`` without its Python-level overhead."""
    seconds, remainder = divmod(micros, 1_000_000)
    target.seconds, target.nanos = seconds, remainder * 1000


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
    _set_time(out.event_time, record.event_time_us)
    _set_time(out.ingest_time, ingest_time_us)
    attributes = out.attributes
    for name, value in record.attributes.items():
        set_value(attributes[name], value)
    if upstream is not None:
        position = out.upstream
        position.topic, position.partition, position.offset = upstream
    return out
