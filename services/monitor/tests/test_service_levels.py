"""Rolling-window service levels: quantiles within the bucket error, windows that forget, fixed memory."""

from __future__ import annotations

import numpy as np
import pytest

from aimesh.api.inference.v1 import events_pb2 as inference_events
from aimesh.api.inference.v1 import inference_pb2
from aimesh.core.events import Event
from aimesh.monitor.service_levels import FRESHNESS_S, LATENCY_MS, LogBuckets, ServiceLevelTracker, Thresholds

T0 = 1_796_292_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def prediction(
    at: float,
    latency_ms: float,
    *,
    model: str = "m",
    route: int = inference_pb2.ROUTE_CHAMPION,
    freshness: float = 0.0,
    shadow: bool = False,
) -> inference_events.Prediction:
    p = inference_events.Prediction(
        model_name=model,
        model_version=1,
        route=route,
        feature_freshness_seconds=freshness,
        shadow=shadow,  # type: ignore[arg-type]
    )
    p.time.FromNanoseconds(int(at * 1e9))
    p.latency.FromNanoseconds(int(latency_ms * 1e6))
    return p


def test_quantiles_are_within_the_bucket_error_of_the_exact_ones() -> None:
    rng = np.random.default_rng(7)
    values = rng.lognormal(mean=np.log(20.0), sigma=1.0, size=20_000)
    counts = np.zeros(LATENCY_MS.size, dtype=np.int64)
    for v in values:
        counts[LATENCY_MS.index(float(v))] += 1
    for q in (0.5, 0.9, 0.99):
        exact = float(np.quantile(values, q))
        assert LATENCY_MS.quantile(counts, q) == pytest.approx(exact, rel=0.05 + 1e-3)


def test_bucket_edges_and_outer_buckets() -> None:
    buckets = LogBuckets(1.0, 100.0, 10.0)
    assert buckets.size == 4
    assert [buckets.index(v) for v in (0.0, 0.5, 1.0, 9.9, 10.0, 99.0, 100.0, 1e9, float("nan"))] == [
        0,
        0,
        1,
        1,
        2,
        2,
        3,
        3,
        0,
    ]
    assert buckets.value(0) == 0.0 and buckets.value(3) == 100.0
    assert buckets.quantile(np.zeros(4, dtype=np.int64), 0.5) == 0.0
    with pytest.raises(ValueError, match="growth > 1"):
        LogBuckets(1.0, 10.0, 1.0)


def test_levels_over_a_rolling_window() -> None:
    clock = Clock()
    tracker = ServiceLevelTracker(longest_window_s=60.0, slot_seconds=1.0, clock=clock)
    for i in range(90):
        tracker.observe(prediction(T0 - 0.5, 10.0 + i % 10), "t-fast")
    for _ in range(10):
        tracker.observe(prediction(T0 - 0.5, 500.0, route=inference_pb2.ROUTE_FALLBACK, freshness=30.0), "t-slow")
    tracker.observe(prediction(T0 - 0.5, 9999.0, shadow=True), "t-shadow")
    tracker.observe(prediction(T0 - 0.5, 9999.0, route=inference_pb2.ROUTE_SHADOW), "t-shadow")
    levels = tracker.levels("m", 10.0)
    assert levels is not None
    assert levels.requests == 100
    assert levels.fallback_rate == pytest.approx(0.1) and levels.error_rate == levels.fallback_rate
    assert levels.latency_p50_ms == pytest.approx(14.5, rel=0.1)
    assert levels.latency_p99_ms == pytest.approx(500.0, rel=0.05)
    assert levels.feature_freshness_p50_seconds == 0.0
    assert levels.window_end.ToNanoseconds() == int(T0 * 1e9)

    clock.now += 30
    assert tracker.levels("m", 10.0).requests == 0, "the window moved past them"  # type: ignore[union-attr]
    assert tracker.levels("m", 60.0).requests == 100, "the longest window still holds them"  # type: ignore[union-attr]
    tracker.observe(prediction(T0 - 0.5, 10.0), "t-old")  # 30.5 s old: in the ring, outside a 10 s window
    assert tracker.levels("m", 10.0).requests == 0  # type: ignore[union-attr]
    clock.now += 61
    assert tracker.levels("m", 60.0).requests == 0  # type: ignore[union-attr]
    tracker.observe(prediction(T0, 10.0), "t-too-old")  # older than the ring: left out
    tracker.observe(prediction(clock.now + 3600, 10.0), "t-future")  # from the future: counted now
    assert tracker.levels("m", 1.0).requests == 1  # type: ignore[union-attr]
    assert tracker.levels("other", 10.0) is None


