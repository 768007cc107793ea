"""Typed settings. Each service subclasses ``ServiceSettings`` with its own env prefix (``INGEST_`` ...).

Settings are built once in ``main()`` and passed down; nothing reads the environment at import time.
Values come from (highest first): constructor arguments, ``<PREFIX>_<FIELD>`` environment variables,
a ``.env`` file in the working directory, then the defaults below. The cluster-wide variables
``AIMESH_KAFKA_BOOTSTRAP``, ``AIMESH_OTLP_ENDPOINT``, ``AIMESH_TRACE_SAMPLE_RATIO`` and ``AIMESH_AUTH_*``
act as defaults for every service.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from aimesh.core.spool import WhenFull
from aimesh.core.topics import SERVICE_LOGS


def _env_default(name: str, fallback: str | None) -> str | None:
    return os.environ.get(name, fallback)


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value) if value else None


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


class ServiceSettings(BaseSettings):
    """Settings shared by every service. Subclasses set ``model_config`` with their ``env_prefix``."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    service_name: str = Field(default="aimesh", description="Name in logs, metrics, events and the default group.")
    kafka_bootstrap: str = Field(
        default_factory=lambda: _env_default("AIMESH_KAFKA_BOOTSTRAP", "127.0.0.1:9092") or "127.0.0.1:9092",
        description="Kafka bootstrap servers, comma separated (default $AIMESH_KAFKA_BOOTSTRAP or 127.0.0.1:9092).",
    )
    kafka_connect_timeout_seconds: float = Field(default=60.0, description="How long start-up waits for Kafka.")
    consumer_group: str | None = Field(default=None, description="Kafka consumer group; default aimesh-<service>.")
    grpc_host: str = Field(default="127.0.0.1", description="gRPC bind address (0.0.0.0 in containers).")
    grpc_port: int = Field(default=50051, description="gRPC port.")
    grpc_max_message_bytes: int = Field(default=8 * 1024 * 1024, description="gRPC message size limit.")
    tls_cert_file: Path | None = Field(default=None, description="Server certificate (PEM); enables TLS.")
    tls_key_file: Path | None = Field(default=None, description="Private key (PEM) of the server certificate.")
    tls_client_ca_file: Path | None = Field(default=None, description="CA for client certificates; enables mTLS.")
    auth_enabled: bool = Field(
        default_factory=lambda: _env_flag("AIMESH_AUTH_ENABLED"),
        description="Authenticate and authorise every gRPC call except health and reflection "
        "(default $AIMESH_AUTH_ENABLED, else false: for a mesh that does it in front).",
    )
    auth_jwks_file: Path | None = Field(
        default_factory=lambda: _env_path("AIMESH_AUTH_JWKS_FILE"),
        description="JWKS file of the keys bearer tokens are verified with (default $AIMESH_AUTH_JWKS_FILE); "
        "without it only mTLS identities authenticate.",
    )
    auth_policy_file: Path | None = Field(
        default_factory=lambda: _env_path("AIMESH_AUTH_POLICY_FILE"),
        description="YAML policy: tenants' permissions and identity -> tenant map (default $AIMESH_AUTH_POLICY_FILE); "
        "required when auth is enabled.",
    )
    auth_audience: str = Field(
        default_factory=lambda: _env_default("AIMESH_AUTH_AUDIENCE", "aimesh") or "aimesh",
        description="Audience a bearer token's aud must contain (default $AIMESH_AUTH_AUDIENCE or aimesh).",
    )
    auth_issuer: str | None = Field(
        default_factory=lambda: _env_default("AIMESH_AUTH_ISSUER", None),
        description="Required iss of bearer tokens (default $AIMESH_AUTH_ISSUER); unset: any issuer.",
    )
    auth_tenant_claim: str = Field(default="tenant", description="Token claim naming the caller's tenant.")
    auth_leeway_seconds: float = Field(default=30.0, description="Clock skew allowed on exp, nbf and iat.")
    auth_token_file: Path | None = Field(
        default_factory=lambda: _env_path("AIMESH_AUTH_TOKEN_FILE"),
        description="Bearer token this service sends on its calls to other services, re-read when it changes "
        "(default $AIMESH_AUTH_TOKEN_FILE); unset: none sent.",
    )
    admin_host: str = Field(default="127.0.0.1", description="Admin HTTP bind address.")
    admin_port: int = Field(default=8081, description="Admin HTTP port (/healthz, /readyz, /metrics).")
    log_level: str = Field(default="INFO", description="Lowest level logged.")
    log_json: bool = Field(default=True, description="ECS JSON logs (false: plain text).")
    otlp_endpoint: str | None = Field(
        default_factory=lambda: _env_default("AIMESH_OTLP_ENDPOINT", None),
        description="OTLP/gRPC collector endpoint (default $AIMESH_OTLP_ENDPOINT); no export when unset.",
    )
    trace_sample_ratio: float = Field(
        default_factory=lambda: float(_env_default("AIMESH_TRACE_SAMPLE_RATIO", "1.0") or "1.0"),
        ge=0.0,
        le=1.0,
        description="Share of new traces sampled (default $AIMESH_TRACE_SAMPLE_RATIO or 1.0); a continued trace "
        "follows its caller's decision.",
    )
    data_dir: Path = Field(default=Path(".aimesh/data"), description="Local data: SQLite file, lake.")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy async URL; default a SQLite file under data_dir."
    )
    dead_letter_payload_root: Path | None = Field(
        default=None,
        description="Where dead letters too large for one Kafka record keep their original payload "
        "(content-addressed files, sha256/<hh>/<hex>); default <data_dir>/dead-letters.",
    )
    dead_letter_max_record_bytes: int = Field(
        default=1_048_576,
        gt=32 * 1024,
        description="The producer's record limit (max_request_size): a dead letter that would exceed it less "
        "16 KiB stores its payload under dead_letter_payload_root and carries a reference.",
    )
    dead_letter_preview_bytes: int = Field(
        default=1024, ge=0, le=16 * 1024, description="Bytes of a stored-aside payload kept inline as its preview."
    )
    shutdown_grace_seconds: float = Field(default=10.0, description="Drain time after SIGTERM.")
    liveness_max_stall_seconds: float = Field(
        default=60.0,
        description=(
            "/healthz fails when a consumer is wedged this long while its dependencies are reachable: a poll or "
            "handler call that does not return, or records waiting with no progress (never while backing off)."
        ),
    )
    consumer_max_attempts: int = Field(
        default=5,
        ge=1,
        description=(
            "Attempts of a record whose handler fails with an unclassified error before it is dead-lettered as "
            "RETRIES_EXHAUSTED (transient errors are retried without limit, permanent ones dead-lettered at once)."
        ),
    )
    consumer_retry_backoff_seconds: float = Field(
        default=0.5, gt=0, description="First backoff after a failed record; doubles per consecutive failure."
    )
    consumer_max_retry_backoff_seconds: float = Field(
        default=5.0,
        gt=0,
        description="Longest backoff between two attempts of a failing record; also how late, at most, a consumer "
        "notices that a dependency it was waiting for (Elasticsearch, the database) is back.",
    )
    readiness_interval_seconds: float = Field(
        default=5.0, description="How often readiness is re-checked for gRPC health."
    )
    ship_logs: bool = Field(default=True, description="Publish log records to Kafka for monitor.")
    ship_logs_topic: str = Field(default=SERVICE_LOGS, description="Topic of the shipped log records.")
    ship_logs_level: str = Field(default="INFO", description="Lowest level of the log records shipped to Kafka.")
    ship_logs_spool_max_bytes: int = Field(
        default=64 * 1024 * 1024,
        description="Bound of the shipped logs' spool (record bytes): beyond it log records are dropped and counted.",
    )
    kafka_delivery_timeout_seconds: float = Field(
        default=120.0,
        description="How long a produced record may wait for its acknowledgement, producer replacements included.",
    )
    spool_dir: Path | None = Field(
        default=None,
        description="Spool of records kept while Kafka is away (one SQLite file per stream, one process per "
        "directory; put it on a persistent volume); default <data_dir>/spool/<service_name> (replicas sharing a "
        "data_dir need their own).",
    )
    spool_max_bytes: int = Field(
        default=512 * 1024 * 1024,
        description="Bound of each spool file (record bytes) for events that must not be lost.",
    )
    spool_max_records: int = Field(default=1_000_000, description="Bound of each spool file (records).")
    spool_when_full: WhenFull = Field(
        default=WhenFull.DROP_NEWEST,
        description="What a full spool drops: drop_newest rejects the new record (an accepted one is never "
        "dropped), drop_oldest evicts the oldest; both counted in aimesh_spool_dropped_total.",
    )
    spool_after_seconds: float = Field(
        default=5.0, description="A send Kafka has not acknowledged within this long is spooled instead."
    )

    def spool_path(self) -> Path:
        """The spool directory: ``spool_dir``, else ``<data_dir>/spool/<service_name>``.

        The service name is in the default because the services of one host share ``data_dir`` (it holds the
        lake) and a spool file belongs to one process.
        """
        return self.spool_dir if self.spool_dir is not None else self.data_dir / "spool" / self.service_name

    @property
    def group_id(self) -> str:
        return self.consumer_group or f"aimesh-{self.service_name}"

    def sqlalchemy_url(self) -> str:
        """The database URL: ``database_url`` if set, else ``sqlite+aiosqlite:///<data_dir>/<service>.db``."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / f'{self.service_name}.db').resolve()}"
