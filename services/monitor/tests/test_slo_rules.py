"""The service-level rules: fire once with an offending trace id, update in place, resolve, survive a restart,
and the multi-window burn rate."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from aimesh.api.inference.v1 import events_pb2 as inference_events
from aimesh.api.inference.v1 import inference_pb2
from aimesh.api.monitor.v1 import events_pb2 as monitor_events
from aimesh.core.testing import RecordingSender
from aimesh.monitor.alerting import AlertBook
from aimesh.monitor.service_levels import ServiceLevelTracker
from aimesh.monitor.slo_rules import ServiceLevelRules, SloPolicy

from .alert_fakes import FakeAlertIndex

T0 = 1_796_292_000.0
TOPIC = "alerts"
THRESHOLDS_ONLY = SloPolicy(window_s=10.0, min_requests=5, latency_p99_ms=200.0, fallback_rate=0.2, burn_rate=0.0)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now

    def utc(self) -> datetime:
        return datetime.fromtimestamp(self.now, UTC)


class Setup:
    def __init__(self, policy: SloPolicy, index: FakeAlertIndex | None = None, clock: Clock | None = None) -> None:
        self.clock = clock or Clock()
        self.index = index or FakeAlertIndex()
        self.sender = RecordingSender()
        self.tracker = ServiceLevelTracker(
            longest_window_s=policy.longest_window_s, slot_seconds=1.0, thresholds=policy.thresholds(), clock=self.clock
        )
        self.alerts = AlertBook(self.index, self.sender, TOPIC, clock=self.clock.utc, monotonic=self.clock)
        self.rules = ServiceLevelRules(self.tracker, self.alerts, policy)

    def answer(self, n: int, latency_ms: float, trace: str, route: int = inference_pb2.ROUTE_CHAMPION) -> None:
        for _ in range(n):
            p = inference_events.Prediction(model_name="m", model_version=3, route=route)  # type: ignore[arg-type]
            p.time.FromNanoseconds(int(self.clock.now * 1e9))
            p.latency.FromNanoseconds(int(latency_ms * 1e6))
            self.tracker.observe(p, trace)

    def states(self) -> list[tuple[str, int]]:
        return [(s.message.rule, s.message.state) for s in self.sender.on(TOPIC)]  # type: ignore[attr-defined]


async def test_latency_fires_once_with_a_slow_trace_updates_then_resolves() -> None:
    s = Setup(THRESHOLDS_ONLY)
    s.answer(50, 20.0, "fast")
    assert await s.rules.evaluate() == []
    s.answer(3, 900.0, "slow")
    s.answer(1, 20.0, "fast-newest")
    [fired] = await s.rules.evaluate()
    assert (fired.rule, fired.kind, fired.severity) == ("latency_p99", monitor_events.ALERT_KIND_SLO, 3)
    assert fired.trace_id == "slow" and fired.model_name == "m" and fired.service == "inference"
    assert fired.value == pytest.approx(900.0, rel=0.05) and fired.threshold == 200.0
    assert dict(fired.labels) == {"window_seconds": "10"}

    s.clock.now += 2
    s.answer(2, 300.0, "slow-2")
    [again] = await s.rules.evaluate()
    assert again.alert_id == fired.alert_id
    assert s.states() == [("latency_p99", monitor_events.ALERT_STATE_FIRING)], "an update within a minute: in memory"

    s.clock.now += 12  # the slow answers left the window
    s.answer(2, 20.0, "fast")
    assert await s.rules.evaluate() == [], "too few answers decide nothing"
    assert len(s.alerts.firing()) == 1
    s.answer(10, 20.0, "fast")
    assert await s.rules.evaluate() == []
    assert s.states() == [
        ("latency_p99", monitor_events.ALERT_STATE_FIRING),
        ("latency_p99", monitor_events.ALERT_STATE_RESOLVED),
    ]
    assert s.alerts.firing() == []


async def test_fallback_rate_and_a_restart_that_keeps_the_alert() -> None:
    s = Setup(THRESHOLDS_ONLY)
    s.answer(10, 20.0, "ok")
    s.answer(5, 20.0, "fell-back", route=inference_pb2.ROUTE_FALLBACK)
    [fired] = await s.rules.evaluate()
    assert (fired.rule, fired.trace_id) == ("fallback_rate", "fell-back")
    assert fired.value == pytest.approx(1 / 3)
    acked = await s.alerts.acknowledge(fired.alert_id, "ops")

    restarted = Setup(THRESHOLDS_ONLY, index=s.index, clock=s.clock)
    assert await restarted.alerts.load() == 1
    restarted.answer(10, 20.0, "ok")
    restarted.answer(5, 20.0, "fell-back-again", route=inference_pb2.ROUTE_FALLBACK)
    [kept] = await restarted.rules.evaluate()
    assert kept.alert_id == fired.alert_id and kept.state == monitor_events.ALERT_STATE_ACKNOWLEDGED
    assert kept.acknowledged_by == acked.acknowledged_by == "ops"
    assert restarted.sender.sent == [], "nothing new to publish: the same alert, same severity"
    restarted.answer(40, 20.0, "ok")
    await restarted.rules.evaluate()
    assert [m.message.state for m in restarted.sender.on(TOPIC)] == [monitor_events.ALERT_STATE_RESOLVED]  # type: ignore[attr-defined]


async def test_burn_rate_needs_both_windows_and_resolves_with_the_short_one() -> None:
    policy = SloPolicy(
        window_s=10.0,
        min_requests=10,
        latency_p99_ms=0.0,
        fallback_rate=0.0,
        target=0.99,
        slo_latency_ms=100.0,
        burn_rate=14.4,
        burn_long_s=60.0,
        burn_short_s=5.0,
    )
    s = Setup(policy)
    s.answer(900, 20.0, "good")  # an hour-ish of good answers
    s.clock.now += 50
    s.answer(80, 20.0, "good")
    s.answer(20, 150.0, "too-slow")  # short window: 20 % bad = 20x the 1 % budget; long: 2 % = 2x
    assert await s.rules.evaluate() == [], "the long window does not burn fast enough"
    s.answer(200, 20.0, "fell-back", route=inference_pb2.ROUTE_FALLBACK)  # long: 220 / 1200 = 18x
    [fired] = await s.rules.evaluate()
    assert (fired.rule, fired.severity, fired.trace_id) == ("slo_burn", monitor_events.SEVERITY_CRITICAL, "fell-back")
    assert fired.value == pytest.approx(220 / 1200 / 0.01)
    s.clock.now += 6  # the short window is clean again
    s.answer(100, 20.0, "good")
    assert await s.rules.evaluate() == []
    assert s.states() == [
        ("slo_burn", monitor_events.ALERT_STATE_FIRING),
        ("slo_burn", monitor_events.ALERT_STATE_RESOLVED),
    ]


async def test_freshness_and_error_rate_rules_when_set() -> None:
    policy = SloPolicy(
        window_s=10.0,
        min_requests=5,
        latency_p99_ms=0.0,
        fallback_rate=0.0,
        error_rate=0.1,
        freshness_p50_s=60.0,
        burn_rate=0.0,
    )
    s = Setup(policy)
    for _ in range(6):
        p = inference_events.Prediction(model_name="m", feature_freshness_seconds=600.0)
        p.time.FromNanoseconds(int(s.clock.now * 1e9))
        s.tracker.observe(p, "stale")
    s.answer(2, 20.0, "fell-back", route=inference_pb2.ROUTE_FALLBACK)
    fired = {a.rule: a for a in await s.rules.evaluate()}
    assert set(fired) == {"feature_freshness", "error_rate"}
    assert fired["feature_freshness"].kind == monitor_events.ALERT_KIND_FRESHNESS
    assert fired["feature_freshness"].trace_id == "stale"
    assert fired["feature_freshness"].value == pytest.approx(600.0, rel=0.125)
    assert fired["error_rate"].kind == monitor_events.ALERT_KIND_ERROR_RATE
    assert fired["error_rate"].value == pytest.approx(0.25)
