"""training settings: environment variables prefixed ``TRAINING_`` (e.g. ``TRAINING_GRPC_PORT``)."""

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from aimesh.core.settings import ServiceSettings
from aimesh.core.topics import MONITOR_ALERTS, REGISTRY_MODELS, TRAINING_RUNS
from aimesh.training.triton_config import TritonVariant


class TrainingSettings(ServiceSettings):
    """Everything the training service reads from its environment; see ``ServiceSettings`` for the shared fields."""

    model_config = SettingsConfigDict(env_prefix="TRAINING_", env_file=".env", extra="ignore")

    service_name: str = "training"
    grpc_port: int = 50053
    admin_port: int = 8083
    topics: list[str] = Field(
        default_factory=lambda: [MONITOR_ALERTS],
        description="Kafka alert topics that may trigger retraining.",
    )
    runs_topic: str = Field(default=TRAINING_RUNS, description="Where RunEvents are published.")
    registry_topic: str = Field(default=REGISTRY_MODELS, description="Where ModelEvents are published.")
    lake_dir: Path | None = Field(default=None, description="The lake root; default <data_dir>/lake.")
    model_repository: Path = Field(
        default=Path(".aimesh/data/triton/models"),
        description="Triton's --model-repository (the devstack's by default).",
    )
    triton_grpc: str = Field(default="127.0.0.1:8001", description="Triton gRPC endpoint (model control, checks).")
    triton_timeout_seconds: float = Field(default=180.0, description="Limit for loading a model into Triton.")
    triton_variant: TritonVariant = Field(
        default="python",
        description=(
            "Which backend an exported model's config.pbtxt names: python (model.py loads model.pt with torch; "
            "the local Triton has only this backend), pytorch_libtorch (model.pt) or onnxruntime (model.onnx), "
            "the native backends of NGC Triton images, on KIND_GPU instances. Every export writes all three "
            "configs under <model>/configs/ (Triton's --model-config-name) and model.pt, model.py, model.onnx."
        ),
    )
    triton_gpu_instances: int = Field(
        default=1, ge=1, le=16, description="Instances per GPU of the native variants (their instance_group count)."
    )
    feature_grpc: str = Field(default="127.0.0.1:50052", description="FeatureService gRPC endpoint (training sets).")
    feature_timeout_seconds: float = Field(default=120.0, description="Deadline of one GetHistoricalFeatures batch.")
    feature_batch_rows: int = Field(default=2000, ge=1, le=100_000, description="Entity rows per feature request.")
    champion_alias: str = Field(default="champion", description="Alias a successful run promotes its version to.")
    champion_auc_floor: float = Field(
        default=0.6, description="A new version becomes champion only when its eval AUC is above this."
    )
    retrain_models: list[str] = Field(
        default_factory=list,
        description="Models whose retrain policy is on: an open CRITICAL score DRIFT alert for them starts one run per "
        "alert (default: none; per-input drift alerts start nothing).",
    )
    outbox_interval_seconds: float = Field(default=5.0, description="How often unpublished events are retried.")
    torch_threads: int = Field(default=1, ge=1, description="CPU threads for training (the machine is shared).")

    def lake_root(self) -> Path:
        """The lake directory: ``lake_dir`` when set, else ``<data_dir>/lake``."""
        return self.lake_dir if self.lake_dir is not None else self.data_dir / "lake"

    def artifacts_dir(self) -> Path:
        """Where runs keep their trained artifacts before registration: ``<data_dir>/training/runs``."""
        return self.data_dir / "training" / "runs"
