"""Prometheus metrics of the ingest service (on the admin app's ``/metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

RECORDS_ACCEPTED = Counter(
    "aimesh_ingest_records_accepted_total", "Upstream records validated and published as canonical", ["source"]
)
RECORDS_REJECTED = Counter(
    "aimesh_ingest_records_rejected_total", "Upstream records dead-lettered, by ReasonCode", ["source", "reason"]
)
DUPLICATES_DROPPED = Counter(
    "aimesh_ingest_duplicates_dropped_total", "Upstream records dropped because their event id was seen", ["source"]
)
UNDECLARED_DROPPED = Counter(
    "aimesh_ingest_undeclared_fields_dropped_total",
    "Undeclared payload fields left out of accepted records (undeclared_fields: drop)",
    ["source"],
)
PANS_MASKED = Counter(
    "aimesh_ingest_pans_masked_total",
    "PAN-like digit runs (Luhn-valid, 13-19 digits) replaced by their tokens outside declared PII fields",
    ["source", "place"],
)
BATCH_SECONDS = Histogram(
    "aimesh_ingest_batch_seconds",
    "Time to validate, publish and write one partition batch to the lake",
    ["source"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
