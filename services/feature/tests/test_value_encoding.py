"""The hand-written FeatureValue encoder parses to exactly what the protobuf API builds."""

from __future__ import annotations

import random

from aimesh.api.feature.v1 import feature_pb2
from aimesh.feature.history import Scalar
from aimesh.feature.serving.aggregation import FeatureVector, Status
from aimesh.feature.serving.rows import encode_feature_values


def built(vector: FeatureVector) -> feature_pb2.OnlineFeatureRow:
    """The reference: the same row through the protobuf API."""
    row = feature_pb2.OnlineFeatureRow(entity_id="c1", row_index=3)
    for value, at_us, status in zip(vector.values, vector.event_times_us, vector.statuses, strict=True):
        fv = row.values.add(status=status.value)
        if isinstance(value, bool):
            fv.value.bool_value = value
        elif isinstance(value, str):
            fv.value.string_value = value
        elif value is not None:
            fv.value.double_value = value
        if at_us is not None:
            fv.event_time.FromMicroseconds(at_us)
    return row


def encoded(vector: FeatureVector) -> feature_pb2.OnlineFeatureRow:
    row = feature_pb2.OnlineFeatureRow(entity_id="c1", row_index=3)
    row.MergeFromString(encode_feature_values(2, vector))
    return row


def test_edge_values_round_trip() -> None:
    values: list[Scalar | None] = [0.0, -0.0, 1.5, float("inf"), 7, -3, True, False, "", "DE", "ü" * 200, None]
    times: list[int | None] = [0, 1, -1, 1_000_000, -1_500_000, 1_767_225_600_123_456, 2**40, 5, 5, 5, 5, None]
    statuses = [Status.PRESENT, Status.EXPIRED, Status.MISSING] * 4
    vector = FeatureVector(values, times, statuses)
    assert encoded(vector) == built(vector)
    assert encoded(vector).SerializeToString(deterministic=True) == built(vector).SerializeToString(deterministic=True)


def test_random_rows_round_trip() -> None:
    rng = random.Random(5)
    for _ in range(200):
        n = rng.randrange(0, 60)
        pool: list[Scalar | None] = [rng.uniform(-1e9, 1e9), rng.randrange(-(2**40), 2**40), "x" * rng.randrange(300)]
        values = [rng.choice([*pool, None, True]) for _ in range(n)]
        times = [rng.choice([None, rng.randrange(-(2**50), 2**52)]) for _ in range(n)]
        statuses = [rng.choice(list(Status)) for _ in range(n)]
        vector = FeatureVector(values, times, statuses)
        assert encoded(vector) == built(vector)


def test_a_field_number_places_the_values() -> None:
    vector = FeatureVector([2.0], [10], [Status.PRESENT])
    row = feature_pb2.HistoricalFeatureRow(row_index=1)
    row.MergeFromString(encode_feature_values(4, vector))
    assert row.values[0].value.double_value == 2.0 and row.values[0].event_time.ToMicroseconds() == 10
