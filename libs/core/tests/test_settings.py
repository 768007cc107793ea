"""Settings: per-service env prefix, cluster-wide defaults, derived values."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic_settings import SettingsConfigDict

from aimesh.core.settings import ServiceSettings


class DemoSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="DEMO_", extra="ignore")
    service_name: str = "demo"


def test_prefixed_variables_override_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_GRPC_PORT", "6000")
    monkeypatch.setenv("GRPC_PORT", "7000")
    assert DemoSettings().grpc_port == 6000


def test_cluster_wide_kafka_default_and_prefixed_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIMESH_KAFKA_BOOTSTRAP", "broker:9092")
    assert DemoSettings().kafka_bootstrap == "broker:9092"
    monkeypatch.setenv("DEMO_KAFKA_BOOTSTRAP", "other:9092")
    assert DemoSettings().kafka_bootstrap == "other:9092"


def test_database_defaults_to_a_sqlite_file_under_data_dir(tmp_path: Path) -> None:
    s = DemoSettings(data_dir=tmp_path)
    assert s.sqlalchemy_url() == f"sqlite+aiosqlite:///{tmp_path.resolve()}/demo.db"
    assert DemoSettings(database_url="postgresql+asyncpg://u@h/db").sqlalchemy_url() == "postgresql+asyncpg://u@h/db"
    assert s.group_id == "aimesh-demo"
