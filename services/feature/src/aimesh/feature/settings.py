"""feature settings: environment variables prefixed ``FEATURE_`` (e.g. ``FEATURE_GRPC_PORT``)."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from aimesh.core.settings import ServiceSettings


class FeatureSettings(ServiceSettings):
    """Everything the feature service reads from its environment; see ``ServiceSettings`` for the shared fields."""

    model_config = SettingsConfigDict(env_prefix="FEATURE_", env_file=".env", extra="ignore")

    service_name: str = "feature"
    grpc_port: int = 50052
    admin_port: int = 8082
    topics: list[str] = Field(
        default_factory=lambda: ["aimesh.ingest.records.v1"],
        description="Kafka canonical record topics that feed the streaming aggregations.",
    )
