"""Prometheus metrics of the monitor service (exposed on the admin app's ``/metrics``).

The drift gauges hold the newest judged window of each tracked model version, per input (``feature``
empty: the score); a version no longer tracked has its series removed, so their number stays bounded.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

DOCUMENTS_INDEXED = Counter("aimesh_monitor_documents_indexed_total", "Documents written to Elasticsearch", ["index"])
DOCUMENTS_REJECTED = Counter(
    "aimesh_monitor_documents_rejected_total", "Documents Elasticsearch refused (dead-lettered)", ["index"]
)
DRIFT_PSI = Gauge("aimesh_monitor_score_psi", "Latest score PSI per model version", ["model", "version"])
_DRIFT_LABELS = ["model", "version", "feature"]
DRIFT_PSI_BY_INPUT = Gauge("aimesh_monitor_drift_psi", "Newest window's PSI per input ('' = score)", _DRIFT_LABELS)
DRIFT_JS_DISTANCE = Gauge(
    "aimesh_monitor_drift_js_distance", "Newest window's Jensen-Shannon distance per input", _DRIFT_LABELS
)
DRIFT_WASSERSTEIN = Gauge(
    "aimesh_monitor_drift_wasserstein", "Newest window's Wasserstein distance per input (its units)", _DRIFT_LABELS
)
DRIFTED = Gauge("aimesh_monitor_drifted", "1 when the newest window of the input is drifted", _DRIFT_LABELS)
ALERTS_RAISED = Counter("aimesh_monitor_alerts_raised_total", "Alerts published", ["kind", "severity"])
SLO_UNTRACKED = Counter(
    "aimesh_monitor_slo_untracked_total", "Predictions of models past MONITOR_SLO_MAX_MODELS (no service levels)"
)
