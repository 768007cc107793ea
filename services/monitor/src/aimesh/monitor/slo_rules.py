"""Alert rules over the service levels, evaluated every ``interval_s``, firing and resolving through ``AlertBook``.

Per model seen in the prediction stream (``ServiceLevelTracker``), each rule whose threshold is set (> 0):

- ``latency_p99`` (kind SLO): p99 latency over ``window_s`` above ``latency_p99_ms``; CRITICAL from twice it;
- ``error_rate`` (kind ERROR_RATE): the error rate over ``window_s`` above ``error_rate`` (see
  ``aimesh.monitor.service_levels`` for what the stream can show of errors);
- ``fallback_rate`` (kind SLO): the share of fallback answers over ``window_s`` above ``fallback_rate``;
- ``feature_freshness`` (kind FRESHNESS): the median feature freshness over ``window_s`` above
  ``freshness_p50_s``;
- ``slo_burn`` (kind SLO, CRITICAL): the multi-window burn rate of the SLO "a share ``target`` of the
  answers are neither a fallback nor slower than ``slo_latency_ms``": the bad share over a window divided
  by the error budget ``1 - target``, at or above ``burn_rate`` over both ``burn_long_s`` and
  ``burn_short_s`` (14.4 over 1 h and 5 min by default: 2 % of a 30-day budget spent in an hour). It
  resolves when the short window's burn rate is back under ``burn_rate``.

A threshold rule fires while its value is above the threshold and resolves when it is at or under it.
A window with fewer than ``min_requests`` answers decides nothing (an open alert stays open, nothing is
raised), so a quiet minute or the empty windows after a restart neither raise nor resolve anything.
Alerts are about the model (``model_version`` 0, ``service`` = ``service``), carry the window in their
labels and the trace id of the newest offending prediction of the window (for ``latency_p99`` one slower
than the threshold, for the rates a fallback, for freshness one staler than the threshold, for the burn
rate a bad answer; the newest prediction when none is known).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from aimesh.api.monitor.v1 import events_pb2 as monitor_events
from aimesh.core.periodic import PeriodicRefresh
from aimesh.monitor.alerting import AlertBook
from aimesh.monitor.service_levels import FRESHNESS_S, LATENCY_MS, ServiceLevelTracker, Thresholds, WindowCounts

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SloPolicy:
    """The rules' settings (see the module doc); a threshold of 0 turns its rule off."""

    interval_s: float = 10.0
    window_s: float = 300.0
    min_requests: int = 20
    latency_p99_ms: float = 250.0
    error_rate: float = 0.0
    fallback_rate: float = 0.1
    freshness_p50_s: float = 0.0
    target: float = 0.99
    slo_latency_ms: float = 250.0
    burn_rate: float = 14.4
    burn_long_s: float = 3600.0
    burn_short_s: float = 300.0
    service: str = "inference"

    @property
    def longest_window_s(self) -> float:
        return max(self.window_s, self.burn_long_s if self.burn_rate > 0 else 0.0)

    def thresholds(self) -> Thresholds:
        """What the tracker marks as offending, for the alerts' trace ids."""
        return Thresholds(slow_ms=self.latency_p99_ms, stale_s=self.freshness_p50_s, slo_latency_ms=self.slo_latency_ms)


@dataclass(frozen=True, slots=True)
class _Threshold:
    rule: str
    kind: int
    witness: str
    unit: str
    value: Callable[[WindowCounts], float]
    threshold: Callable[[SloPolicy], float]


def _rate(counts: WindowCounts) -> float:
    return counts.fallbacks / counts.requests


THRESHOLD_RULES = (
    _Threshold(
        "latency_p99",
        monitor_events.ALERT_KIND_SLO,
        "slow",
        "ms",
        lambda c: LATENCY_MS.quantile(c.latency, 0.99),
        lambda p: p.latency_p99_ms,
    ),
    _Threshold("error_rate", monitor_events.ALERT_KIND_ERROR_RATE, "fallback", "", _rate, lambda p: p.error_rate),
    _Threshold("fallback_rate", monitor_events.ALERT_KIND_SLO, "fallback", "", _rate, lambda p: p.fallback_rate),
    _Threshold(
        "feature_freshness",
        monitor_events.ALERT_KIND_FRESHNESS,
        "stale",
        "s",
        lambda c: FRESHNESS_S.quantile(c.freshness, 0.5),
        lambda p: p.freshness_p50_s,
    ),
)
BURN_RULE = "slo_burn"


