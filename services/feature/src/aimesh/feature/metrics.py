"""Prometheus metrics of the feature service (served on the admin app's ``/metrics``)."""

from prometheus_client import Counter, Histogram

RECORDS_APPLIED = Counter(
    "aimesh_feature_records_applied_total", "Records applied to the online store (feeding at least one view)", ["topic"]
)
RECORDS_SKIPPED_REDELIVERED = Counter(
    "aimesh_feature_records_skipped_redelivered_total",
    "Records skipped because their offset was applied already (redelivery)",
    ["topic"],
)
RECORDS_IGNORED = Counter(
    "aimesh_feature_records_ignored_total",
    "Records of sources that feed no feature view (e.g. one only training reads)",
    ["topic"],
)
EVENTS_LATE = Counter(
    "aimesh_feature_events_late_total",
    "View events older than the entity's newest event minus the allowed lateness: skipped online, kept in the lake",
    ["topic"],
)
BACKFILL_ROWS = Counter("aimesh_feature_backfill_rows_total", "Lake rows read by backfills", ["view"])
ONLINE_LATENCY = Histogram(
    "aimesh_feature_online_request_seconds",
    "GetOnlineFeatures latency (validation, one store read, computation)",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
HISTORICAL_ROWS = Counter("aimesh_feature_historical_rows_total", "Rows answered by GetHistoricalFeatures")
