"""Drift of the live model versions: of every profiled input and of the score, per streaming window;
on demand over any window; per-input drift alerts.

Streaming (``observe``, ``run``): the indexer hands every indexed batch of predictions to ``observe``,
which feeds ``aimesh.monitor.drift_windows``. Each closed window (by count at once, by time within
``interval_s``) is judged: one ``DriftReport`` per profiled input and one for the score
(``aimesh.core.distribution``: PSI, Jensen-Shannon distance, Wasserstein-1 for numeric values; the
verdict with the model's thresholds), indexed into ``<prefix>-drift`` (id = model, version, input
and window start, so a retried window overwrites its own reports), the gauges set, and for each
report a drift alert fired (naming the input; the score's has no feature) or, when not drifted,
resolved. An alert is CRITICAL when the PSI reaches ``critical`` (the retrain policy reacts to the
score's), else WARNING. A window whose judgement fails (Elasticsearch or Kafka down) stays pending and
is judged again next round; at most ``max_pending`` closed windows wait (the oldest are dropped).

A window needs enough samples for its verdict: on ``n`` values in ``b`` bins the PSI of a sample of the
reference itself is about ``(b - 1) / n`` and the squared Jensen-Shannon distance about a fifth of
that, hence ``min_samples`` (default 1000) for windows closed by time.

On demand (``report``): the PSI, distances and verdict of the score or of one input over any window
of indexed predictions, aggregated by Elasticsearch (inputs: ``features.<name>``, those listed in
``missing_features`` counted as missing); nothing is indexed or alerted. ``drift`` answers GetDrift
from the indexed window reports (the newest of each input).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

from aimesh.api.common.v1 import signature_pb2
from aimesh.api.inference.v1 import events_pb2 as inference_events
from aimesh.api.monitor.v1 import events_pb2 as monitor_events
from aimesh.api.monitor.v1 import monitor_pb2
from aimesh.api.training.v1 import training_pb2
from aimesh.core.distribution import (
    DriftScores,
    Thresholds,
    bin_ranges,
    compare,
    encoded_category_bins,
    score_profile,
)
from aimesh.core.errors import AimeshError, FailedPrecondition, NotFound
from aimesh.core.failures import describe
from aimesh.core.model_catalog import ModelCatalog, ModelVersion
from aimesh.monitor import metrics
from aimesh.monitor.alerting import AlertBook
from aimesh.monitor.bulk import IndexRequest
from aimesh.monitor.documents import drift_document, drift_report
from aimesh.monitor.drift_windows import ClosedWindow, DriftWindows, Tally
from aimesh.monitor.elastic import ElasticStore, PredictionWindow

log = logging.getLogger(__name__)

RULE = "drift"
_INPUT_GAUGES = (metrics.DRIFT_PSI_BY_INPUT, metrics.DRIFT_JS_DISTANCE, metrics.DRIFT_WASSERSTEIN, metrics.DRIFTED)


@dataclass(frozen=True, slots=True)
class DriftPolicy:
    """Windows, thresholds (defaults and per model) and bounds of drift monitoring."""

    window_s: float = 3600.0
    window_count: int = 10_000
    interval_s: float = 10.0
    min_samples: int = 1000
    thresholds: Thresholds = field(default_factory=Thresholds)
    per_model: Mapping[str, Thresholds] = field(default_factory=dict)
    critical: float = 0.5
    epsilon: float = 1e-4
    max_versions: int = 64
    max_pending: int = 256
    default_alias: str = "champion"

    def thresholds_for(self, model: str) -> Thresholds:
        """The model's thresholds: its override, else the defaults."""
        return self.per_model.get(model, self.thresholds)


