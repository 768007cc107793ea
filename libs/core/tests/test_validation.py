"""``aimesh.core.validation``: invalid Timestamps, Durations and enum numbers anywhere in a request, and
string lengths, are ``InvalidArgument`` naming the field (the requests the fault suite's fuzz found)."""

from __future__ import annotations

import pytest

from aimesh.api.common.v1 import common_pb2
from aimesh.api.feature.v1 import feature_pb2
from aimesh.api.inference.v1 import inference_pb2
from aimesh.api.ingest.v1 import ingest_pb2
from aimesh.api.monitor.v1 import monitor_pb2
from aimesh.core.errors import InvalidArgument
from aimesh.core.validation import MAX_NAME_BYTES, _plan, check_length, check_message


def test_an_unknown_enum_number_deep_in_a_request_names_its_path() -> None:
    request = feature_pb2.ApplyDefinitionsRequest(
        feature_views=[
            feature_pb2.FeatureView(
                name="v",
                features=[
                    feature_pb2.Feature(name="ok", aggregation=feature_pb2.AGGREGATION_COUNT),
                    feature_pb2.Feature(name="bad", aggregation=-1),  # type: ignore[arg-type]
                ],
            )
        ]
    )
    with pytest.raises(InvalidArgument) as err:
        check_message(request)
    assert str(err.value).startswith("feature_views[0].features[1].aggregation is -1, which is not a Aggregation value")
    assert "AGGREGATION_COUNT" in str(err.value)
    request.feature_views[0].features[1].aggregation = feature_pb2.AGGREGATION_SUM
    check_message(request)
    request.feature_views[0].features[1].aggregation = 99  # type: ignore[assignment]
    with pytest.raises(InvalidArgument, match=r"aggregation is 99"):
        check_message(request)


@pytest.mark.parametrize(
    ("seconds", "nanos", "why"),
    [
        (0, -1, r"since is not a valid Timestamp: nanos -1 is outside \[0, 999999999\]"),
        (0, 1_000_000_000, "nanos 1000000000"),
        (-62_135_596_801, 0, "seconds -62135596801 is outside 0001-01-01..9999-12-31"),
        (253_402_300_800, 0, "seconds 253402300800"),
    ],
)
def test_an_invalid_timestamp_is_named(seconds: int, nanos: int, why: str) -> None:
    request = monitor_pb2.ListAlertsRequest()
    request.since.seconds = seconds
    request.since.nanos = nanos
    with pytest.raises(InvalidArgument, match=why):
        check_message(request)


def test_valid_extremes_pass() -> None:
    request = monitor_pb2.ListAlertsRequest(kind=0, min_severity=0)
    request.since.seconds = 253_402_300_799
    request.since.nanos = 999_999_999
    check_message(request)
    request.since.seconds = -62_135_596_800
    request.since.nanos = 0
    check_message(request)
    request.since.ToDatetime()  # what the handler does: it does not raise for what passed


@pytest.mark.parametrize(
    ("seconds", "nanos", "why"),
    [
        (315_576_000_001, 0, "seconds 315576000001 is outside"),
        (0, 1_000_000_000, "nanos 1000000000 is outside"),
        (1, -1, "differ in sign"),
        (-1, 1, "differ in sign"),
    ],
)
def test_an_invalid_duration_is_named(seconds: int, nanos: int, why: str) -> None:
    request = monitor_pb2.GetDriftReportRequest(model_name="m")
    request.window.seconds = seconds
    request.window.nanos = nanos
    with pytest.raises(InvalidArgument, match=f"window is not a valid Duration: .*{why}"):
        check_message(request)
    request.window.seconds, request.window.nanos = -5, -3
    check_message(request)


def test_enums_in_map_values_and_timestamps_in_map_messages_are_checked() -> None:
    score = inference_pb2.ScoreRequest(model="m", context={"amount": common_pb2.Value(double_value=3.0)})
    check_message(score)
    request = ingest_pb2.RegisterSourceRequest()
    request.source.name = "s"
    request.source.oldest_event_time.nanos = -1
    with pytest.raises(InvalidArgument, match=r"source\.oldest_event_time is not a valid Timestamp"):
        check_message(request)


def test_only_fields_that_can_hold_a_checked_value_are_walked() -> None:
    assert _plan(ingest_pb2.PublishRequest.DESCRIPTOR) == frozenset(), "the hot path costs one lookup"
    assert _plan(inference_pb2.ScoreRequest.DESCRIPTOR) == frozenset()
    assert _plan(feature_pb2.ApplyDefinitionsRequest.DESCRIPTOR) == {"entities", "feature_views"}
    assert _plan(monitor_pb2.ListAlertsRequest.DESCRIPTOR) == {"kind", "min_severity", "since", "state"}


def test_check_length_names_the_field_and_the_limit_in_utf8_bytes() -> None:
    check_length("model_name", "m" * MAX_NAME_BYTES)
    check_length("model_name", "é" * (MAX_NAME_BYTES // 2))
    with pytest.raises(InvalidArgument, match=f"model_name is {MAX_NAME_BYTES + 1} bytes long; the limit is 256"):
        check_length("model_name", "m" * (MAX_NAME_BYTES + 1))
    with pytest.raises(InvalidArgument, match="is 258 bytes long"):
        check_length("model_name", "é" * 129)
    with pytest.raises(InvalidArgument, match="the limit is 4 bytes"):
        check_length("k", "abcde", 4)
