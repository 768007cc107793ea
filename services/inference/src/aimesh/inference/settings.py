"""inference settings: environment variables prefixed ``INFERENCE_`` (e.g. ``INFERENCE_GRPC_PORT``)."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from aimesh.core.settings import ServiceSettings


class InferenceSettings(ServiceSettings):
    """Everything the inference service reads from its environment; see ``ServiceSettings`` for the shared fields."""

    model_config = SettingsConfigDict(env_prefix="INFERENCE_", env_file=".env", extra="ignore")

    service_name: str = "inference"
    grpc_port: int = 50054
    admin_port: int = 8084
    topics: list[str] = Field(
        default_factory=lambda: ["aimesh.registry.models.v1"],
        description="Kafka model registry events that update the routing table.",
    )
