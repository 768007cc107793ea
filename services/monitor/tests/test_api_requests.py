"""MonitorService request checks before Elasticsearch is asked: bounded names, page tokens and windows.

A fake alert store records the queries; what it never receives is what the handler refused (the fault
suite's fuzz saw a 1 MiB ``model_name`` answered UNAVAILABLE: Elasticsearch refused the query).
"""

from __future__ import annotations

from typing import Any, cast

import pytest

from aimesh.api.common.v1 import common_pb2
from aimesh.api.monitor.v1 import monitor_pb2
from aimesh.core.errors import InvalidArgument
from aimesh.monitor.app import MAX_RESULT_WINDOW, MonitorServiceApi
from aimesh.monitor.drift_monitor import DriftMonitor
from aimesh.monitor.elastic import AlertQuery, ElasticStore


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
    return MonitorServiceApi(cast(DriftMonitor, None), cast(ElasticStore, alerts))


async def test_a_valid_listing_reaches_the_store(alerts: FakeAlerts) -> None:
    request = monitor_pb2.ListAlertsRequest(model_name="m" * 256, page=common_pb2.PageRequest(page_token="100"))
    await api(alerts).ListAlerts(request, None)  # type: ignore[arg-type]
    assert [(q.model_name, q.offset, q.size) for q in alerts.queries] == [("m" * 256, 100, 100)]


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
