"""Which readiness checks inference registers: models and the feature service; Kafka only as a degraded
check (reported, known to liveness, never a 503).

``serve_inference`` runs with a stand-in producer and a runtime that records its probes instead of
serving, so no server is needed: the check names are what ``/readyz`` reports under ``failed``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from aimesh.core import app as core_app
from aimesh.core.errors import Unavailable
from aimesh.core.runner import ServiceRuntime
from aimesh.inference.app import serve_inference
from aimesh.inference.settings import InferenceSettings


class StandInProducer:
    async def stop(self) -> None:
        return None

    async def check_connected(self) -> None:
        raise Unavailable("broker down")


async def _probes_of(monkeypatch: pytest.MonkeyPatch, serve: Any) -> list[str]:
    seen: list[str] = []

    async def connect(settings: object) -> StandInProducer:
        return StandInProducer()

    async def record(runtime: ServiceRuntime) -> None:
        seen.extend(runtime.probes.readiness)

    monkeypatch.setattr(core_app, "connect_producer", connect)
    monkeypatch.setattr(ServiceRuntime, "run", record)
    await serve()
    return seen


async def test_inference_is_ready_without_kafka(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    settings = InferenceSettings(
        ship_logs=False, kafka_bootstrap="127.0.0.1:1", data_dir=tmp_path, grpc_port=0, admin_port=0
    )
    checks = await _probes_of(monkeypatch, lambda: serve_inference(settings))
    assert sorted(checks) == ["feature-service", "models"]


async def test_kafka_is_a_degraded_check_of_inference(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    settings = InferenceSettings(ship_logs=False, data_dir=tmp_path)

    async def wire(runtime: ServiceRuntime, producer: object) -> None:
        return None

    degraded: list[str] = []

    async def record(runtime: ServiceRuntime) -> None:
        degraded.extend(runtime.probes.degraded)
        assert "kafka" not in runtime.probes.readiness

    monkeypatch.setattr(core_app, "connect_producer", lambda settings: _stand_in())
    monkeypatch.setattr(ServiceRuntime, "run", record)
    await core_app.serve(settings, "test", wire, kafka_readiness=False)
    assert degraded == ["kafka"]


async def _stand_in() -> StandInProducer:
    return StandInProducer()


async def test_other_services_keep_the_kafka_check_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = InferenceSettings(ship_logs=False)

    async def wire(runtime: ServiceRuntime, producer: object) -> None:
        return None

    checks = await _probes_of(monkeypatch, lambda: core_app.serve(settings, "test", wire))
    assert checks == ["kafka"]
