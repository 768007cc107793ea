"""Prometheus metrics of the monitor service (exposed on the admin app's ``/metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

DOCUMENTS_INDEXED = Counter("aimesh_monitor_documents_indexed_total", "Documents written to Elasticsearch", ["index"])
DOCUMENTS_REJECTED = Counter(
    "aimesh_monitor_documents_rejected_total", "Documents Elasticsearch refused (dead-lettered)", ["index"]
)
DRIFT_PSI = Gauge("aimesh_monitor_score_psi", "Latest score PSI per model version", ["model", "version"])
ALERTS_RAISED = Counter("aimesh_monitor_alerts_raised_total", "Alerts published", ["kind", "severity"])
