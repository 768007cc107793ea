"""Retrain policy: a CRITICAL score DRIFT alert for a model whose policy is on starts a run repeating its
last successful spec.

``RetrainPolicy.handle`` is the transport-free handler of ``aimesh.monitor.alerts.v1``. Monitor publishes
each change of an alert (raised, updated, escalated, acknowledged, resolved) under the same alert id; the
policy acts on the ones that are open (FIRING or ACKNOWLEDGED; unset for publishers older than alert
states) and CRITICAL, and the run's idempotency key is derived from the alert id, so one alert starts one
run however many of its changes (or redeliveries) arrive: a WARNING drift alert escalated to CRITICAL
starts it then. Per-input drift alerts (``feature`` set) name what drifted and start nothing (several
inputs drifting at once would start several runs); the score's alert is the trigger. RESOLVED alerts,
other severities, other kinds and other models are acknowledged without effect.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Protocol

from aimesh.api.monitor.v1 import events_pb2 as monitor_events
from aimesh.api.training.v1 import training_pb2
from aimesh.core.errors import InvalidArgument
from aimesh.core.events import Event, PoisonEvent

log = logging.getLogger(__name__)
ACTOR = "retrain-policy"


class RunStarter(Protocol):
    async def start(
        self, spec: training_pb2.RunSpec, *, idempotency_key: str = "", trigger: str = "manual"
    ) -> training_pb2.Run: ...


class SpecSource(Protocol):
    async def latest_spec(self, model_name: str) -> training_pb2.RunSpec | None: ...


class RetrainPolicy:
    """Starts retraining runs for the models in ``enabled_models`` (see module doc)."""

    def __init__(self, enabled_models: Iterable[str], *, starter: RunStarter, specs: SpecSource) -> None:
        self._enabled = frozenset(enabled_models)
        self._starter = starter
        self._specs = specs

    async def handle(self, event: Event) -> None:
        """Handle one alert event. Raises ``PoisonEvent`` for an undecodable alert or an unrunnable spec."""
        alert = event.parse(monitor_events.Alert)
        if alert.kind != monitor_events.ALERT_KIND_DRIFT or alert.model_name not in self._enabled:
            return
        if alert.severity != monitor_events.SEVERITY_CRITICAL or alert.state == monitor_events.ALERT_STATE_RESOLVED:
            return
        if alert.feature:
            return
        if not alert.alert_id:
            raise PoisonEvent("MISSING_FIELD", "DRIFT alert without alert_id")
        spec = await self._specs.latest_spec(alert.model_name)
        if spec is None:
            log.warning("drift alert for a model that never trained successfully", extra={"model": alert.model_name})
            return
        try:
            run = await self._starter.start(
                spec, idempotency_key=f"retrain:{alert.alert_id}", trigger=f"alert:{alert.alert_id}"
            )
        except InvalidArgument as exc:
            raise PoisonEvent("INVALID_VALUE", f"cannot retrain {alert.model_name}: {exc.message}") from exc
        log.info(
            "retraining after drift", extra={"model": alert.model_name, "alert": alert.alert_id, "run_id": run.run_id}
        )
