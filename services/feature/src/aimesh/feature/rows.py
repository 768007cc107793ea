"""Request rows of GetOnlineFeatures / GetHistoricalFeatures: validation, and values back to the wire.

Shared by the online and offline paths so that both accept the same rows and answer the same protos.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from google.protobuf.timestamp_pb2 import Timestamp

from aimesh.api.common.v1 import common_pb2
from aimesh.api.feature.v1 import feature_pb2
from aimesh.core.errors import InvalidArgument, ResourceExhausted
from aimesh.feature.aggregation import ContextValue, FeatureVector, Requirements
from aimesh.feature.definitions import CARD

NUMERIC_CONTEXT_FIELDS = frozenset({"amount"})
"""Request-context fields that must be numbers; every other one must be a string."""


@dataclass(frozen=True)
class LookupRow:
    """One validated row: the entities it names, its as-of time (None: not given) and its context."""

    index: int
    entity_id: str
    entities: dict[str, str]
    at_us: int | None
    context: dict[str, ContextValue]

    def timestamp(self) -> Timestamp | None:
        if self.at_us is None:
            return None
        ts = Timestamp()
        ts.FromMicroseconds(self.at_us)
        return ts


def _context_value(where: str, name: str, value: common_pb2.Value | None) -> ContextValue:
    kind = value.WhichOneof("kind") if value is not None else None
    if value is None or kind is None:
        raise InvalidArgument(f"{where}: request_context field {name!r} missing")
    if name in NUMERIC_CONTEXT_FIELDS:
        if kind == "double_value":
            return value.double_value
        if kind == "int64_value":
            return float(value.int64_value)
        raise InvalidArgument(f"{where}: request_context field {name!r} must be a number, got {kind}")
    if kind != "string_value" or not value.string_value:
        raise InvalidArgument(f"{where}: request_context field {name!r} must be a non-empty string, got {kind}")
    return value.string_value


def _shorthand_row(index: int, entity_id: str, needs: Requirements) -> LookupRow:
    where = f"entity_ids[{index}]"
    if not entity_id:
        raise InvalidArgument(f"{where}: entity id {CARD!r} missing")
    other = sorted(needs.entities - {CARD})
    if other or needs.context_fields:
        missing = [f"entity id {e!r}" for e in other] + [
            f"request_context field {f!r}" for f in sorted(needs.context_fields)
        ]
        raise InvalidArgument(
            f"{where}: the entity_ids shorthand carries only a card id; the features also need "
            f"{', '.join(missing)} (send entity_rows)"
        )
    return LookupRow(index, entity_id, {CARD: entity_id}, None, {})


def _entity_row(index: int, position: int, row: feature_pb2.EntityRow, needs: Requirements) -> LookupRow:
    where = f"entity_rows[{position}]"
    entities = dict(row.entity_ids)
    if row.entity_id and CARD not in entities:
        entities[CARD] = row.entity_id
    for name in sorted(needs.entities):
        if not entities.get(name):
            raise InvalidArgument(f"{where}: entity id {name!r} missing (entity_ids[{name!r}])")
    context = {
        name: _context_value(where, name, row.request_context.get(name)) for name in sorted(needs.context_fields)
    }
    at_us = row.timestamp.ToMicroseconds() if row.HasField("timestamp") else None
    entity_id = entities.get(CARD) or row.entity_id or next(iter(sorted(entities.values())), "")
    return LookupRow(index, entity_id, entities, at_us, context)


def parse_rows(
    entity_ids: Sequence[str], entity_rows: Sequence[feature_pb2.EntityRow], needs: Requirements, *, max_rows: int
) -> list[LookupRow]:
    """Validate the request's rows (``entity_ids`` first, then ``entity_rows``) against what the features need.

    Raises ResourceExhausted beyond ``max_rows``, InvalidArgument naming the first missing entity id or
    context field (or one of the wrong type).
    """
    total = len(entity_ids) + len(entity_rows)
    if total > max_rows:
        raise ResourceExhausted(f"{total} rows requested; at most {max_rows} rows per call")
    if total == 0:
        raise InvalidArgument("no rows: set entity_ids or entity_rows")
    rows = [_shorthand_row(i, e, needs) for i, e in enumerate(entity_ids)]
    rows += [_entity_row(len(entity_ids) + j, j, r, needs) for j, r in enumerate(entity_rows)]
    return rows


def feature_values(vector: FeatureVector) -> list[feature_pb2.FeatureValue]:
    """Wire values: PRESENT with the newest contributing event time, or MISSING (value still the default)."""
    values = []
    for value, at_us in zip(vector.values, vector.event_times_us, strict=True):
        fv = feature_pb2.FeatureValue(value=common_pb2.Value(double_value=value))
        if at_us is None:
            fv.status = feature_pb2.FEATURE_STATUS_MISSING
        else:
            fv.status = feature_pb2.FEATURE_STATUS_PRESENT
            fv.event_time.FromMicroseconds(at_us)
        values.append(fv)
    return values
