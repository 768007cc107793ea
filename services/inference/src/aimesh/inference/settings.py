"""inference settings: environment variables prefixed ``INFERENCE_`` (e.g. ``INFERENCE_GRPC_PORT``)."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from aimesh.core.settings import ServiceSettings
from aimesh.core.topics import INFERENCE_PREDICTIONS, REGISTRY_MODELS


class InferenceSettings(ServiceSettings):
    """Everything the inference service reads from its environment; see ``ServiceSettings`` for the shared fields."""

    model_config = SettingsConfigDict(env_prefix="INFERENCE_", env_file=".env", extra="ignore")

    service_name: str = "inference"
    grpc_port: int = 50054
    admin_port: int = 8084
    topics: list[str] = Field(
        default_factory=lambda: [REGISTRY_MODELS],
        description="Kafka model registry topics replayed (from the earliest offset) into the routing table.",
    )
    predictions_topic: str = Field(default=INFERENCE_PREDICTIONS, description="Where Prediction events go.")
    triton_url: str = Field(default="127.0.0.1:8001", description="Triton gRPC endpoint (host:port).")
    feature_address: str = Field(default="127.0.0.1:50052", description="FeatureService gRPC endpoint (host:port).")
    default_alias: str = Field(default="champion", description="Alias routed by when a request names none.")
    max_in_flight_predictions: int = Field(
        default=10_000, description="Prediction events awaiting Kafka's acknowledgement before Score waits for room."
    )
