"""MonitorService request checks before Elasticsearch is asked: bounded names, page tokens and windows.

A fake alert store records the queries; what it never receives is what the handler refused (the fault
suite's fuzz saw a 1 MiB ``model_name`` answered UNAVAILABLE: Elasticsearch refused the query).
"""

from __future__ import annotations

from typing import Any, cast

import pytest

from aimesh.api.common.v1 import common_pb2
from aimesh.api.inference.v1 import events_pb2 as inference_events
from aimesh.api.inference.v1 import inference_pb2
from aimesh.api.monitor.v1 import events_pb2 as monitor_events
from aimesh.api.monitor.v1 import monitor_pb2
from aimesh.core.errors import InvalidArgument, NotFound
from aimesh.core.model_catalog import ModelCatalog
from aimesh.monitor.alerting import AlertBook
from aimesh.monitor.app import MAX_RESULT_WINDOW, MonitorServiceApi
from aimesh.monitor.drift_monitor import DriftMonitor
from aimesh.monitor.elastic import AlertQuery, ElasticStore
from aimesh.monitor.service_levels import ServiceLevelTracker


class FakeAlerts:
    def __init__(self) -> None:
        self.queries: list[AlertQuery] = []

    async def search_alerts(self, query: AlertQuery) -> tuple[list[Any], bool]:
        self.queries.append(query)
        return [], False


@pytest.fixture
def alerts() -> FakeAlerts:
    return FakeAlerts()


def api(alerts: FakeAlerts) -> MonitorServiceApi:
    return MonitorServiceApi(
        cast(DriftMonitor, None),
        cast(ElasticStore, alerts),
        cast(AlertBook, None),
        ServiceLevelTracker(),
        ModelCatalog(),
    )


async def test_a_valid_listing_reaches_the_store(alerts: FakeAlerts) -> None:
    request = monitor_pb2.ListAlertsRequest(model_name="m" * 256, page=common_pb2.PageRequest(page_token="100"))
    await api(alerts).ListAlerts(request, None)  # type: ignore[arg-type]
    assert [(q.model_name, q.offset, q.size) for q in alerts.queries] == [("m" * 256, 100, 100)]


async def test_the_state_and_feature_filters_reach_the_store(alerts: FakeAlerts) -> None:
    request = monitor_pb2.ListAlertsRequest(state=monitor_events.ALERT_STATE_ACKNOWLEDGED, feature="v:f")
    await api(alerts).ListAlerts(request, None)  # type: ignore[arg-type]
    await api(alerts).ListAlerts(monitor_pb2.ListAlertsRequest(), None)  # type: ignore[arg-type]
    acknowledged = (monitor_events.ALERT_STATE_ACKNOWLEDGED,)
    assert [(q.states, q.feature) for q in alerts.queries] == [(acknowledged, "v:f"), ((), "")]


@pytest.mark.parametrize(
    ("request_", "why"),
    [
        (
            monitor_pb2.ListAlertsRequest(model_name="m" * (1 << 20)),
            "model_name is 1048576 bytes long; the limit is 256",
        ),
        (monitor_pb2.ListAlertsRequest(page=common_pb2.PageRequest(page_token="9" * 5000)), "is not a token"),
        (monitor_pb2.ListAlertsRequest(page=common_pb2.PageRequest(page_token="x1")), "is not a token"),
        (monitor_pb2.ListAlertsRequest(page=common_pb2.PageRequest(page_size=-1)), "must not be negative"),
        (
            monitor_pb2.ListAlertsRequest(page=common_pb2.PageRequest(page_token=str(MAX_RESULT_WINDOW - 100))),
            "pages past the first 10000 alerts",
        ),
    ],
)
async def test_requests_elasticsearch_would_refuse_are_invalid_argument(
    alerts: FakeAlerts, request_: monitor_pb2.ListAlertsRequest, why: str
) -> None:
    with pytest.raises(InvalidArgument, match=why):
        await api(alerts).ListAlerts(request_, None)  # type: ignore[arg-type]
    assert alerts.queries == []


