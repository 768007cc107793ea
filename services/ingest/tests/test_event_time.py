"""Event-time plausibility: the source's time unit, the maximum future skew and the oldest accepted time."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from aimesh.api.ingest.v1 import ingest_pb2
from aimesh.ingest.compatibility import breaking_changes
from aimesh.ingest.field_checks import EventTimeBounds
from aimesh.ingest.pii import Tokenizer
from aimesh.ingest.settings import IngestSettings
from aimesh.ingest.sources import EventTimeUnit, SourceDefinition, UndeclaredFields, load_sources
from aimesh.ingest.validation import Rejection, Validator, ValidRecord

SOURCES = {s.name: s for s in load_sources(Path(__file__).parent / "fixtures" / "sources.yaml")}
CHARGEBACKS = SOURCES["chargebacks"]
NOW_S = 1_714_564_800.0  # 2024-05-01T12:00:00Z
NOW_US = int(NOW_S * 1_000_000)
BOUNDS = EventTimeBounds(clock=lambda: NOW_S)


def chargeback(timestamp: object) -> bytes:
    record = {"chargeback_id": "cb-1", "transaction_id": "tx-1", "card_id": "c-1", "reason": "fraud"}
    return orjson.dumps(record | {"timestamp": timestamp})


def validator(source: SourceDefinition = CHARGEBACKS, bounds: EventTimeBounds = BOUNDS, **changes: object) -> Validator:
    return Validator(source.model_copy(update=changes), Tokenizer("s"), event_time_bounds=bounds)


def rejected(outcome: ValidRecord | Rejection) -> Rejection:
    assert isinstance(outcome, Rejection), outcome
    assert (outcome.reason, outcome.field) == ("INVALID_EVENT_TIME", "timestamp")
    return outcome


def test_a_time_a_century_ahead_is_rejected_saying_how_far_and_the_bound() -> None:
    rejection = rejected(validator().validate(chargeback("2124-05-01T12:00:00Z")))
    assert rejection.message == (
        "timestamp 2124-05-01T12:00:00Z, 100 years ahead of ingest's clock (max future skew 300 s)"
    )


def test_epoch_seconds_in_a_millis_source_are_rejected_naming_the_likely_unit() -> None:
    rejection = rejected(validator().validate(chargeback(1_714_000_000)))
    assert rejection.message.startswith("timestamp 1714000000 read as epoch_millis is 1970-01-20T20:06:40Z, ")
    assert "older than the oldest accepted 2014-05-04T12:00:00Z" in rejection.message
    assert rejection.message.endswith(": is the source's event_time_unit epoch_seconds?")


def test_epoch_micros_in_a_millis_source_are_far_ahead_and_named() -> None:
    rejection = rejected(validator().validate(chargeback(NOW_US)))
    assert "read as epoch_millis is year" in rejection.message and "ahead of ingest's clock" in rejection.message
    assert rejection.message.endswith("is the source's event_time_unit epoch_micros?")


@pytest.mark.parametrize(
    ("unit", "value"),
    [
        (EventTimeUnit.EPOCH_SECONDS, 1_714_564_000),
        (EventTimeUnit.EPOCH_SECONDS, 1_714_564_000.5),
        (EventTimeUnit.EPOCH_MILLIS, 1_714_564_000_000),
        (EventTimeUnit.EPOCH_MICROS, 1_714_564_000_000_000),
        (EventTimeUnit.ISO8601, "2024-05-01T11:46:40Z"),
        (EventTimeUnit.EPOCH_SECONDS, "2024-05-01T11:46:40Z"),
    ],
)
def test_each_unit_reads_its_numbers(unit: EventTimeUnit, value: object) -> None:
    outcome = validator(event_time_unit=unit).validate(chargeback(value))
    assert isinstance(outcome, ValidRecord), outcome
    expected = 1_714_564_000_500_000 if isinstance(value, float) else 1_714_564_000_000_000
    assert outcome.event_time_us == expected


def test_an_iso8601_source_refuses_numbers() -> None:
    rejection = rejected(validator(event_time_unit=EventTimeUnit.ISO8601).validate(chargeback(1_714_564_000_000)))
    assert rejection.message == "timestamp must be an RFC 3339 string, got number"


def test_the_future_skew_is_a_sharp_bound_and_a_source_may_widen_it() -> None:
    near, far = (NOW_US + 299_000_000) // 1000, (NOW_US + 301_000_000) // 1000
    assert isinstance(validator().validate(chargeback(near)), ValidRecord)
    assert (
        "5 minutes ahead of ingest's clock (max future skew 300 s)"
        in rejected(validator().validate(chargeback(far))).message
    )
    assert isinstance(validator(max_future_skew_seconds=3600).validate(chargeback(far)), ValidRecord)


def test_the_oldest_accepted_time_is_relative_by_default_absolute_when_set() -> None:
    eleven_years = "2013-05-01T12:00:00Z"
    assert (
        "older than the oldest accepted 2014-05-04T12:00:00Z"
        in rejected(validator().validate(chargeback(eleven_years))).message
    )
    backfill = validator(oldest_event_time=datetime(2000, 1, 1, tzinfo=UTC))
    assert isinstance(backfill.validate(chargeback(eleven_years)), ValidRecord)
    strict = EventTimeBounds(oldest_us=NOW_US - 86_400_000_000, clock=lambda: NOW_S)
    assert (
        "older than the oldest accepted 2024-04-30T12:00:00Z"
        in rejected(validator(bounds=strict).validate(chargeback("2024-04-29T12:00:00Z"))).message
    )


def test_other_timestamp_fields_are_not_bounded() -> None:
    source = SOURCES["card_transactions"]
    record = {
        "transaction_id": "t",
        "card_id": "c",
        "card_number": "4111111111111111",
        "customer_id": "u",
        "merchant_id": "m",
        "amount": 1.0,
        "device_id": "d",
        "timestamp": "2024-05-01T12:00:00Z",
    }
    assert isinstance(validator(source).validate(orjson.dumps(record)), ValidRecord)


def test_settings_feed_the_bounds() -> None:
    settings = IngestSettings(event_time_oldest=datetime(2015, 1, 1, tzinfo=UTC))
    assert settings.event_time_max_future_skew_seconds == 300.0 and settings.event_time_max_age_days == 3650.0
    assert settings.event_time_oldest_us == 1_420_070_400_000_000


def test_the_new_source_fields_survive_the_proto_and_default_when_unset() -> None:
    source = CHARGEBACKS.model_copy(
        update={
            "event_time_unit": EventTimeUnit.EPOCH_SECONDS,
            "undeclared_fields": UndeclaredFields.REJECT,
            "max_future_skew_seconds": 60.0,
            "oldest_event_time": datetime(2015, 1, 1, tzinfo=UTC),
        }
    )
    assert SourceDefinition.from_proto(source.to_proto()) == source
    bare = CHARGEBACKS.to_proto()
    bare.ClearField("event_time_unit")
    bare.ClearField("undeclared_fields")
    assert bare.event_time_unit == ingest_pb2.EVENT_TIME_UNIT_UNSPECIFIED
    restored = SourceDefinition.from_proto(bare)
    assert restored.event_time_unit is EventTimeUnit.EPOCH_MILLIS
    assert restored.undeclared_fields is UndeclaredFields.DROP
    assert restored.max_future_skew_seconds is None and restored.oldest_event_time is None


def test_changing_the_unit_or_narrowing_the_undeclared_policy_is_breaking() -> None:
    def changed(**update: object) -> list[str]:
        return breaking_changes(CHARGEBACKS, CHARGEBACKS.model_copy(update=update))

    assert changed(event_time_unit=EventTimeUnit.EPOCH_SECONDS) == [
        "event_time_unit changes from 'epoch_millis' to 'epoch_seconds'"
    ]
    assert changed(undeclared_fields=UndeclaredFields.KEEP) == []
    assert changed(undeclared_fields=UndeclaredFields.REJECT) == ["undeclared_fields changes from drop to reject"]
    keeping = CHARGEBACKS.model_copy(update={"undeclared_fields": UndeclaredFields.KEEP})
    assert breaking_changes(keeping, CHARGEBACKS) == ["undeclared_fields changes from keep to drop"]
    assert changed(max_future_skew_seconds=1.0, oldest_event_time=datetime(2024, 1, 1, tzinfo=UTC)) == []
