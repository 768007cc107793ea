"""ingest settings: environment variables prefixed ``INGEST_`` (e.g. ``INGEST_GRPC_PORT``)."""

import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from aimesh.core.settings import ServiceSettings
from aimesh.core.topics import INGEST_DLQ, INGEST_RECORDS

DEV_PII_SECRET = "aimesh-dev-pii-secret-change-me"  # noqa: S105  # the documented development default


class IngestSettings(ServiceSettings):
    """Everything the ingest service reads from its environment; see ``ServiceSettings`` for the shared fields."""

    model_config = SettingsConfigDict(env_prefix="INGEST_", env_file=".env", extra="ignore")

    service_name: str = "ingest"
    grpc_port: int = 50051
    admin_port: int = 8081
    sources_file: Path | None = Field(
        default=None,
        description="Source definitions (YAML) applied at start; unset: none (ingest ships no definitions: register "
        "a pack's with `aimesh ingest apply FILE` or RegisterSource, consumed without a restart).",
    )
    source_topics: dict[str, str] = Field(
        default_factory=dict,
        description="Upstream topic per source name, overriding the definitions, also of sources registered later "
        '(JSON, e.g. {"orders": "shop.orders"}).',
    )
    records_topic: str = Field(default=INGEST_RECORDS, description="Where canonical records are published.")
    dlq_topic: str = Field(default=INGEST_DLQ, description="Where rejected records are dead-lettered.")
    lake_dir: Path | None = Field(default=None, description="Root of the Parquet lake; default <data_dir>/lake.")
    pii_secret: SecretStr = Field(
        default=SecretStr(DEV_PII_SECRET),
        description="HMAC-SHA256 key that tokenises PII fields (a source's pii_token_fields, e.g. email -> "
        "email_token). Set it in production.",
    )
    dedupe_capacity: int = Field(
        default=200_000, ge=0, description="Event ids cached in front of the seen-events table (upstream duplicates)."
    )
    max_payload_bytes: int = Field(default=1024 * 1024, gt=0, description="Larger upstream records are rejected.")
    max_batch: int = Field(default=500, gt=0, description="Records per partition batch (one lake file each).")
    fetch_max_bytes: int = Field(
        default=16 * 1024 * 1024, gt=0, description="Most bytes the consumer prefetches per fetch, all partitions."
    )
    max_partition_fetch_bytes: int = Field(
        default=1024 * 1024, gt=0, description="Most bytes the consumer prefetches per partition and fetch."
    )
    transactional_id: str | None = Field(
        default=None,
        description="Kafka transactional id of this replica: stable across its restarts, unique per replica; "
        "default <consumer group>-<hostname>.",
    )
    transaction_timeout_seconds: float = Field(
        default=30.0, gt=0, description="The broker aborts a batch transaction left open longer (a vanished replica)."
    )
    push_max_records: int = Field(
        default=1000,
        gt=0,
        description="Most records one IngestService.Publish call may carry (INVALID_ARGUMENT above).",
    )
    push_max_record_bytes: int = Field(
        default=256 * 1024,
        gt=0,
        description="Largest record payload Publish takes (RESOURCE_EXHAUSTED above).",
    )
    push_ack_timeout_seconds: float = Field(
        default=10.0, gt=0, description="How long Publish waits for Kafka's acknowledgement before UNAVAILABLE."
    )
    event_time_max_future_skew_seconds: float = Field(
        default=300.0,
        ge=0,
        description="Event times further ahead of ingest's clock are rejected as INVALID_EVENT_TIME (a source's "
        "max_future_skew_seconds overrides it).",
    )
    event_time_max_age_days: float = Field(
        default=3650.0,
        gt=0,
        description="Event times older than this many days before now are rejected as INVALID_EVENT_TIME, unless "
        "INGEST_EVENT_TIME_OLDEST or the source's oldest_event_time is set.",
    )
    event_time_oldest: datetime | None = Field(
        default=None,
        description="Absolute oldest accepted event time (RFC 3339, e.g. 2015-01-01T00:00:00Z), instead of "
        "INGEST_EVENT_TIME_MAX_AGE_DAYS (a source's oldest_event_time overrides it).",
    )
    registry_refresh_seconds: float = Field(
        default=5.0, gt=0, description="How often source versions stored by other replicas are picked up."
    )

    @property
    def transactional_id_or_default(self) -> str:
        return self.transactional_id or f"{self.group_id}-{socket.gethostname()}"

    @property
    def event_time_oldest_us(self) -> int | None:
        """``event_time_oldest`` as epoch microseconds (a time without offset is read as UTC)."""
        if self.event_time_oldest is None:
            return None
        moment = self.event_time_oldest
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)

    @property
    def lake_root(self) -> Path:
        return self.lake_dir or self.data_dir / "lake"
