"""Prometheus metrics of the inference service (exposed on the admin app's ``/metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

SCORE_LATENCY = Histogram(
    "aimesh_inference_score_seconds",
    "Score latency: routing, feature lookup and the Triton call",
    ["model", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
NEXT_ITEM_LATENCY = Histogram(
    "aimesh_inference_next_item_seconds",
    "Recommend latency: routing, the history lookup and the Triton call (none for a fallback)",
    ["model", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
SCORE_BATCH_ROWS = Histogram(
    "aimesh_inference_score_batch_rows",
    "Rows per ScoreBatch call",
    ["model"],
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000),
)
PREDICTIONS_PUBLISHED = Counter("aimesh_inference_predictions_published_total", "Prediction events acknowledged")
PREDICTIONS_FAILED = Counter(
    "aimesh_inference_predictions_failed_total",
    "Prediction events lost: the spool rejected them or they are invalid (logged with their ids)",
)
PREDICTIONS_SPOOLED = Counter(
    "aimesh_inference_predictions_spooled_total", "Prediction events written to the local spool while Kafka failed"
)
PREDICTIONS_IN_FLIGHT = Gauge("aimesh_inference_predictions_in_flight", "Prediction events awaiting acknowledgement")
SHADOW = Counter(
    "aimesh_inference_shadow_total",
    "Mirrored Score, ScoreBatch and Recommend requests by the outcome of their shadow scoring: scored "
    "(Prediction submitted), failed (logged), skipped (too many in flight), cancelled (shutdown)",
    ["model", "outcome"],
)
BREAKER_STATE = Gauge(
    "aimesh_inference_breaker_state",
    "Circuit breaker state per dependency of Score: 0 closed, 1 half-open (a probe call), 2 open (calls skip it)",
    ["dependency"],
)
BREAKER_TRANSITIONS = Counter(
    "aimesh_inference_breaker_transitions_total",
    "Circuit breaker transitions per dependency, by the state entered (closed, half_open, open)",
    ["dependency", "state"],
)
FALLBACK = Counter(
    "aimesh_inference_fallback_total",
    "Score answers (ScoreBatch: each routed version of a call) given by the model's fallback and Recommend "
    "answers given by the popular items because of an outage, by the cause: unavailable (the dependency failed "
    "or its circuit is open) or deadline (it did not answer in the time left)",
    ["model", "cause"],
)
