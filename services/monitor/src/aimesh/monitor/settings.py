"""monitor settings: environment variables prefixed ``MONITOR_`` (e.g. ``MONITOR_GRPC_PORT``)."""

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import SettingsConfigDict

from aimesh.core.settings import ServiceSettings
from aimesh.core.topics import DLQ_TOPICS, INFERENCE_PREDICTIONS, MONITOR_ALERTS, REGISTRY_MODELS, SERVICE_LOGS
from aimesh.monitor.documents import KINDS
from aimesh.monitor.lifecycle import Lifecycle


class ThresholdOverride(BaseModel):
    """One model's drift thresholds; a field left out keeps the default."""

    model_config = ConfigDict(extra="forbid")

    psi: float | None = Field(default=None, ge=0)
    js_distance: float | None = Field(default=None, ge=0)
    wasserstein_stddevs: float | None = Field(default=None, ge=0)


class MonitorSettings(ServiceSettings):
    """Everything the monitor service reads from its environment; see ``ServiceSettings`` for the shared fields."""

    model_config = SettingsConfigDict(env_prefix="MONITOR_", env_file=".env", extra="ignore")

    service_name: str = "monitor"
    grpc_port: int = 50055
    admin_port: int = 8085
    topics: list[str] = Field(
        default_factory=lambda: [INFERENCE_PREDICTIONS, SERVICE_LOGS],
        description="Kafka topics of Prediction and LogRecord events indexed into Elasticsearch.",
    )
    dlq_topics: list[str] = Field(
        default_factory=lambda: list(DLQ_TOPICS),
        description="Dead-letter topics indexed into <prefix>-deadletters (every service's aimesh.<service>.dlq.v1), "
        "by their own consumer group <group>-deadletters.",
    )
    max_document_bytes: int = Field(
        default=512 * 1024,
        gt=0,
        description="An event whose JSON document is larger is dead-lettered DOCUMENT_TOO_LARGE, never sent.",
    )
    max_map_entries: int = Field(
        default=100,
        gt=0,
        description="Keys kept per map of a document (features, entity, labels; the first in key order); the "
        "rest are left out and the document flagged (truncated, truncated_count), so it fits the field limit.",
    )
    registry_topic: str = Field(default=REGISTRY_MODELS, description="Model events carrying the drift references.")
    alerts_topic: str = Field(default=MONITOR_ALERTS, description="Where raised alerts are published.")
    elasticsearch_url: str = Field(default="http://127.0.0.1:9200", description="Elasticsearch URL.")
    index_prefix: str = Field(
        default="aimesh",
        description="Indices are <prefix>-predictions, -logs, -drift, -alerts, -deadletters (all but "
        "alerts are write aliases over rolled-over <name>-000001 ...).",
    )
    retention_days_predictions: int = Field(default=7, gt=0, description="Days predictions are kept.")
    retention_days_logs: int = Field(default=7, gt=0, description="Days service logs are kept.")
    retention_days_drift: int = Field(default=90, gt=0, description="Days drift reports are kept.")
    retention_days_alerts: int = Field(default=90, gt=0, description="Days alerts are kept (by the time raised).")
    retention_days_deadletters: int = Field(default=30, gt=0, description="Days dead-letter documents are kept.")
    rollover_max_age: str = Field(
        default="1d", description="A write index older than this rolls over (Elasticsearch time unit)."
    )
    rollover_max_primary_shard_size: str = Field(
        default="10gb", description="A write index whose primary shard is larger rolls over (byte size unit)."
    )
    lifecycle_interval_seconds: float = Field(
        default=300.0,
        gt=0,
        description="How often the monitor applies rollover and retention itself (rolled indices only when the "
        "cluster has no ILM; alerts always).",
    )
    default_alias: str = Field(default="champion", description="Alias whose version drift is reported for by default.")
    drift_interval_seconds: float = Field(
        default=10.0, gt=0, description="How often windows are checked for closing by time (and failed ones retried)."
    )
    drift_window_seconds: float = Field(
        default=3600.0,
        gt=0,
        description="A drift window closes after this long (if it holds drift_min_samples); also GetDriftReport's "
        "default window.",
    )
    drift_window_count: int = Field(default=10_000, gt=0, description="A drift window closes at this many predictions.")
    drift_min_samples: int = Field(
        default=1000,
        gt=0,
        description="A window closed by time needs this many predictions (until then it stays open): on n values in b "
        "bins, the PSI of the reference's own noise is about (b - 1) / n.",
    )
    drift_max_versions: int = Field(
        default=64, gt=0, description="Model versions with an open drift window at most (the least recently fed go)."
    )
    psi_threshold: float = Field(
        default=0.2,
        ge=0,
        description="Default PSI at or above which an input (or the score) is drifted; 0: PSI not used.",
    )
    js_threshold: float = Field(
        default=0.1, ge=0, description="Default Jensen-Shannon distance at or above which it is drifted; 0: not used."
    )
    wasserstein_threshold_stddevs: float = Field(
        default=0.0,
        ge=0,
        description="Default Wasserstein distance, in reference standard deviations, at or above which a numeric input "
        "(or the score) is drifted; 0: not used.",
    )
    drift_thresholds: dict[str, ThresholdOverride] = Field(
        default_factory=dict,
        description='Per-model thresholds over the defaults, e.g. {"model": {"psi": 0.3, "js_distance": 0}}.',
    )
    psi_critical: float = Field(default=0.5, description="PSI at or above which a drift alert is CRITICAL.")
    psi_epsilon: float = Field(default=1e-4, description="Floor of a bin's share, so empty bins keep PSI finite.")
    alert_update_interval_seconds: float = Field(
        default=60.0,
        ge=0,
        description="An open alert whose value, message or trace id alone changed is re-published at most this "
        "often (a change of severity, threshold, labels or state at once).",
    )
    slo_interval_seconds: float = Field(default=10.0, gt=0, description="How often the service-level rules run.")
    slo_window_seconds: float = Field(
        default=300.0, gt=0, description="Window of the threshold rules (latency p99, error, fallback, freshness)."
    )
    slo_slot_seconds: float = Field(
        default=5.0, gt=0, description="Width of the service-level slots: the windows' resolution."
    )
    slo_max_models: int = Field(default=1000, gt=0, description="Models whose service levels are tracked at most.")
    slo_min_requests: int = Field(
        default=20, gt=0, description="A window with fewer answers raises and resolves nothing."
    )
    slo_latency_p99_ms: float = Field(
        default=250.0,
        ge=0,
        description="p99 latency (ms) above which latency_p99 fires (CRITICAL from twice it; 0: off).",
    )
    slo_error_rate: float = Field(
        default=0.0,
        ge=0,
        description="Error rate above which error_rate fires (0: off). Predictions show only answered calls, so "
        "the error rate is the share answered by a fallback (the model call failed): equal to the fallback rate.",
    )
    slo_fallback_rate: float = Field(
        default=0.1, ge=0, description="Fallback share above which fallback_rate fires (0: off)."
    )
    slo_freshness_p50_seconds: float = Field(
        default=0.0, ge=0, description="Median feature freshness (s) above which feature_freshness fires (0: off)."
    )
    slo_target: float = Field(
        default=0.99,
        gt=0,
        lt=1,
        description="SLO of the burn-rate rule: share of answers that are no fallback and no slower than "
        "MONITOR_SLO_LATENCY_MS.",
    )
    slo_latency_ms: float = Field(default=250.0, ge=0, description="Latency (ms) an answer must meet to count as good.")
    slo_burn_rate: float = Field(
        default=14.4, ge=0, description="Burn rate at which slo_burn fires over both burn windows (0: off)."
    )
    slo_burn_long_window_seconds: float = Field(default=3600.0, gt=0, description="Long window of the burn rate.")
    slo_burn_short_window_seconds: float = Field(default=300.0, gt=0, description="Short window of the burn rate.")

    def lifecycle(self) -> Lifecycle:
        """The rollover conditions and the retention per index kind these settings name."""
        return Lifecycle(
            retention_days={kind: getattr(self, f"retention_days_{kind}") for kind in KINDS},
            rollover_max_age=self.rollover_max_age,
            rollover_max_primary_shard_size=self.rollover_max_primary_shard_size,
        )
