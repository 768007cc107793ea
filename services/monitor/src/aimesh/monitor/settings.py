"""monitor settings: environment variables prefixed ``MONITOR_`` (e.g. ``MONITOR_GRPC_PORT``)."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from aimesh.core.settings import ServiceSettings
from aimesh.core.topics import DLQ_TOPICS, INFERENCE_PREDICTIONS, MONITOR_ALERTS, REGISTRY_MODELS, SERVICE_LOGS


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
        default="aimesh", description="Indices are <prefix>-predictions, -logs, -drift, -alerts, -deadletters."
    )
    default_alias: str = Field(default="champion", description="Alias whose version drift is reported for by default.")
    drift_interval_seconds: float = Field(default=10.0, description="How often the score drift is evaluated.")
    drift_window_seconds: float = Field(default=3600.0, description="Window of live scores compared to the reference.")
    drift_min_samples: int = Field(default=50, description="Periodic evaluation skips windows with fewer scores.")
    psi_threshold: float = Field(default=0.2, description="PSI above which a WARNING drift alert is raised.")
    psi_critical: float = Field(default=0.5, description="PSI above which the drift alert is CRITICAL.")
    psi_epsilon: float = Field(default=1e-4, description="Floor of a bin's share, so empty bins keep PSI finite.")
