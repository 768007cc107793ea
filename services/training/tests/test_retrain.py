"""The retrain policy: open CRITICAL DRIFT alerts for enabled models start one run per alert, everything else is
ignored."""

from __future__ import annotations

import pytest

from aimesh.api.monitor.v1 import events_pb2 as monitor_events
from aimesh.api.training.v1 import training_pb2
from aimesh.core.errors import InvalidArgument
from aimesh.core.events import Event, PoisonEvent
from aimesh.training.retrain import RetrainPolicy

SPEC = training_pb2.RunSpec(model_name="fraud", feature_service="fraud_v1", register_model=True)


class FakeStarter:
    def __init__(self) -> None:
        self.started: dict[str, tuple[training_pb2.RunSpec, str]] = {}
        self.reject = False

    async def start(
        self, spec: training_pb2.RunSpec, *, idempotency_key: str = "", trigger: str = "manual"
    ) -> training_pb2.Run:
        if self.reject:
            raise InvalidArgument("spec.feature_service is required")
        self.started.setdefault(idempotency_key, (spec, trigger))
        return training_pb2.Run(run_id=f"run-{len(self.started)}", spec=spec, trigger=trigger)


class FakeSpecs:
    async def latest_spec(self, model_name: str) -> training_pb2.RunSpec | None:
        return SPEC if model_name == "fraud" else None


def alert_event(
    kind: int = monitor_events.ALERT_KIND_DRIFT,
    model: str = "fraud",
    alert_id: str = "a1",
    severity: int = monitor_events.SEVERITY_CRITICAL,
    state: int = monitor_events.ALERT_STATE_FIRING,
    feature: str = "",
) -> Event:
    alert = monitor_events.Alert(
        alert_id=alert_id,
        kind=kind,  # type: ignore[arg-type]
        model_name=model,
        severity=severity,  # type: ignore[arg-type]
        state=state,  # type: ignore[arg-type]
        feature=feature,
    )
    return Event("alerts", 0, 1, b"fraud", alert.SerializeToString(), (), 0)


async def test_drift_alert_for_an_enabled_model_starts_one_run_per_alert() -> None:
    starter = FakeStarter()
    policy = RetrainPolicy(["fraud"], starter=starter, specs=FakeSpecs())
    await policy.handle(alert_event())
    await policy.handle(alert_event())  # redelivered
    assert starter.started == {"retrain:a1": (SPEC, "alert:a1")}


async def test_other_alerts_and_models_without_policy_do_nothing() -> None:
    starter = FakeStarter()
    policy = RetrainPolicy(["fraud", "never_trained"], starter=starter, specs=FakeSpecs())
    await policy.handle(alert_event(kind=monitor_events.ALERT_KIND_SLO))
    await policy.handle(alert_event(model="churn"))
    await policy.handle(alert_event(model="never_trained"))
    await RetrainPolicy([], starter=starter, specs=FakeSpecs()).handle(alert_event())  # policy off by default
    await policy.handle(alert_event(feature="v:amount", alert_id="f1"))  # an input's drift names it only
    assert starter.started == {}


async def test_bad_alerts_are_dead_lettered() -> None:
    starter = FakeStarter()
    policy = RetrainPolicy(["fraud"], starter=starter, specs=FakeSpecs())
    with pytest.raises(PoisonEvent, match="DECODE_ERROR"):
        await policy.handle(Event("alerts", 0, 1, None, b"\xff\xff", (), 0))
    with pytest.raises(PoisonEvent, match="alert_id"):
        await policy.handle(alert_event(alert_id=""))
    starter.reject = True
    with pytest.raises(PoisonEvent, match="cannot retrain fraud"):
        await policy.handle(alert_event())


async def test_each_change_of_one_alert_starts_one_run_and_only_when_critical_and_open() -> None:
    starter = FakeStarter()
    policy = RetrainPolicy(["fraud"], starter=starter, specs=FakeSpecs())
    await policy.handle(alert_event(alert_id="w", severity=monitor_events.SEVERITY_WARNING))
    assert starter.started == {}, "a WARNING drift alert starts nothing"
    for state in (
        monitor_events.ALERT_STATE_FIRING,  # escalated to CRITICAL
        monitor_events.ALERT_STATE_FIRING,  # updated
        monitor_events.ALERT_STATE_ACKNOWLEDGED,
        monitor_events.ALERT_STATE_RESOLVED,
    ):
        await policy.handle(alert_event(alert_id="w", state=state))
    assert list(starter.started) == ["retrain:w"]
    await policy.handle(alert_event(alert_id="r", state=monitor_events.ALERT_STATE_RESOLVED))
    assert "retrain:r" not in starter.started, "a resolved alert starts nothing"
    await policy.handle(alert_event(alert_id="old", state=monitor_events.ALERT_STATE_UNSPECIFIED))
    assert "retrain:old" in starter.started, "alerts of publishers without states still count"
