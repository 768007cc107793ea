"""The admin app: liveness, readiness with reasons, degraded checks, Prometheus metrics."""

from __future__ import annotations

import asyncio

from fastapi.testclient import TestClient

from aimesh.core.admin import Probes, create_admin_app


async def _ok() -> None:
    return None


async def _down() -> None:
    raise ConnectionError("broker 127.0.0.1:9092 refused")


async def _hangs() -> None:
    await asyncio.sleep(10)


def test_healthz_reports_version_and_stalled_loops() -> None:
    wedged: dict[str, str | None] = {"consumer": None}
    probes = Probes(liveness={"consumer": lambda: wedged["consumer"]})
    client = TestClient(create_admin_app("ingest", "0.1.0", probes))
    ok = client.get("/healthz")
    assert ok.status_code == 200
    assert ok.json() == {"status": "ok", "service": "ingest", "version": "0.1.0"}
    wedged["consumer"] = "poll has not returned for 61s"
    stalled = client.get("/healthz")
    assert stalled.status_code == 503 and stalled.json()["stalled"] == ["consumer"]
    assert stalled.json()["reasons"] == {"consumer": "poll has not returned for 61s"}


def test_healthz_names_the_dependencies_the_last_readiness_check_found_down() -> None:
    probes = Probes(readiness={"kafka": _down})
    client = TestClient(create_admin_app("ingest", "0.1.0", probes))
    assert client.get("/readyz").status_code == 503
    alive = client.get("/healthz")
    assert alive.status_code == 200, "a dependency being down never fails liveness by itself"
    assert "refused" in alive.json()["dependencies_down"]["kafka"]


def test_readyz_names_each_failed_dependency() -> None:
    probes = Probes(readiness={"db": _ok, "kafka": _down, "triton": _hangs}, readiness_timeout_s=0.2)
    client = TestClient(create_admin_app("inference", "0.1.0", probes))
    reply = client.get("/readyz")
    assert reply.status_code == 503
    failed = reply.json()["failed"]
    assert set(failed) == {"kafka", "triton"}
    assert "refused" in failed["kafka"] and "0.2" in failed["triton"]
    probes.readiness = {"db": _ok}
    assert client.get("/readyz").status_code == 200


def test_a_degraded_check_is_reported_and_known_to_liveness_but_never_a_503() -> None:
    """Kafka for feature and training: their main job (serving, runs) goes on while the broker is away."""
    probes = Probes(readiness={"database": _ok}, degraded={"kafka": _down})
    client = TestClient(create_admin_app("feature", "0.1.0", probes))
    reply = client.get("/readyz")
    assert reply.status_code == 200 and reply.json()["status"] == "ready"
    assert "refused" in reply.json()["degraded"]["kafka"] and "failed" not in reply.json()
    assert "kafka" in probes.dependencies_down() and probes.reachable_for() is None, "liveness knows it is down"
    assert "refused" in client.get("/healthz").json()["dependencies_down"]["kafka"]
    probes.degraded = {"kafka": _ok}
    assert "degraded" not in client.get("/readyz").json()
    assert probes.dependencies_down() == {} and probes.reachable_for() is not None
    probes.readiness["database"] = _down
    down = client.get("/readyz")
    assert down.status_code == 503 and set(down.json()["failed"]) == {"database"}


def test_metrics_are_prometheus_text() -> None:
    client = TestClient(create_admin_app("monitor", "0.1.0", Probes()))
    reply = client.get("/metrics")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain")
    assert "aimesh_events_consumed_total" in reply.text
