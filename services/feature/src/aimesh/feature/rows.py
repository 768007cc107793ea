"""Request rows of GetOnlineFeatures / GetHistoricalFeatures: validation, and values back to the wire.

Shared by the online and offline paths so that both accept the same rows and answer the same protos.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from aimesh.api.common.v1 import common_pb2
from aimesh.api.feature.v1 import feature_pb2
from aimesh.core.errors import InvalidArgument, ResourceExhausted
from aimesh.feature.aggregation import FeatureVector, Scalar
from aimesh.feature.registry import Requirements

_SCALAR_KINDS = ("double_value", "int64_value", "string_value", "bool_value")


@dataclass(frozen=True)
class LookupRow:
    """One validated row: the entities it names, its as-of time (None: not given) and its context."""

    index: int
    entity_id: str
    entities: dict[str, str]
    at_us: int | None
    context: dict[str, Scalar]

    def timestamp(self) -> Timestamp | None:
        if self.at_us is None:
            return None
        ts = Timestamp()
        ts.FromMicroseconds(self.at_us)
        return ts


def _context_value(where: str, name: str, value: common_pb2.Value | None) -> Scalar:
    kind = value.WhichOneof("kind") if value is not None else None
    if value is None or kind is None:
        raise InvalidArgument(f"{where}: request_context field {name!r} missing")
    if kind not in _SCALAR_KINDS:
        raise InvalidArgument(f"{where}: request_context field {name!r} must be a number, string or bool, got {kind}")
    return getattr(value, kind)  # type: ignore[no-any-return]


def _shorthand_row(index: int, entity_id: str, needs: Requirements) -> LookupRow:
    where = f"entity_ids[{index}]"
    if len(needs.entities) > 1 or needs.context_fields:
        missing = [f"entity id {e!r}" for e in needs.entities[1:]] + [
            f"request_context field {f!r}" for f in sorted(needs.context_fields)
        ]
        raise InvalidArgument(
            f"{where}: the entity_ids shorthand carries one entity id; the features also need "
            f"{', '.join(missing)} (send entity_rows)"
        )
    if not entity_id:
        raise InvalidArgument(f"{where}: entity id missing")
    entities = {needs.entities[0]: entity_id} if needs.entities else {}
    return LookupRow(index, entity_id, entities, None, {})


def _entity_row(index: int, position: int, row: feature_pb2.EntityRow, needs: Requirements) -> LookupRow:
    where = f"entity_rows[{position}]"
    entities = dict(row.entity_ids)
    if row.entity_id and needs.entities and needs.entities[0] not in entities:
        entities[needs.entities[0]] = row.entity_id
    for name in needs.entities:
        if not entities.get(name):
            raise InvalidArgument(f"{where}: entity id {name!r} missing (entity_ids[{name!r}])")
    context = {
        name: _context_value(where, name, row.request_context.get(name)) for name in sorted(needs.context_fields)
    }
    at_us = row.timestamp.ToMicroseconds() if row.HasField("timestamp") else None
    entity_id = row.entity_id or (entities[needs.entities[0]] if needs.entities else "")
    return LookupRow(index, entity_id, {n: entities[n] for n in needs.entities}, at_us, context)


def parse_rows(
    entity_ids: Sequence[str], entity_rows: Sequence[feature_pb2.EntityRow], needs: Requirements, *, max_rows: int
) -> list[LookupRow]:
    """Validate the request's rows (``entity_ids`` first, then ``entity_rows``) against what the features need.

    Raises ResourceExhausted beyond ``max_rows``, InvalidArgument naming the first missing entity id or
    context field (or one of an unusable type).
    """
    total = len(entity_ids) + len(entity_rows)
    if total > max_rows:
        raise ResourceExhausted(f"{total} rows requested; at most {max_rows} rows per call")
    if total == 0:
        raise InvalidArgument("no rows: set entity_ids or entity_rows")
    rows = [_shorthand_row(i, e, needs) for i, e in enumerate(entity_ids)]
    rows += [_entity_row(len(entity_ids) + j, j, r, needs) for j, r in enumerate(entity_rows)]
    return rows


def add_feature_values(target: Any, vector: FeatureVector) -> None:
    """Append the wire values to ``target`` (a repeated FeatureValue field): each with its status and,
    unless MISSING, the newest contributing event time (built in place: the hot path of serving)."""
    for value, at_us, status in zip(vector.values, vector.event_times_us, vector.statuses, strict=True):
        fv = target.add(status=status.value)
        if value is None:
            pass
        elif isinstance(value, bool):
            fv.value.bool_value = value
        elif isinstance(value, str):
            fv.value.string_value = value
        else:
            fv.value.double_value = value
        if at_us is not None:
            fv.event_time.seconds, micros = divmod(at_us, 1_000_000)
            fv.event_time.nanos = micros * 1000
