"""Source records as the feature service reads them (a CanonicalRecord from Kafka or a lake row), and
their projection onto feature views: the entity id and the fields a view keeps, transformations applied.

Both the online update and the offline paths (retrieval, backfill) project with ``view_event``, so a
record contributes the same values to both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aimesh.api.ingest.v1 import events_pb2
from aimesh.core.events import Event, PoisonEvent
from aimesh.feature.definitions.expressions import ExpressionError
from aimesh.feature.definitions.specs import ENTITY_KEY, EntitySpec, FeatureViewSpec
from aimesh.feature.history import HistoryEvent, Scalar


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One event of a source: ids, event time (epoch µs) and typed attributes."""

    event_id: str
    source: str
    entity_key: str
    ts_us: int
    attributes: Mapping[str, Scalar]


@dataclass(frozen=True, slots=True)
class ViewEvent:
    """A record as one view keeps it: the entity id, the event and its values of the ``is_new`` fields."""

    view: str
    entity_id: str
    event: HistoryEvent
    seen: Mapping[str, str]


def _scalar(value: object) -> Scalar | None:
    kind = value.WhichOneof("kind")  # type: ignore[attr-defined]
    if kind in ("double_value", "int64_value", "string_value", "bool_value"):
        return getattr(value, kind)  # type: ignore[no-any-return]
    if kind == "timestamp_value":
        return int(value.timestamp_value.ToMicroseconds())  # type: ignore[attr-defined]
    return None


def record_from_event(event: Event) -> SourceRecord:
    """Decode a consumed canonical record; raises PoisonEvent (MALFORMED_PAYLOAD, MISSING_FIELD)."""
    record = event.parse(events_pb2.CanonicalRecord)
    if not record.event_id or not record.entity_key or not record.source:
        raise PoisonEvent("MISSING_FIELD", "canonical record without event_id, source or entity_key")
    if not record.HasField("event_time"):
        raise PoisonEvent("MISSING_FIELD", f"record {record.event_id!r} of {record.source}: event_time missing")
    attributes = {name: v for name, value in record.attributes.items() if (v := _scalar(value)) is not None}
    return SourceRecord(
        record.event_id, record.source, record.entity_key, record.event_time.ToMicroseconds(), attributes
    )


def entity_id(record: SourceRecord, entity: EntitySpec) -> str | None:
    """The record's id of ``entity`` (its ``entity_key`` or the attribute the entity's key names)."""
    if entity.key == ENTITY_KEY:
        return record.entity_key
    value = record.attributes.get(entity.key)
    return str(value) if value is not None and value != "" else None


def view_event(view: FeatureViewSpec, entity: EntitySpec, record: SourceRecord) -> ViewEvent:
    """``record`` as ``view`` keeps it. Transformations that fail on this record leave their field unset.

    Raises PoisonEvent(``MISSING_FIELD``) when the record lacks the view's entity key.
    """
    key = entity_id(record, entity)
    if key is None:
        raise PoisonEvent(
            "MISSING_FIELD",
            f"record {record.event_id!r} of {record.source}: attribute {entity.key} (the {entity.name} id "
            f"of feature view {view.name}) missing",
        )
    values: dict[str, Scalar] = dict(record.attributes)
    for transformation in view.transformations:
        try:
            values[transformation.name] = transformation.compiled.evaluate(values)
        except ExpressionError:
            values.pop(transformation.name, None)
    kept = {name: values[name] for name in view.stored_fields if name in values}
    seen = {name: str(values[name]) for name in view.seen_fields if name in values}
    return ViewEvent(view.name, key, HistoryEvent(record.event_id, record.ts_us, kept), seen)
