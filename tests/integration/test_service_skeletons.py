"""Each of the five services starts, joins Kafka, serves gRPC health and the admin app, and drains on SIGTERM.

Every run uses its own topics, consumer groups, data directory and Elasticsearch index prefix, so it
never touches the demo's data or another run's."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import httpx
import orjson
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

pytestmark = pytest.mark.integration

SERVICES = {
    "ingest": "aimesh.api.ingest.v1.IngestService",
    "feature": "aimesh.api.feature.v1.FeatureService",
    "training": "aimesh.api.training.v1.TrainingService",
    "inference": "aimesh.api.inference.v1.InferenceService",
    "monitor": "aimesh.api.monitor.v1.MonitorService",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(admin: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"service exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{admin}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    pytest.fail(f"service not ready within {timeout}s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def feature_health() -> Iterator[str]:
    """A stand-in grpc.health.v1 endpoint that reports the FeatureService SERVING (inference's readiness)."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    servicer.set(SERVICES["feature"], health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(0)


def isolated_topics(name: str, unique: str) -> dict[str, str]:
    """Per-service settings that point every topic (and index) at names unique to this run."""
    t = f"test.lifecycle.{unique}"
    per_service = {
        "ingest": {
            "SOURCE_TOPICS": orjson.dumps({"card_transactions": f"{t}.tx", "chargebacks": f"{t}.cb"}).decode(),
            "RECORDS_TOPIC": f"{t}.records",
            "DLQ_TOPIC": f"{t}.dlq",
        },
        "feature": {"TOPICS": orjson.dumps([f"{t}.records"]).decode()},
        "training": {
            "TOPICS": orjson.dumps([f"{t}.alerts"]).decode(),
            "RUNS_TOPIC": f"{t}.runs",
            "REGISTRY_TOPIC": f"{t}.registry",
        },
        "inference": {
            "TOPICS": orjson.dumps([f"{t}.registry"]).decode(),
            "PREDICTIONS_TOPIC": f"{t}.predictions",
        },
        "monitor": {
            "TOPICS": orjson.dumps([f"{t}.predictions", f"{t}.logs"]).decode(),
            "REGISTRY_TOPIC": f"{t}.registry",
            "ALERTS_TOPIC": f"{t}.alerts",
            "INDEX_PREFIX": f"test-lifecycle-{unique}",
        },
    }
    return {f"{name.upper()}_{key}": value for key, value in per_service[name].items()}


@pytest.mark.parametrize("name", list(SERVICES))
def test_service_starts_serves_and_drains(
    name: str, endpoints, tmp_path: Path, unique: str, feature_health: str
) -> None:  # type: ignore[no-untyped-def]
    grpc_port, admin_port = free_port(), free_port()
    prefix = name.upper()
    env = {
        **os.environ,
        **isolated_topics(name, unique),
        f"{prefix}_SHIP_LOGS": "false",
        "INFERENCE_FEATURE_ADDRESS": feature_health,
        f"{prefix}_GRPC_PORT": str(grpc_port),
        f"{prefix}_ADMIN_PORT": str(admin_port),
        f"{prefix}_KAFKA_BOOTSTRAP": endpoints.kafka_bootstrap,
        f"{prefix}_CONSUMER_GROUP": f"skeleton-{name}-{unique}",
        f"{prefix}_DATA_DIR": str(tmp_path),
        f"{prefix}_SHUTDOWN_GRACE_SECONDS": "3",
    }
    log = tmp_path / f"{name}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", f"aimesh.{name}"], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_ready(admin_port, proc, log)
        healthz = httpx.get(f"http://127.0.0.1:{admin_port}/healthz").json()
        assert healthz == {"status": "ok", "service": name, "version": "0.1.0"}
        assert "aimesh_grpc_requests_total" in httpx.get(f"http://127.0.0.1:{admin_port}/metrics").text

        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for service in ("", SERVICES[name]):
                status = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status
                assert status == health_pb2.HealthCheckResponse.SERVING

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert lines, "the service must log ECS JSON"
    assert all(doc["service"]["name"] == name for doc in lines)
    messages = [doc["message"] for doc in lines]
    assert "service started" in messages and "service stopped" in messages
