"""Prometheus metrics shared by every service (exposed on the admin app's ``/metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_CONSUMED = Counter("aimesh_events_consumed_total", "Kafka events handled successfully", ["service", "topic"])
EVENTS_FAILED = Counter(
    "aimesh_events_failed_total", "Handler failures that will be retried (not committed)", ["service", "topic"]
)
EVENTS_DEAD_LETTERED = Counter(
    "aimesh_events_dead_lettered_total", "Events sent to the dead-letter topic", ["service", "topic", "reason"]
)
EVENTS_PUBLISHED = Counter("aimesh_events_published_total", "Events acknowledged by Kafka", ["service", "topic"])
COMMIT_FAILURES = Counter(
    "aimesh_offset_commit_failures_total", "Offset commits rejected (e.g. during a rebalance)", ["service"]
)
CONSUMER_LAG = Gauge("aimesh_consumer_lag", "Records behind the partition's end", ["service", "topic", "partition"])
GRPC_REQUESTS = Counter("aimesh_grpc_requests_total", "gRPC requests by method and status", ["method", "code"])
GRPC_LATENCY = Histogram(
    "aimesh_grpc_request_seconds",
    "gRPC handler latency",
    ["method"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
CONSUMER_STALLED_SECONDS = Gauge(
    "aimesh_consumer_partition_stalled_seconds",
    "Seconds since the partition's position last advanced while it has records to process (0 when caught up)",
    ["service", "topic", "partition"],
)
CONSUMER_RETRY_ATTEMPTS = Gauge(
    "aimesh_consumer_retry_attempts",
    "Failed attempts of the record the partition waits on (0 when none)",
    ["service", "topic", "partition"],
)
CONSUMER_WAITING_ON_DEPENDENCY = Gauge(
    "aimesh_consumer_waiting_on_dependency",
    "1 while the partition's last failure was transient (a dependency unavailable), else 0",
    ["service", "topic", "partition"],
)
CONSUMER_REPLACEMENTS = Counter(
    "aimesh_consumer_replacements_total",
    "aiokafka consumers replaced because one of aiokafka's own tasks (fetch, group coordination) had ended",
    ["service"],
)
CONSUMER_ERRORS = Counter(
    "aimesh_consumer_errors_total",
    "Failed handler attempts by error class (transient, permanent, unclassified)",
    ["service", "topic", "error_class"],
)