class ServiceLevelRules:
    """Evaluates the rules of ``policy`` over ``tracker`` into ``alerts`` (see the module doc)."""

    def __init__(self, tracker: ServiceLevelTracker, alerts: AlertBook, policy: SloPolicy) -> None:
        self._tracker = tracker
        self._alerts = alerts
        self.policy = policy
        self._loop = PeriodicRefresh(self.evaluate, lambda: "service level evaluation failed", log)

    async def evaluate(self) -> list[monitor_events.Alert]:
        """One round over every model (yielding to the event loop between models); returns the alerts
        fired or updated."""
        fired: list[monitor_events.Alert] = []
        for model in self._tracker.models():
            counts = self._tracker.counts(model, self.policy.window_s)
            for rule in THRESHOLD_RULES:
                alert = await self._threshold(model, rule, counts)
                if alert is not None:
                    fired.append(alert)
            alert = await self._burn(model)
            if alert is not None:
                fired.append(alert)
            await asyncio.sleep(0)
        return fired

    async def _threshold(
        self, model: str, rule: _Threshold, counts: WindowCounts | None
    ) -> monitor_events.Alert | None:
        p = self.policy
        threshold = rule.threshold(p)
        if threshold <= 0 or counts is None or counts.requests < max(p.min_requests, 1):
            return None
        value = rule.value(counts)
        if value <= threshold:
            await self._alerts.resolve(rule=rule.rule, model_name=model, service=p.service)
            return None
        critical = rule.rule == "latency_p99" and value >= 2 * threshold
        severity = monitor_events.SEVERITY_CRITICAL if critical else monitor_events.SEVERITY_WARNING
        shown = f"{value:.1f} {rule.unit}" if rule.unit else f"{value:.3f}"
        limit = f"{threshold:g} {rule.unit}" if rule.unit else f"{threshold:g}"
        return await self._alerts.fire(
            rule=rule.rule,
            kind=rule.kind,
            severity=severity,
            model_name=model,
            service=p.service,
            message=f"{model}: {rule.rule} {shown} > {limit} over {p.window_s:g} s ({counts.requests} answers)",
            value=value,
            threshold=threshold,
            trace_id=self._tracker.witness(model, rule.witness, p.window_s),
            labels={"window_seconds": f"{p.window_s:g}"},
        )

    async def _burn(self, model: str) -> monitor_events.Alert | None:
        p = self.policy
        if p.burn_rate <= 0 or not 0 < p.target < 1:
            return None
        long, short = self._tracker.counts(model, p.burn_long_s), self._tracker.counts(model, p.burn_short_s)
        if long is None or short is None or short.requests < max(p.min_requests, 1):
            return None
        budget = 1 - p.target
        long_burn = long.bad / long.requests / budget
        short_burn = short.bad / short.requests / budget
        if short_burn < p.burn_rate:
            await self._alerts.resolve(rule=BURN_RULE, model_name=model, service=p.service)
            return None
        if long_burn < p.burn_rate:
            return None
        return await self._alerts.fire(
            rule=BURN_RULE,
            kind=monitor_events.ALERT_KIND_SLO,
            severity=monitor_events.SEVERITY_CRITICAL,
            model_name=model,
            service=p.service,
            message=(
                f"{model}: SLO {p.target:g} (no fallback, <= {p.slo_latency_ms:g} ms) burns its error budget "
                f"{long_burn:.1f}x over {p.burn_long_s:g} s and {short_burn:.1f}x over {p.burn_short_s:g} s "
                f"(limit {p.burn_rate:g}x)"
            ),
            value=long_burn,
            threshold=p.burn_rate,
            trace_id=self._tracker.witness(model, "bad", p.burn_short_s),
            labels={"long_window_seconds": f"{p.burn_long_s:g}", "short_window_seconds": f"{p.burn_short_s:g}"},
        )

    async def run(self) -> None:
        """Evaluate every ``interval_s`` until ``stop()``; a failed round is logged and retried next time."""
        await self._loop.run(self.policy.interval_s)

    async def stop(self) -> None:
        self._loop.stop()