def test_memory_is_fixed_per_model_whatever_the_traffic() -> None:
    clock = Clock()
    tracker = ServiceLevelTracker(longest_window_s=3600.0, slot_seconds=5.0, clock=clock)
    tracker.observe(prediction(T0, 1.0), "t")
    ring = tracker._rings["m"]
    expected = ((721, 3), (721, LATENCY_MS.size), (721, FRESHNESS_S.size))
    assert (ring.scalars.shape, ring.latency.shape, ring.freshness.shape) == expected
    for second in range(0, 7200, 7):
        clock.now = T0 + second
        tracker.observe(prediction(clock.now, float(second % 900)), "t")
    assert (ring.scalars.shape, ring.latency.shape, ring.freshness.shape) == expected
    nbytes = ring.scalars.nbytes + ring.latency.nbytes + ring.freshness.nbytes + ring.epochs.nbytes
    assert nbytes < 800_000, nbytes
    requests = tracker.levels("m", 3600.0).requests  # type: ignore[union-attr]
    assert abs(requests - 3600 / 7) <= 2, "the last hour's answers, to a slot"


def test_the_newest_offending_prediction_names_the_trace() -> None:
    clock = Clock()
    tracker = ServiceLevelTracker(
        longest_window_s=60.0, slot_seconds=1.0, clock=clock, thresholds=Thresholds(slow_ms=100.0, stale_s=60.0)
    )
    tracker.observe(prediction(T0 - 5, 300.0), "slow-old")
    tracker.observe(prediction(T0 - 2, 300.0), "slow-new")
    tracker.observe(prediction(T0 - 3, 300.0), "slow-older-late")  # arrives later, happened earlier
    tracker.observe(prediction(T0 - 1, 5.0, freshness=120.0), "stale")
    assert tracker.witness("m", "slow", 10.0) == "slow-new"
    assert tracker.witness("m", "stale", 10.0) == "stale"
    assert tracker.witness("m", "fallback", 10.0) == "stale", "no fallback: the newest prediction"
    clock.now += 30
    assert tracker.witness("m", "slow", 10.0) == "", "nothing within the window"
    assert tracker.witness("nope", "slow", 10.0) == ""


def test_events_other_than_predictions_and_models_past_the_limit_are_skipped() -> None:
    clock = Clock()
    tracker = ServiceLevelTracker(longest_window_s=60.0, slot_seconds=1.0, clock=clock, max_models=1)
    good = prediction(T0, 10.0).SerializeToString()
    traceparent = ("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    prediction_type = ("ce_type", b"aimesh.api.inference.v1.Prediction")
    events = [
        Event("p", 0, 0, None, good, (prediction_type, traceparent), 0),
        Event("p", 0, 1, None, b"\xff\xff", (prediction_type,), 0),
        Event("p", 0, 2, None, good, (("ce_type", b"aimesh.api.monitor.v1.LogRecord"),), 0),
        Event("p", 0, 3, None, prediction(T0, 10.0, model="second").SerializeToString(), (prediction_type,), 0),
    ]
    tracker.observe_events(events)
    assert tracker.models() == ["m"]
    assert tracker.levels("m", 10.0).requests == 1  # type: ignore[union-attr]
    assert tracker.witness("m", "slow", 10.0) == "0af7651916cd43dd8448eb211c80319c"
