"""AlertBook: raised once per subject, updated in place, resolved, acknowledged, rebuilt after a restart;
every change published (acknowledged by Kafka) before it is indexed and recorded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from aimesh.api.monitor.v1 import events_pb2 as monitor_events
from aimesh.core.errors import NotFound
from aimesh.core.testing import RecordingSender
from aimesh.monitor.alerting import AlertBook

from .alert_fakes import FakeAlertIndex

TOPIC = "alerts"
T0 = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0
        self.mono = 1000.0

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        self.mono += seconds


def book(index: FakeAlertIndex, sender: RecordingSender, clock: Clock, update_interval_s: float = 60.0) -> AlertBook:
    return AlertBook(
        index, sender, TOPIC, update_interval_s=update_interval_s, clock=lambda: clock.now, monotonic=lambda: clock.mono
    )


async def fire(
    alerts: AlertBook, value: float = 250.0, severity: int = monitor_events.SEVERITY_WARNING
) -> monitor_events.Alert:
    return await alerts.fire(
        rule="latency_p99",
        kind=monitor_events.ALERT_KIND_SLO,
        severity=severity,
        model_name="m",
        service="inference",
        message=f"p99 {value} ms",
        value=value,
        threshold=200.0,
        trace_id="ab" * 16,
        labels={"window": "300s"},
    )


async def test_fire_raises_once_then_updates_in_place_and_resolve_closes_it() -> None:
    index, sender, clock = FakeAlertIndex(), RecordingSender(), Clock()
    alerts = book(index, sender, clock)
    first = await fire(alerts)
    assert first.state == monitor_events.ALERT_STATE_FIRING
    assert first.alert_id == f"latency_p99:m:0::inference:{int(T0.timestamp() * 1000)}"
    assert [(s.key, s.event_id) for s in sender.on(TOPIC)] == [("m", f"{first.alert_id}:1")]
    assert index.alert(first.alert_id)["alert"]["state"] == "ALERT_STATE_FIRING"
    assert index.alert(first.alert_id)["trace"] == {"id": "ab" * 16}

    clock.advance(5)
    assert (await fire(alerts)).alert_id == first.alert_id
    await fire(alerts, value=260.0)  # a value change within the update interval: memory only
    assert len(sender.sent) == 1
    assert alerts.firing()[0].value == 260.0

    clock.advance(60)
    await fire(alerts, value=260.0)  # past the interval: the held change is published as revision 2
    assert [s.event_id for s in sender.sent] == [f"{first.alert_id}:{n}" for n in (1, 2)]
    assert index.alert(first.alert_id)["value"] == 260.0
    clock.advance(60)
    await fire(alerts, value=260.0)  # nothing new: not published
    await fire(alerts, value=270.0)  # past the interval: published as revision 3
    escalated = await fire(alerts, value=270.0, severity=monitor_events.SEVERITY_CRITICAL)  # severity: at once
    assert [s.event_id for s in sender.sent] == [f"{first.alert_id}:{n}" for n in (1, 2, 3, 4)]
    assert escalated.alert_id == first.alert_id and escalated.time == first.time
    assert index.alert(first.alert_id)["alert"]["revision"] == 4

    clock.advance(30)
    resolved = await alerts.resolve(rule="latency_p99", model_name="m", service="inference")
    assert resolved is not None and resolved.state == monitor_events.ALERT_STATE_RESOLVED
    assert resolved.resolved_time.ToDatetime(tzinfo=UTC) == clock.now
    assert sender.sent[-1].event_id == f"{first.alert_id}:5"
    assert index.alert(first.alert_id)["alert"]["state"] == "ALERT_STATE_RESOLVED"
    assert alerts.firing() == []
    assert await alerts.resolve(rule="latency_p99", model_name="m", service="inference") is None
    assert len(sender.sent) == 5

    again = await fire(alerts)  # the condition returns: a new alert
    assert again.alert_id != first.alert_id and again.state == monitor_events.ALERT_STATE_FIRING


async def test_subjects_are_separate_alerts() -> None:
    alerts = book(FakeAlertIndex(), RecordingSender(), Clock())
    a = await fire(alerts)
    b = await alerts.fire(
        rule="drift",
        kind=monitor_events.ALERT_KIND_DRIFT,
        severity=monitor_events.SEVERITY_CRITICAL,
        model_name="m",
        model_version=2,
        feature="v:f",
        service="monitor",
        message="drift",
        value=0.6,
        threshold=0.2,
    )
    assert a.alert_id != b.alert_id and len(alerts.firing()) == 2
    assert await alerts.resolve(rule="drift", model_name="m", model_version=2, feature="v:f", service="monitor")
    assert [x.alert_id for x in alerts.firing()] == [a.alert_id]


async def test_acknowledge_marks_it_seen_it_keeps_firing_until_resolved() -> None:
    index, sender, clock = FakeAlertIndex(), RecordingSender(), Clock()
    alerts = book(index, sender, clock)
    raised = await fire(alerts)
    clock.advance(10)
    acked = await alerts.acknowledge(raised.alert_id, "ops@example")
    assert acked.state == monitor_events.ALERT_STATE_ACKNOWLEDGED and acked.acknowledged_by == "ops@example"
    assert acked.acknowledged_time.ToDatetime(tzinfo=UTC) == clock.now
    assert (await alerts.acknowledge(raised.alert_id, "someone-else")).acknowledged_by == "ops@example"
    assert len(sender.sent) == 2
    updated = await fire(alerts, severity=monitor_events.SEVERITY_CRITICAL)
    assert updated.state == monitor_events.ALERT_STATE_ACKNOWLEDGED and updated.acknowledged_by == "ops@example"
    assert index.alert(raised.alert_id)["alert"]["acknowledged_by"] == "ops@example"
    resolved = await alerts.resolve(rule="latency_p99", model_name="m", service="inference")
    assert resolved is not None and resolved.state == monitor_events.ALERT_STATE_RESOLVED
    with pytest.raises(NotFound):
        await alerts.acknowledge(raised.alert_id, "ops@example")
    with pytest.raises(NotFound):
        await alerts.acknowledge("nope", "ops@example")


async def test_a_restart_rebuilds_open_alerts_so_nothing_is_raised_twice() -> None:
    index, sender, clock = FakeAlertIndex(), RecordingSender(), Clock()
    before = book(index, sender, clock)
    raised = await fire(before)
    await before.acknowledge(raised.alert_id, "ops")
    closed = await before.fire(
        rule="fallback_rate",
        kind=monitor_events.ALERT_KIND_SLO,
        severity=monitor_events.SEVERITY_WARNING,
        model_name="m",
        service="inference",
        message="fallbacks",
        value=0.5,
        threshold=0.1,
    )
    await before.resolve(rule="fallback_rate", model_name="m", service="inference")

    clock.advance(120)
    after = book(index, sender, clock)
    assert await after.load() == 1
    assert [a.alert_id for a in after.firing()] == [raised.alert_id]
    sent = len(sender.sent)
    again = await fire(after, severity=monitor_events.SEVERITY_CRITICAL)
    assert again.alert_id == raised.alert_id and again.state == monitor_events.ALERT_STATE_ACKNOWLEDGED
    assert sender.sent[sent].event_id == f"{raised.alert_id}:3", "the revision continues from the index"
    new = await after.fire(
        rule="fallback_rate",
        kind=monitor_events.ALERT_KIND_SLO,
        severity=monitor_events.SEVERITY_WARNING,
        model_name="m",
        service="inference",
        message="fallbacks",
        value=0.5,
        threshold=0.1,
    )
    assert new.alert_id != closed.alert_id, "a resolved alert is not reopened"


async def test_a_change_kafka_or_elasticsearch_refused_is_repeated_with_the_same_event_id() -> None:
    index, sender, clock = FakeAlertIndex(), RecordingSender(fail_times=1), Clock()
    alerts = book(index, sender, clock)
    with pytest.raises(ConnectionError):
        await fire(alerts)
    assert alerts.firing() == [] and sender.sent == []
    clock.advance(3)
    index.fail = 1
    with pytest.raises(ConnectionError):
        await fire(alerts)
    assert alerts.firing() == []
    clock.advance(3)
    raised = await fire(alerts)
    assert raised.alert_id.endswith(str(int(T0.timestamp() * 1000))), "the failed raise kept its start time"
    assert [s.event_id for s in sender.sent] == [f"{raised.alert_id}:1", f"{raised.alert_id}:1"]
    assert len(alerts.firing()) == 1
