"""`aimesh status` for a service: what readiness names as missing, the consumer lag, stuck partitions and
the spool depth, read from the real admin app (``aimesh.core.admin``) through httpx (no server, no network)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from aimesh.core import metrics
from aimesh.core.admin import Probes, create_admin_app
from aimesh.devstack.paths import Paths
from aimesh.devstack.service_metrics import STUCK_AFTER_SECONDS, consumer_report
from aimesh.devstack.services import Service


async def _kafka_down() -> None:
    raise ConnectionError("broker 127.0.0.1:9092 refused")


def serve_admin(monkeypatch: pytest.MonkeyPatch, probes: Probes) -> None:
    client = TestClient(create_admin_app("status-t", "0.1.0", probes))

    def get(url: str, **_: Any) -> httpx.Response:
        response: httpx.Response = client.get(httpx.URL(url).path)
        return response

    monkeypatch.setattr(httpx, "get", get)


def service(paths: Paths) -> Service:
    return Service(paths, "ingest", grpc_port=1, admin_port=2, kafka_bootstrap="127.0.0.1:9092")


def test_status_shows_lag_stuck_partitions_and_the_spool(paths: Paths, monkeypatch: pytest.MonkeyPatch) -> None:
    labels = ("status-t", "status.up", "3")
    metrics.CONSUMER_LAG.labels(*labels).set(42)
    metrics.CONSUMER_RETRY_ATTEMPTS.labels(*labels).set(4)
    metrics.CONSUMER_STALLED_SECONDS.labels(*labels).set(STUCK_AFTER_SECONDS + 5)
    serve_admin(monkeypatch, Probes())
    try:
        health = service(paths).health()
    finally:
        metrics.CONSUMER_STALLED_SECONDS.labels(*labels).set(0)
    assert not health.healthy, "a stuck partition makes the service unhealthy"
    assert "status.up/3 stuck 35s, lag 42 (4 failed attempts)" in health.detail
    assert "ready" in health.detail


def test_status_names_the_missing_dependency(paths: Paths, monkeypatch: pytest.MonkeyPatch) -> None:
    serve_admin(monkeypatch, Probes(readiness={"kafka": _kafka_down}))
    health = service(paths).health()
    assert not health.healthy
    assert "not ready: kafka (ConnectionError: broker 127.0.0.1:9092 refused)" in health.detail
    assert health.detail.startswith("healthz 200 ok"), "a dependency down is not a liveness failure"


def test_consumer_report_sums_lag_and_reads_the_spool_gauge() -> None:
    text = "\n".join(
        [
            "# TYPE aimesh_consumer_lag gauge",
            'aimesh_consumer_lag{service="s",topic="a",partition="0"} 3.0',
            'aimesh_consumer_lag{service="s",topic="a",partition="1"} 4.0',
            "# TYPE aimesh_consumer_partition_stalled_seconds gauge",
            'aimesh_consumer_partition_stalled_seconds{service="s",topic="a",partition="0"} 1.0',
            'aimesh_consumer_partition_stalled_seconds{service="s",topic="a",partition="1"} 90.0',
            "# TYPE aimesh_consumer_waiting_on_dependency gauge",
            'aimesh_consumer_waiting_on_dependency{service="s",topic="a",partition="1"} 1.0',
            "# TYPE aimesh_spool_records gauge",
            'aimesh_spool_records{service="s",spool="predictions"} 12.0',
            "",
        ]
    )
    report = consumer_report(text)
    assert report.lag == 7 and report.spool_records == 12
    assert [s.describe() for s in report.stuck] == ["a/1 stuck 90s, lag 4 (waiting on a dependency)"]
    assert consumer_report("").lag is None