class DriftMonitor:
    """See the module doc."""

    def __init__(self, catalog: ModelCatalog, store: ElasticStore, alerts: AlertBook, policy: DriftPolicy) -> None:
        self._catalog = catalog
        self._store = store
        self._alerts = alerts
        self.policy = policy
        self.windows = DriftWindows(
            catalog,
            window_s=policy.window_s,
            window_count=policy.window_count,
            min_samples=policy.min_samples,
            max_versions=policy.max_versions,
        )
        self._pending: deque[ClosedWindow] = deque()
        self._gauged: OrderedDict[tuple[str, int], set[str]] = OrderedDict()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()

    def observe(self, predictions: Sequence[inference_events.Prediction]) -> None:
        """Count indexed predictions into their windows; a window closed by count is judged soon by ``run``."""
        closed = self.windows.observe(predictions)
        if not closed:
            return
        self._pending.extend(closed)
        while len(self._pending) > self.policy.max_pending:
            dropped = self._pending.popleft()
            log.warning(
                "closed drift window dropped: too many waiting",
                extra={"model": dropped.model_name, "version": dropped.model_version},
            )
        self._wake.set()

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
        return found

    async def report(
        self,
        model: str,
        version: int = 0,
        *,
        feature: str = "",
        window_s: float | None = None,
        end: datetime | None = None,
        min_samples: int = 1,
    ) -> monitor_pb2.DriftReport:
        """The report of the score (``feature`` empty) or of one input over ``[end - window_s, end)``.

        Raises ``NotFound`` for an unknown model, version or input, ``FailedPrecondition`` when it has no
        reference or the window holds fewer than ``min_samples`` values, ``Unavailable`` when
        Elasticsearch fails.
        """
        target = self.target(model, version)
        profile = self._profile(target, feature)
        end = end or datetime.now(UTC)
        start = end - timedelta(seconds=window_s or self.policy.window_s)
        window = PredictionWindow(target.model_name, target.version, start, end)
        if profile.kind == signature_pb2.INPUT_KIND_CATEGORICAL:
            vocabulary = next(i.vocabulary for i in target.signature.inputs if i.name == feature)
            table = encoded_category_bins(profile, vocabulary)
            values, missing = await self._store.term_counts(
                window, f"features.{feature}", feature=feature, size=len(vocabulary) + 1
            )
            counts = np.zeros(len(profile.categories) + 1, dtype=np.int64)
            for value, count in values.items():
                index = int(value)
                if index == value and 0 < index < table.size:
                    counts[table[index]] += count
                else:
                    missing += count
        else:
            found, missing = await self._store.range_counts(
                window, f"features.{feature}" if feature else "score", bin_ranges(profile), feature=feature
            )
            counts = np.asarray(found, dtype=np.int64)
        total = int(counts.sum())
        if total < max(min_samples, 1):
            raise FailedPrecondition(
                f"only {total} values of {feature or 'the score'} of {model!r} v{target.version} between "
                f"{start.isoformat()} and {end.isoformat()}; at least {max(min_samples, 1)} needed"
            )
        thresholds = self.policy.thresholds_for(target.model_name)
        scores = compare(profile, counts, thresholds, epsilon=self.policy.epsilon)
        return drift_report(
            target.model_name, target.version, Tally(profile, counts, missing), scores, thresholds, start=start, end=end
        )

    @staticmethod
    def _profile(target: ModelVersion, feature: str) -> training_pb2.FeatureProfile:
        label = f"model {target.model_name!r} version {target.version}"
        if not feature:
            if not target.has_reference:
                raise FailedPrecondition(f"{label} has no reference score profile")
            return score_profile(
                training_pb2.ScoreProfile(
                    bin_edges=target.reference_edges, fractions=target.reference_fractions, count=target.reference_count
                )
            )
        if feature not in {i.name for i in target.signature.inputs}:
            raise NotFound(f"{label} has no input {feature!r}; its inputs: {', '.join(target.features)}")
        profile = next((p for p in target.input_profiles if p.feature == feature and p.fractions), None)
        if profile is None:
            raise FailedPrecondition(f"{label} has no reference profile of input {feature!r}")
        return profile

    async def drift(self, model: str, version: int = 0) -> monitor_pb2.GetDriftResponse:
        """The newest window report of every profiled input (signature order) and of the score.

        ``NotFound`` for an unknown model or version; ``FailedPrecondition`` when it has no input
        profiles or no window of it has been judged yet; ``Unavailable`` when Elasticsearch fails.
        """
        target = self.target(model, version)
        if not target.input_profiles:
            raise FailedPrecondition(f"model {model!r} version {target.version} has no input profiles")
        order = {p.feature: i for i, p in enumerate(target.input_profiles)}
        found = await self._store.newest_drift(target.model_name, target.version, features=len(order) + 1)
        reports = sorted(
            (r for r in found if r.feature in order or not r.feature), key=lambda r: order.get(r.feature, len(order))
        )
        if not reports:
            raise FailedPrecondition(
                f"no drift window of model {model!r} version {target.version} has been judged yet "
                f"(a window closes after {self.policy.window_count} predictions or {self.policy.window_s:g} s)"
            )
        return monitor_pb2.GetDriftResponse(
            reports=reports, drifted_features=[r.feature for r in reports if r.drifted and r.feature]
        )

    async def judge(self, window: ClosedWindow) -> list[monitor_pb2.DriftReport]:
        """Report, index, gauge and alert on one closed window (see the module doc)."""
        thresholds = self.policy.thresholds_for(window.model_name)
        tallies = [*window.inputs, *([window.score] if window.score is not None else [])]
        judged = [
            (tally, compare(tally.profile, tally.counts, thresholds, epsilon=self.policy.epsilon))
            for tally in tallies
            if int(tally.counts.sum()) > 0
        ]
        reports = [
            drift_report(
                window.model_name, window.model_version, tally, scores, thresholds, start=window.start, end=window.end
            )
            for tally, scores in judged
        ]
        index = self._store.indices["drift"]
        requests = [
            IndexRequest(
                index,
                f"{r.model_name}:{r.model_version}:{r.feature or 'score'}:{window.start.isoformat()}",
                drift_document(r),
            )
            for r in reports
        ]
        for rejected in await self._store.bulk_index(requests):
            log.error("drift report refused", extra={"id": rejected.doc_id, "reason": rejected.reason[:500]})
        self._gauge(reports)
        for report, (_, scores) in zip(reports, judged, strict=True):
            await self._verdict(report, scores)
        log.info(
            "drift window judged",
            extra={
                "model": window.model_name,
                "version": window.model_version,
                "predictions": window.predictions,
                "drifted": [r.feature or "score" for r in reports if r.drifted],
            },
        )
        return reports

    async def _verdict(self, report: monitor_pb2.DriftReport, scores: DriftScores) -> None:
        model, version, feature = report.model_name, report.model_version, report.feature
        if not scores.crossed:
            await self._alerts.resolve(rule=RULE, model_name=model, model_version=version, feature=feature)
            return
        metric, value, threshold = scores.crossed[0]
        what = f"input {report.feature}" if report.feature else "the score"
        critical = report.psi >= self.policy.critical
        await self._alerts.fire(
            rule=RULE,
            kind=monitor_events.ALERT_KIND_DRIFT,
            severity=monitor_events.SEVERITY_CRITICAL if critical else monitor_events.SEVERITY_WARNING,
            message=(
                f"drift of {what} of {report.model_name} v{report.model_version}: {metric} {value:.3f} >= "
                f"{threshold:g} over {report.sample_count} values (PSI {report.psi:.3f}, JS distance "
                f"{report.js_distance:.3f}, Wasserstein {report.wasserstein:.4g})"
            ),
            value=value,
            threshold=threshold,
            labels={"metric": metric},
            model_name=model,
            model_version=version,
            feature=feature,
        )

    def _gauge(self, reports: Sequence[monitor_pb2.DriftReport]) -> None:
        for r in reports:
            labels = (r.model_name, str(r.model_version), r.feature)
            metrics.DRIFT_PSI_BY_INPUT.labels(*labels).set(r.psi)
            metrics.DRIFT_JS_DISTANCE.labels(*labels).set(r.js_distance)
            metrics.DRIFT_WASSERSTEIN.labels(*labels).set(r.wasserstein)
            metrics.DRIFTED.labels(*labels).set(1.0 if r.drifted else 0.0)
            if not r.feature:
                metrics.DRIFT_PSI.labels(r.model_name, str(r.model_version)).set(r.psi)
            key = (r.model_name, r.model_version)
            self._gauged.setdefault(key, set()).add(r.feature)
            self._gauged.move_to_end(key)
        while len(self._gauged) > self.policy.max_versions:
            (model, version), features = self._gauged.popitem(last=False)
            for feature in features:
                for gauge in _INPUT_GAUGES:
                    with contextlib.suppress(KeyError):
                        gauge.remove(model, str(version), feature)
            with contextlib.suppress(KeyError):
                metrics.DRIFT_PSI.remove(model, str(version))

    async def evaluate_all(self) -> list[monitor_pb2.DriftReport]:
        """One round: close the windows due by time, judge every pending closed window (oldest first); a
        failure leaves the window it hit and the later ones pending."""
        self._pending.extend(self.windows.due())
        reports: list[monitor_pb2.DriftReport] = []
        while self._pending:
            reports.extend(await self.judge(self._pending[0]))
            self._pending.popleft()
        return reports

    async def run(self) -> None:
        """Judge closed windows as they close (and every ``interval_s``) until ``stop()``; a failed round (a
        domain error, or any other, e.g. an alert Kafka did not acknowledge during a broker outage) is
        logged as one WARNING line and retried ``interval_s`` later: it never ends the part (and with it
        the process)."""
        while not self._stopping.is_set():
            self._wake.clear()
            failed = False
            try:
                await self.evaluate_all()
            except AimeshError as exc:
                failed = True
                log.warning("drift evaluation failed: %s", exc)
            except Exception as exc:  # the next round retries the pending windows
                failed = True
                log.warning("drift evaluation failed: %s", describe(exc))
            waiting = self._stopping if failed else self._wake
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiting.wait(), timeout=self.policy.interval_s)

    async def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
