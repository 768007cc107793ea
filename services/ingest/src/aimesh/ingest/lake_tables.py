"""``ValidRecord`` batches -> typed Arrow tables for the lake, one per event date (UTC).

Columns (the lake contract its readers rely on, see ``aimesh.core.lake``): ``event_id``, ``entity_key``,
``event_time`` and ``ingest_time`` (timestamp[us, UTC]), then one column per declared non-identity
attribute with its declared type (timestamps as int64 epoch microseconds), tokenised PII as string
columns. PII fields are never columns; undeclared pass-through fields are not in the lake (its schema
is the definition's).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa

from aimesh.ingest.sources import FieldType, SourceDefinition
from aimesh.ingest.validation import ValidRecord

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
TIMESTAMP_US = pa.timestamp("us", tz="UTC")
_ARROW_TYPES = {
    FieldType.STRING: pa.string(),
    FieldType.INT64: pa.int64(),
    FieldType.DOUBLE: pa.float64(),
    FieldType.BOOL: pa.bool_(),
    FieldType.TIMESTAMP: pa.int64(),
}


def lake_schema(source: SourceDefinition) -> pa.Schema:
    """The Parquet schema of ``source``'s dataset."""
    identity = {source.event_id_field, source.entity_key, source.event_time_field}
    columns = [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("entity_key", pa.string(), nullable=False),
        pa.field("event_time", TIMESTAMP_US, nullable=False),
        pa.field("ingest_time", TIMESTAMP_US, nullable=False),
    ]
    for rule in source.fields:
        if rule.name in identity:
            continue
        if rule.name in source.pii_fields:
            if token := source.pii_token_fields.get(rule.name):
                columns.append(pa.field(token, pa.string()))
            continue
        columns.append(pa.field(rule.name, _ARROW_TYPES[rule.type]))
    return pa.schema(columns)


def event_day(event_time_us: int) -> date:
    return (EPOCH + timedelta(microseconds=event_time_us)).date()


def tables_by_day(schema: pa.Schema, records: Sequence[ValidRecord], *, ingest_time_us: int) -> dict[date, pa.Table]:
    """One table per UTC event date holding ``records`` (in the given order) with ``schema``."""
    groups: dict[date, list[ValidRecord]] = defaultdict(list)
    for record in records:
        groups[event_day(record.event_time_us)].append(record)
    attribute_names = schema.names[4:]
    tables = {}
    for day, group in groups.items():
        columns: dict[str, list[Any]] = {
            "event_id": [r.event_id for r in group],
            "entity_key": [r.entity_key for r in group],
            "event_time": [r.event_time_us for r in group],
            "ingest_time": [ingest_time_us] * len(group),
        }
        for name in attribute_names:
            columns[name] = [r.attributes.get(name) for r in group]
        tables[day] = pa.Table.from_pydict(columns, schema=schema)
    return tables