async def test_a_drift_report_for_an_oversized_model_name_is_invalid_argument(alerts: FakeAlerts) -> None:
    with pytest.raises(InvalidArgument, match="model_name is 257 bytes long"):
        await api(alerts).GetDriftReport(monitor_pb2.GetDriftReportRequest(model_name="m" * 257), None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("request_", "why"),
    [
        (monitor_pb2.GetDriftRequest(), "model_name is required"),
        (monitor_pb2.GetDriftRequest(model_name="m" * 257), "model_name is 257 bytes long"),
        (monitor_pb2.GetDriftRequest(model_name="m", model_version=-1), "must not be negative"),
    ],
)
async def test_get_drift_checks_its_request(
    alerts: FakeAlerts, request_: monitor_pb2.GetDriftRequest, why: str
) -> None:
    with pytest.raises(InvalidArgument, match=why):
        await api(alerts).GetDrift(request_, None)  # type: ignore[arg-type]


async def test_a_drift_report_for_an_oversized_feature_is_invalid_argument(alerts: FakeAlerts) -> None:
    request = monitor_pb2.GetDriftReportRequest(model_name="m", feature="f" * 257)
    with pytest.raises(InvalidArgument, match="feature is 257 bytes long"):
        await api(alerts).GetDriftReport(request, None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("request_", "why"),
    [
        (monitor_pb2.AcknowledgeAlertRequest(actor="ops"), "alert_id is required"),
        (monitor_pb2.AcknowledgeAlertRequest(alert_id="a" * 300, actor="ops"), "alert_id is 300 bytes long"),
        (monitor_pb2.AcknowledgeAlertRequest(alert_id="a"), "actor is required"),
    ],
)
async def test_bad_acknowledgements_are_invalid_argument(
    alerts: FakeAlerts, request_: monitor_pb2.AcknowledgeAlertRequest, why: str
) -> None:
    with pytest.raises(InvalidArgument, match=why):
        await api(alerts).AcknowledgeAlert(request_, None)  # type: ignore[arg-type]


async def test_service_levels_need_a_model_and_a_window_within_the_longest_kept() -> None:
    service = api(FakeAlerts())
    with pytest.raises(InvalidArgument, match="model_name is required"):
        await service.GetServiceLevels(monitor_pb2.GetServiceLevelsRequest(), None)  # type: ignore[arg-type]
    too_long = monitor_pb2.GetServiceLevelsRequest(model_name="m")
    too_long.window.FromSeconds(7200)
    with pytest.raises(InvalidArgument, match="at most 3600 s"):
        await service.GetServiceLevels(too_long, None)  # type: ignore[arg-type]
    with pytest.raises(NotFound, match="'m' is unknown"):
        await service.GetServiceLevels(monitor_pb2.GetServiceLevelsRequest(model_name="m"), None)  # type: ignore[arg-type]


async def test_service_levels_of_a_model_seen_over_the_default_window() -> None:
    tracker = ServiceLevelTracker()
    seen = inference_events.Prediction(model_name="m", route=inference_pb2.ROUTE_FALLBACK)
    seen.latency.FromMilliseconds(40)
    tracker.observe(seen, "")
    service = MonitorServiceApi(
        cast(DriftMonitor, None), cast(ElasticStore, FakeAlerts()), cast(AlertBook, None), tracker, ModelCatalog()
    )
    reply = await service.GetServiceLevels(monitor_pb2.GetServiceLevelsRequest(model_name="m"), None)  # type: ignore[arg-type]
    levels = reply.levels
    assert (levels.model_name, levels.requests, levels.fallback_rate) == ("m", 1, 1.0)
    assert levels.latency_p99_ms == pytest.approx(40.0, rel=0.05)
    assert levels.window_end.ToSeconds() - levels.window_start.ToSeconds() == 300
