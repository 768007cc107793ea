"""The compatibility matrix: which source changes are refused, and with which reason."""

from __future__ import annotations

from typing import Any

import pytest

from aimesh.ingest.compatibility import breaking_changes
from aimesh.ingest.sources import SourceDefinition

BASE: dict[str, Any] = {
    "name": "payments",
    "topic": "bank.payments",
    "entity_type": "card",
    "entity_key": "card_id",
    "event_id_field": "id",
    "event_time_field": "ts",
    "pii_fields": ["pan"],
    "pii_token_fields": {"pan": "pan_token"},
    "fields": [
        {"name": "id", "type": "string", "required": True},
        {"name": "card_id", "type": "string", "required": True, "max_length": 64},
        {"name": "ts", "type": "timestamp", "required": True},
        {"name": "pan", "type": "string", "pattern": "[0-9]{12,19}"},
        {"name": "amount", "type": "double", "required": True, "min": 0, "max": 1000},
        {"name": "channel", "type": "string", "allowed_values": ["pos", "online"]},
        {"name": "note", "type": "string"},
    ],
}


def changed(**changes: Any) -> SourceDefinition:
    return SourceDefinition.model_validate(BASE | changes)


def with_field(name: str, **rule: Any) -> SourceDefinition:
    fields = [f | rule if f["name"] == name else f for f in BASE["fields"]]
    return changed(fields=fields)


def without_field(name: str) -> SourceDefinition:
    return changed(fields=[f for f in BASE["fields"] if f["name"] != name])


def added(**rule: Any) -> SourceDefinition:
    return changed(fields=[*BASE["fields"], rule])


COMPATIBLE = {
    "identical": changed(),
    "new description": changed(description="now documented"),
    "optional field added": added(name="merchant", type="string"),
    "enum widened": with_field("channel", allowed_values=["pos", "online", "atm"]),
    "enum dropped": with_field("channel", allowed_values=[]),
    "max widened": with_field("amount", max=5000),
    "min widened": with_field("amount", min=-10),
    "max_length widened": with_field("card_id", max_length=128),
    "max_length dropped": with_field("card_id", max_length=None),
    "pattern dropped": with_field("pan", pattern=""),
    "PII mark added": changed(pii_fields=["pan", "note"]),
    "token attribute added": changed(pii_fields=["pan", "note"], pii_token_fields={"pan": "pan_token", "note": "n_t"}),
}

BREAKING = {
    "field removed": (without_field("note"), "field note is removed (or renamed)"),
    "type changed": (with_field("amount", type="int64"), "field amount changes type from double to int64"),
    "optional made required": (with_field("note", required=True), "field note becomes required"),
    "required made optional": (with_field("amount", required=False), "field amount becomes optional"),
    "required field added": (
        added(name="merchant", type="string", required=True),
        "field merchant is added as required",
    ),
    "enum narrowed": (with_field("channel", allowed_values=["pos"]), "field channel no longer allows ['online']"),
    "enum introduced": (with_field("note", allowed_values=["a"]), "field note gets allowed values"),
    "max narrowed": (with_field("amount", max=500), "field amount maximum narrows from 1000.0 to 500.0"),
    "min narrowed": (with_field("amount", min=1), "field amount minimum narrows from >= 0.0 to >= 1.0"),
    "min made exclusive": (with_field("amount", min_exclusive=True), "minimum narrows from >= 0.0 to > 0.0"),
    "max_length narrowed": (with_field("card_id", max_length=32), "field card_id max_length narrows from 64 to 32"),
    "max_length introduced": (with_field("note", max_length=10), "field note max_length narrows from None to 10"),
    "pattern changed": (with_field("pan", pattern="[0-9]{16}"), "field pan pattern changes"),
    "entity key changed": (changed(entity_key="id"), "entity_key changes from 'card_id' to 'id'"),
    "event id field changed": (changed(event_id_field="card_id"), "event_id_field changes"),
    "entity type changed": (changed(entity_type="customer"), "entity_type changes"),
    "topic changed": (changed(topic="bank.other"), "topic changes"),
    "PII mark dropped": (changed(pii_fields=[], pii_token_fields={}), "PII mark of pan is dropped"),
    "token attribute renamed": (changed(pii_token_fields={"pan": "t"}), "token attribute pan_token of PII field pan"),
}


@pytest.mark.parametrize("new", COMPATIBLE.values(), ids=COMPATIBLE.keys())
def test_compatible_changes_pass(new: SourceDefinition) -> None:
    assert breaking_changes(changed(), new) == []


@pytest.mark.parametrize(("new", "reason"), BREAKING.values(), ids=BREAKING.keys())
def test_breaking_changes_are_named(new: SourceDefinition, reason: str) -> None:
    reasons = breaking_changes(changed(), new)
    assert any(reason in r for r in reasons), reasons


def test_event_time_field_change_is_breaking() -> None:
    base = added(name="ts2", type="timestamp", required=True)
    reasons = breaking_changes(base, base.model_copy(update={"event_time_field": "ts2"}))
    assert reasons == ["event_time_field changes from 'ts' to 'ts2'"]


def test_every_reason_is_listed() -> None:
    new = changed(
        entity_key="id", fields=[f for f in BASE["fields"] if f["name"] != "note"], pii_fields=[], pii_token_fields={}
    )
    assert len(breaking_changes(changed(), new)) == 4


def test_csv_columns_may_only_be_appended() -> None:
    csv = changed(format="csv", csv_columns=["id", "card_id", "ts", "amount"])
    appended = csv.model_copy(update={"csv_columns": ("id", "card_id", "ts", "amount", "note")})
    reordered = csv.model_copy(update={"csv_columns": ("card_id", "id", "ts", "amount")})
    assert breaking_changes(csv, appended) == []
    assert breaking_changes(csv, reordered) == ["CSV columns may only be appended, not removed or reordered"]
