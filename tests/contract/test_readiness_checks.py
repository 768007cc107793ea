"""Kafka is a readiness check only where the service's main job needs the broker (ingest's Publish
produces to it; monitor indexes what it consumes); feature serves, training runs and inference scores
while it is away, so for them Kafka is a degraded check (``aimesh.core.app.serve(..., kafka_readiness=False)``).
"""

from __future__ import annotations

import importlib
from typing import Any

import pytest


@pytest.mark.parametrize(
    ("service", "settings_class", "kafka_readiness"),
    [
        ("feature", "FeatureSettings", False),
        ("training", "TrainingSettings", False),
        ("inference", "InferenceSettings", False),
        ("ingest", "IngestSettings", True),
        ("monitor", "MonitorSettings", True),
    ],
)
async def test_kafka_is_a_readiness_check_only_where_the_main_job_needs_the_broker(
    monkeypatch: pytest.MonkeyPatch, service: str, settings_class: str, kafka_readiness: bool
) -> None:
    app = importlib.import_module(f"aimesh.{service}.app")
    seen: dict[str, Any] = {}

    async def serve(settings: object, version: str, wire: object, **kwargs: Any) -> None:
        seen.update(kwargs, called=True)

    monkeypatch.setattr(app, "serve", serve)
    settings = getattr(importlib.import_module(f"aimesh.{service}.settings"), settings_class)(ship_logs=False)
    await getattr(app, f"serve_{service}")(settings)
    assert seen.pop("called")
    assert seen.get("kafka_readiness", True) is kafka_readiness
