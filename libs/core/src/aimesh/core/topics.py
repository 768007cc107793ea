"""Kafka topic names of the mesh (``aimesh.<domain>.<event>.v1``), one place for every service."""

INGEST_RECORDS = "aimesh.ingest.records.v1"
INGEST_DLQ = "aimesh.ingest.dlq.v1"
TRAINING_RUNS = "aimesh.training.runs.v1"
REGISTRY_MODELS = "aimesh.registry.models.v1"
INFERENCE_PREDICTIONS = "aimesh.inference.predictions.v1"
MONITOR_ALERTS = "aimesh.monitor.alerts.v1"
SERVICE_LOGS = "aimesh.monitor.logs.v1"
