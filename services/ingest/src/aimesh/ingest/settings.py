"""ingest settings: environment variables prefixed ``INGEST_`` (e.g. ``INGEST_GRPC_PORT``)."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from aimesh.core.settings import ServiceSettings


class IngestSettings(ServiceSettings):
    """Everything the ingest service reads from its environment; see ``ServiceSettings`` for the shared fields."""

    model_config = SettingsConfigDict(env_prefix="INGEST_", env_file=".env", extra="ignore")

    service_name: str = "ingest"
    grpc_port: int = 50051
    admin_port: int = 8081
    topics: list[str] = Field(
        default_factory=lambda: ["bank.card-transactions", "bank.chargebacks"],
        description="Kafka upstream topics this instance validates (source definitions come in a later issue).",
    )
