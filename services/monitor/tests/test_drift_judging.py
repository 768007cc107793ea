"""Judging closed drift windows: one report per input and the score, indexed with stable ids; a drift
alert names the shifted input and no other, is updated while it fires and resolved by a clean window;
thresholds per model; GetDrift answers the newest report of each input."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import pytest

from aimesh.api.monitor.v1 import events_pb2 as monitor_events
from aimesh.api.monitor.v1 import monitor_pb2
from aimesh.core.distribution import Thresholds
from aimesh.core.errors import FailedPrecondition, NotFound, Unavailable
from aimesh.core.testing import RecordingSender
from aimesh.monitor.alerting import AlertBook
from aimesh.monitor.bulk import IndexRequest, Rejected
from aimesh.monitor.documents import drift_from_document
from aimesh.monitor.drift_monitor import DriftMonitor, DriftPolicy
from aimesh.monitor.elastic import ElasticStore

from . import alert_fakes  # type: ignore[attr-defined]
from . import drift_fixtures as fx  # type: ignore[attr-defined]

ALERTS = "alerts"


class FakeStore(alert_fakes.FakeAlertIndex):  # type: ignore[misc]
    """The parts of ``ElasticStore`` drift and the alert book use, in memory (``down``: bulk_index fails)."""

    prefix = "aim"

    def __init__(self) -> None:
        super().__init__(self.prefix)
        self.docs: dict[str, dict[str, Any]] = {}
        self.down = False

    async def bulk_index(self, requests: Sequence[IndexRequest]) -> list[Rejected]:
        if self.down:
            raise Unavailable("Elasticsearch is down")
        self.docs.update({r.doc_id: r.document for r in requests})
        return []

    async def newest_drift(self, model: str, version: int, *, features: int) -> list[monitor_pb2.DriftReport]:
        newest: dict[str, monitor_pb2.DriftReport] = {}
        for doc in self.docs.values():
            report = drift_from_document(doc)
            held = newest.get(report.feature)
            if (report.model_name, report.model_version) == (model, version) and (
                held is None or report.window_end.ToDatetime() >= held.window_end.ToDatetime()
            ):
                newest[report.feature] = report
        return list(newest.values())[:features]


def monitor(policy: DriftPolicy | None = None) -> tuple[DriftMonitor, FakeStore, RecordingSender]:
    store, sender = FakeStore(), RecordingSender()
    catalog = fx.catalog_with(fx.registered("m", 1))
    alerts = AlertBook(store, sender, ALERTS)
    drift = DriftMonitor(catalog, cast(ElasticStore, store), alerts, policy or DriftPolicy(window_count=2000))
    return drift, store, sender


def drift_alerts(drift: DriftMonitor) -> list[monitor_events.Alert]:
    return cast(AlertBook, drift._alerts).firing()


def sent_alerts(sender: RecordingSender) -> list[monitor_events.Alert]:
    return [cast(monitor_events.Alert, s.message) for s in sender.on(ALERTS)]


async def test_a_shifted_input_raises_one_alert_naming_it_and_a_clean_window_resolves_it() -> None:
    drift, store, sender = monitor()
    drift.observe(fx.predictions(2000, shift="v:b", prefix="w1"))
    reports = await drift.evaluate_all()
    assert [r.feature for r in reports] == [*fx.NUMERIC, fx.CATEGORICAL, ""]
    assert [r.feature for r in reports if r.drifted] == ["v:b"]
    shifted = reports[1]
    assert shifted.psi >= 0.2 and shifted.js_distance >= 0.1 and shifted.wasserstein > 1.0
    assert shifted.missing_count == 200 and shifted.sample_count == 1800
    assert all(r.psi < 0.05 for r in reports if r.feature != "v:b")
    assert reports[3].bins[-1].category == "" and [b.category for b in reports[3].bins][:3] == ["x", "y", "z"]
    assert len(store.docs) == 5 and all(doc_id.startswith("m:1:") for doc_id in store.docs)

    (alert,) = sent_alerts(sender)
    assert alert.feature == "v:b" and "v:b" in alert.message and "v:a" not in alert.message
    assert alert.kind == monitor_events.ALERT_KIND_DRIFT and alert.state == monitor_events.ALERT_STATE_FIRING
    assert alert.rule == "drift" and alert.labels["metric"] == "psi" and alert.value == pytest.approx(shifted.psi)
    assert sender.on(ALERTS)[0].event_id == f"{alert.alert_id}:1" and store.alert(alert.alert_id)

    drift.observe(fx.predictions(2000, shift="v:b", prefix="w2", seed=5))
    await drift.evaluate_all()  # still drifted: the open alert is updated in place (the book throttles)
    (firing,) = drift_alerts(drift)
    assert firing.alert_id == alert.alert_id and firing.value != alert.value and len(sender.on(ALERTS)) == 1

    drift.observe(fx.predictions(2000, prefix="w3", seed=6))
    await drift.evaluate_all()
    resolved = sent_alerts(sender)[-1]
    assert (resolved.alert_id, resolved.state) == (alert.alert_id, monitor_events.ALERT_STATE_RESOLVED)
    assert sender.on(ALERTS)[-1].event_id == f"{alert.alert_id}:2"
    assert len(sender.on(ALERTS)) == 2 and len(store.docs) == 15 and drift_alerts(drift) == []


async def test_get_drift_lists_the_newest_report_of_each_input_and_the_drifted_ones() -> None:
    drift, _, _ = monitor()
    with pytest.raises(FailedPrecondition, match="has been judged yet"):
        await drift.drift("m", 1)
    drift.observe(fx.predictions(2000, shift=fx.CATEGORICAL, by=0, prefix="w1"))
    await drift.evaluate_all()
    reply = await drift.drift("m", 1)
    assert [r.feature for r in reply.reports] == [*fx.NUMERIC, fx.CATEGORICAL, ""]
    assert list(reply.drifted_features) == []
    drift.observe(fx.predictions(2000, shift="v:c", prefix="w2"))
    await drift.evaluate_all()
    assert list((await drift.drift("m", 1)).drifted_features) == ["v:c"]
    with pytest.raises(NotFound):
        await drift.drift("m", 7)


async def test_a_swapped_category_is_flagged() -> None:
    drift, _, sender = monitor()
    rows = fx.predictions(2000)
    for row in rows:
        row.features[fx.CATEGORICAL] = 3.0 if row.features[fx.CATEGORICAL] == 1.0 else 1.0
    drift.observe(rows)
    reports = await drift.evaluate_all()
    assert [r.feature for r in reports if r.drifted] == [fx.CATEGORICAL]
    assert [a.feature for a in sent_alerts(sender)] == [fx.CATEGORICAL]


async def test_thresholds_per_model_and_critical_score_drift() -> None:
    lenient = Thresholds(psi=50.0, js_distance=0.0, wasserstein_stddevs=0.0)
    drift, _, sender = monitor(DriftPolicy(window_count=2000, per_model={"m": lenient}))
    drift.observe(fx.predictions(2000, shift="v:b"))
    reports = await drift.evaluate_all()
    assert not any(r.drifted for r in reports) and sent_alerts(sender) == []
    assert reports[0].thresholds.psi == 50.0

    drift, _, sender = monitor(DriftPolicy(window_count=2000))
    rows = fx.predictions(2000)
    for row in rows:
        row.score = row.score / 4  # every score in the first bin
    drift.observe(rows)
    await drift.evaluate_all()
    (alert,) = sent_alerts(sender)
    assert alert.feature == "" and alert.severity == monitor_events.SEVERITY_CRITICAL and "the score" in alert.message


async def test_a_window_whose_judgement_fails_is_judged_again() -> None:
    drift, store, sender = monitor()
    drift.observe(fx.predictions(2000, shift="v:a"))
    store.down = True
    with pytest.raises(Unavailable):
        await drift.evaluate_all()
    store.down = False
    assert [r.feature for r in await drift.evaluate_all() if r.drifted] == ["v:a"]
    assert [a.feature for a in sent_alerts(sender)] == ["v:a"]
