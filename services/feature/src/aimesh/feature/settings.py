"""feature settings: environment variables prefixed ``FEATURE_`` (e.g. ``FEATURE_GRPC_PORT``)."""

from datetime import timedelta
from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from aimesh.core.settings import ServiceSettings
from aimesh.feature.definitions.sync import DEFAULT_REFRESH_SECONDS
from aimesh.feature.online.protocol import DEFAULT_CACHE_ENTRIES


class FeatureSettings(ServiceSettings):
    """Everything the feature service reads from its environment; see ``ServiceSettings`` for the shared fields."""

    model_config = SettingsConfigDict(env_prefix="FEATURE_", env_file=".env", extra="ignore")

    service_name: str = "feature"
    grpc_port: int = 50052
    admin_port: int = 8082
    topics: list[str] = Field(
        default_factory=lambda: ["aimesh.ingest.records.v1"],
        description="Kafka canonical record topics that feed the online store.",
    )
    lake_dir: Path | None = Field(default=None, description="Root of the lake (Parquet); default <data_dir>/lake.")
    consumer_max_batch: int = Field(default=500, description="Records per poll and partition batch (one transaction).")
    definitions_file: Path | None = Field(
        default=None,
        description="Feature definitions (YAML) applied at start; unset: none (the service ships no definitions: apply "
        "a pack's with `aimesh feature apply` or ApplyDefinitions).",
    )
    allowed_lateness_seconds: float = Field(
        default=7 * 86400.0,
        description="Events older than their entity's newest event minus this are skipped online (counted; "
        "still in the lake for offline retrieval).",
    )
    registry_refresh_seconds: float = Field(
        default=DEFAULT_REFRESH_SECONDS,
        gt=0,
        description="How often definitions applied through other replicas (other processes on the same database) "
        "are picked up: about the longest a replica serves older definitions after an apply elsewhere.",
    )

    online_store_url: str = Field(
        default="",
        description="Where the online store lives: empty = the service's SQL database (as the registry); a Redis URL "
        "(`redis://127.0.0.1:6390/0`, the Redis `aimesh up` starts) = Redis. The online state (events, offsets) is "
        "per store: after switching, backfill the views (`aimesh feature backfill`) and consume with a new group.",
    )
    online_cache_entries: int = Field(
        default=DEFAULT_CACHE_ENTRIES,
        ge=0,
        description="Entries (feature view, entity) of the in-process online read cache; 0 turns it off. The cache "
        "sees only this process's writes: set 0 when other processes write the same database (several replicas "
        "on one PostgreSQL database, `aimesh feature backfill` while the service runs).",
    )

    @property
    def lake_root(self) -> Path:
        """Where offline retrieval reads the lake: ``lake_dir``, else ``<data_dir>/lake`` (ingest's default too)."""
        return self.lake_dir if self.lake_dir is not None else self.data_dir / "lake"

    @property
    def allowed_lateness(self) -> timedelta:
        return timedelta(seconds=self.allowed_lateness_seconds)
