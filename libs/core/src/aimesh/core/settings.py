"""Typed settings. Each service subclasses ``ServiceSettings`` with its own env prefix (``INGEST_`` ...).

Settings are built once in ``main()`` and passed down; nothing reads the environment at import time.
Values come from (highest first): constructor arguments, ``<PREFIX>_<FIELD>`` environment variables,
a ``.env`` file in the working directory, then the defaults below. The cluster-wide variables
``AIMESH_KAFKA_BOOTSTRAP`` and ``AIMESH_OTLP_ENDPOINT`` act as defaults for every service.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from aimesh.core.topics import SERVICE_LOGS


def _env_default(name: str, fallback: str | None) -> str | None:
    return os.environ.get(name, fallback)


class ServiceSettings(BaseSettings):
    """Settings shared by every service. Subclasses set ``model_config`` with their ``env_prefix``."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    service_name: str = "aimesh"
    kafka_bootstrap: str = Field(
        default_factory=lambda: _env_default("AIMESH_KAFKA_BOOTSTRAP", "127.0.0.1:9092") or "127.0.0.1:9092",
        description="Kafka bootstrap servers, comma separated.",
    )
    kafka_connect_timeout_seconds: float = 60.0
    consumer_group: str | None = Field(default=None, description="Kafka consumer group; default aimesh-<service>.")
    grpc_host: str = "127.0.0.1"
    grpc_port: int = 50051
    grpc_max_message_bytes: int = 8 * 1024 * 1024
    tls_cert_file: Path | None = Field(default=None, description="Server certificate (PEM); enables TLS.")
    tls_key_file: Path | None = None
    tls_client_ca_file: Path | None = Field(default=None, description="CA for client certificates; enables mTLS.")
    admin_host: str = "127.0.0.1"
    admin_port: int = 8081
    log_level: str = "INFO"
    log_json: bool = True
    otlp_endpoint: str | None = Field(
        default_factory=lambda: _env_default("AIMESH_OTLP_ENDPOINT", None),
        description="OTLP/gRPC collector endpoint; tracing exports nothing when unset.",
    )
    data_dir: Path = Path(".aimesh/data")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy async URL; default a SQLite file under data_dir."
    )
    shutdown_grace_seconds: float = 10.0
    liveness_max_stall_seconds: float = 60.0
    readiness_interval_seconds: float = 5.0
    ship_logs: bool = Field(default=True, description="Publish log records to aimesh.monitor.logs.v1 for monitor.")
    ship_logs_topic: str = Field(default=SERVICE_LOGS, description="Topic of the shipped log records.")
    ship_logs_level: str = Field(default="INFO", description="Lowest level of the log records shipped to Kafka.")

    @property
    def group_id(self) -> str:
        return self.consumer_group or f"aimesh-{self.service_name}"

    def sqlalchemy_url(self) -> str:
        """The database URL: ``database_url`` if set, else ``sqlite+aiosqlite:///<data_dir>/<service>.db``."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / f'{self.service_name}.db').resolve()}"
