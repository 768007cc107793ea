"""Score drift of the live model versions, on a schedule and on demand; alerts when PSI is too high.

``DriftMonitor.report`` counts the version's live scores of a window in Elasticsearch per reference bin,
computes the PSI (``aimesh.monitor.drift``), indexes the report into ``<prefix>-drift`` (id = model,
version and window end, so re-running is idempotent) and, above ``psi_threshold``, publishes an
``Alert`` (kind DRIFT; CRITICAL above ``psi_critical``) to the alerts topic, waiting for Kafka's
acknowledgement, then indexes it into ``<prefix>-alerts``. The alert id is deterministic per model,
version and window bucket, so re-evaluation within one window raises nothing new. ``run`` evaluates
every alias target with a reference every ``interval_s`` seconds until ``stop``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aimesh.api.monitor.v1 import events_pb2 as monitor_events
from aimesh.api.monitor.v1 import monitor_pb2
from aimesh.core.bus import EventSender
from aimesh.core.errors import AimeshError, FailedPrecondition, NotFound
from aimesh.core.failures import describe
from aimesh.core.model_catalog import ModelCatalog, ModelVersion
from aimesh.monitor import metrics
from aimesh.monitor.documents import alert_document, drift_document, drift_report
from aimesh.monitor.drift import psi
from aimesh.monitor.elastic import ElasticStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DriftPolicy:
    window_s: float = 3600.0
    interval_s: float = 10.0
    min_samples: int = 50
    threshold: float = 0.2
    critical: float = 0.5
    epsilon: float = 1e-4
    default_alias: str = "champion"


class DriftMonitor:
    """See the module doc."""

    def __init__(
        self, catalog: ModelCatalog, store: ElasticStore, producer: EventSender, alerts_topic: str, policy: DriftPolicy
    ) -> None:
        self._catalog = catalog
        self._store = store
        self._producer = producer
        self._alerts_topic = alerts_topic
        self.policy = policy
        self._raised: set[str] = set()
        self._stopping = asyncio.Event()

    def target(self, model: str, version: int) -> ModelVersion:
        """The version to report on (0: the default alias's); ``NotFound``/``FailedPrecondition`` otherwise."""
        if model not in self._catalog.models():
            raise NotFound(f"model {model!r} is unknown; known models: {', '.join(self._catalog.models()) or 'none'}")
        if version == 0:
            pointed = self._catalog.alias_target(model, self.policy.default_alias)
            if pointed is None:
                raise FailedPrecondition(f"model {model!r} has no {self.policy.default_alias!r} alias; give a version")
            version = pointed
        found = self._catalog.version(model, version)
        if found is None:
            raise NotFound(f"model {model!r} has no registered version {version}")
        if not found.has_reference:
            raise FailedPrecondition(f"model {model!r} version {version} has no reference score profile")
        return found

    async def report(
        self,
        model: str,
        version: int = 0,
        *,
        window_s: float | None = None,
        end: datetime | None = None,
        min_samples: int = 1,
    ) -> monitor_pb2.DriftReport:
        """Compute, index and (above the threshold) alert on one window.

        Raises ``NotFound`` for an unknown model or version, ``FailedPrecondition`` when it has no reference
        or the window holds fewer than ``min_samples`` scores, ``Unavailable`` when Elasticsearch or Kafka fail.
        """
        target = self.target(model, version)
        end = end or datetime.now(UTC)
        window = window_s or self.policy.window_s
        start = end - timedelta(seconds=window)
        counts = await self._store.score_counts(target.model_name, target.version, target.reference_edges, start, end)
        if sum(counts) < max(min_samples, 1):
            raise FailedPrecondition(
                f"only {sum(counts)} scores of {model!r} v{target.version} between {start.isoformat()} and "
                f"{end.isoformat()}; at least {max(min_samples, 1)} needed"
            )
        stability = psi(target.reference_edges, target.reference_fractions, counts, epsilon=self.policy.epsilon)
        report = drift_report(
            target.model_name, target.version, stability, reference_count=target.reference_count, start=start, end=end
        )
        await self._store.index_one(
            self._store.indices["drift"],
            f"{target.model_name}:{target.version}:score:{end.isoformat()}",
            drift_document(report, self.policy.threshold),
        )
        metrics.DRIFT_PSI.labels(target.model_name, str(target.version)).set(report.psi)
        if report.psi > self.policy.threshold:
            await self._alert(report, end, window)
        return report

    async def _alert(self, report: monitor_pb2.DriftReport, end: datetime, window_s: float) -> None:
        bucket = int(end.timestamp() // window_s)
        alert_id = f"drift:{report.model_name}:{report.model_version}:score:{int(window_s)}s:{bucket}"
        if alert_id in self._raised:
            return
        critical = report.psi > self.policy.critical
        alert = monitor_events.Alert(
            alert_id=alert_id,
            kind=monitor_events.ALERT_KIND_DRIFT,
            severity=monitor_events.SEVERITY_CRITICAL if critical else monitor_events.SEVERITY_WARNING,
            model_name=report.model_name,
            model_version=report.model_version,
            message=(
                f"score drift of {report.model_name} v{report.model_version}: PSI {report.psi:.3f} > "
                f"{self.policy.threshold} over {report.sample_count} scores"
            ),
            value=report.psi,
            threshold=self.policy.threshold,
            service="monitor",
        )
        alert.time.FromDatetime(end)
        await (await self._producer.send_event(self._alerts_topic, alert, key=report.model_name, event_id=alert_id))
        await self._store.index_one(self._store.indices["alerts"], alert_id, alert_document(alert))
        self._raised.add(alert_id)
        metrics.ALERTS_RAISED.labels("DRIFT", monitor_events.Severity.Name(alert.severity)).inc()
        log.warning("drift alert raised", extra={"alert.id": alert_id, "psi": report.psi})

    async def evaluate_all(self) -> list[monitor_pb2.DriftReport]:
        """One scheduled round: every alias target with a reference and at least ``min_samples`` scores."""
        reports: list[monitor_pb2.DriftReport] = []
        for model in self._catalog.models():
            for version in sorted(set(self._catalog.aliases(model).values())):
                found = self._catalog.version(model, version)
                if found is None or not found.has_reference:
                    continue
                with contextlib.suppress(FailedPrecondition):
                    reports.append(await self.report(model, version, min_samples=self.policy.min_samples))
        return reports

    async def run(self) -> None:
        """Evaluate every ``interval_s`` until ``stop()``; a failed round (a domain error, or any other, e.g.
        an alert Kafka did not acknowledge during a broker outage) is logged as one WARNING line and retried
        next time: it never ends the part (and with it the process)."""
        while not self._stopping.is_set():
            try:
                await self.evaluate_all()
            except AimeshError as exc:
                log.warning("drift evaluation failed: %s", exc)
            except Exception as exc:  # the next round retries; the alert id dedupes what was half done
                log.warning("drift evaluation failed: %s", describe(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=self.policy.interval_s)

    async def stop(self) -> None:
        self._stopping.set()
