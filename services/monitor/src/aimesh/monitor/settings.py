"""monitor settings: environment variables prefixed ``MONITOR_`` (e.g. ``MONITOR_GRPC_PORT``)."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from aimesh.core.settings import ServiceSettings


class MonitorSettings(ServiceSettings):
    """Everything the monitor service reads from its environment; see ``ServiceSettings`` for the shared fields."""

    model_config = SettingsConfigDict(env_prefix="MONITOR_", env_file=".env", extra="ignore")

    service_name: str = "monitor"
    grpc_port: int = 50055
    admin_port: int = 8085
    topics: list[str] = Field(
        default_factory=lambda: [
            "aimesh.inference.predictions.v1",
            "aimesh.monitor.logs.v1",
            "aimesh.training.runs.v1",
        ],
        description="Kafka prediction, log and run-event topics indexed into Elasticsearch.",
    )
