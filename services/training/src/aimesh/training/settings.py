"""training settings: environment variables prefixed ``TRAINING_`` (e.g. ``TRAINING_GRPC_PORT``)."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from aimesh.core.settings import ServiceSettings


class TrainingSettings(ServiceSettings):
    """Everything the training service reads from its environment; see ``ServiceSettings`` for the shared fields."""

    model_config = SettingsConfigDict(env_prefix="TRAINING_", env_file=".env", extra="ignore")

    service_name: str = "training"
    grpc_port: int = 50053
    admin_port: int = 8083
    topics: list[str] = Field(
        default_factory=lambda: ["aimesh.monitor.alerts.v1"],
        description="Kafka alert topics that may trigger retraining.",
    )
