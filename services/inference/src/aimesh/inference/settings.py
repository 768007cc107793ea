"""inference settings: environment variables prefixed ``INFERENCE_`` (e.g. ``INFERENCE_GRPC_PORT``)."""

from typing import Literal

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
    max_batch_rows: int = Field(
        default=256,
        ge=1,
        le=1000,
        description="Most rows one ScoreBatch call may hold (INVALID_ARGUMENT naming the limit above it); at most "
        "the served models' Triton max_batch_size (256 for models the training service exports) and the feature "
        "service's 1,000 online rows.",
    )
    max_id_bytes: int = Field(
        default=256,
        ge=16,
        le=4096,
        description="Longest request_id, model, alias, entity type and entity id (UTF-8 bytes) a request may carry "
        "(INVALID_ARGUMENT naming the field and the limit above it).",
    )
    max_map_entries: int = Field(
        default=64,
        ge=1,
        le=10_000,
        description="Most entries a request's entity_ids, features or context map may hold (each; per row in "
        "ScoreBatch), INVALID_ARGUMENT naming the field and the limit above it.",
    )
    max_request_items: int = Field(
        default=1000,
        ge=1,
        le=100_000,
        description="Most ids a Recommend request's context_items or exclude_items may hold (each).",
    )
    prediction_delivery: Literal["background", "before_answer"] = Field(
        default="background",
        description="background: answer as soon as the Prediction event is handed to the publisher "
        "(prediction_delivery PENDING; Kafka acknowledges it or it is spooled later); before_answer: wait for "
        "Kafka's acknowledgement or the spool write first (ACKNOWLEDGED / SPOOLED; FAILED with no event_id).",
    )
    max_shadow_in_flight: int = Field(
        default=64,
        ge=0,
        description="Shadow scorings running at once (one per Score or Recommend request a traffic policy mirrors "
        "to its shadow version, one per ScoreBatch's mirrored rows); the mirrored requests beyond that are skipped "
        "and counted (aimesh_inference_shadow_total outcome skipped).",
    )
    shadow_timeout_seconds: float = Field(
        default=2.0,
        gt=0,
        description="Time one shadow scoring may take in all (feature lookup, model call, handing its Predictions on).",
    )
    fallback_reserve_seconds: float = Field(
        default=0.02,
        ge=0,
        description="Part of a Score, ScoreBatch or Recommend caller's deadline kept back from the feature lookup and "
        "the model call, so that the fallback (the model's, Recommend's popular items, or UNAVAILABLE without one) is "
        "answered before the deadline when they are too slow.",
    )
    breaker_failures: int = Field(
        default=5,
        ge=1,
        description="Consecutive failures (UNAVAILABLE or too slow) of the feature service, or of one Triton "
        "model version, after which its circuit breaker opens: Score, ScoreBatch and Recommend stop calling it "
        "and answer with the fallback or UNAVAILABLE (shadow calls have breakers of their own).",
    )
    breaker_cooldown_seconds: float = Field(
        default=1.0,
        gt=0,
        description="How long an open circuit breaker skips its dependency before one probe call is let through "
        "(its success closes the breaker).",
    )
    model_reconcile_interval_seconds: float = Field(
        default=2.0,
        gt=0,
        description="How often the model reconciler checks that every routed model version is loaded in Triton "
        "(and loads those that are not); it also runs at once when the routing table changes.",
    )
    model_load_backoff_max_seconds: float = Field(
        default=30.0,
        gt=0,
        description="Longest wait between load attempts of a model whose Triton load keeps failing "
        "(the wait starts at the reconcile interval and doubles per failure).",
    )
    model_load_timeout_seconds: float = Field(
        default=120.0, gt=0, description="How long one Triton load request may take before it counts as failed."
    )
    ready_without_routed_models: bool = Field(
        default=True,
        description="Report ready (when Triton is live and features reachable) while no model version is routed at "
        "all, as in a fresh mesh before its first training; false: not ready until a routed version is loaded.",
    )
