"""Kafka topic names of the mesh (``aimesh.<domain>.<event>.v1``), one place for every service."""

SERVICES = ("ingest", "feature", "training", "inference", "monitor")
"""The mesh's services; each owns one dead-letter topic, ``dlq_topic(service)``."""

INGEST_RECORDS = "aimesh.ingest.records.v1"
TRAINING_RUNS = "aimesh.training.runs.v1"
REGISTRY_MODELS = "aimesh.registry.models.v1"
INFERENCE_PREDICTIONS = "aimesh.inference.predictions.v1"
MONITOR_ALERTS = "aimesh.monitor.alerts.v1"
SERVICE_LOGS = "aimesh.monitor.logs.v1"


def dlq_topic(service: str) -> str:
    """The dead-letter topic ``service`` owns: ``aimesh.<service>.dlq.v1``."""
    return f"aimesh.{service}.dlq.v1"


INGEST_DLQ = dlq_topic("ingest")
FEATURE_DLQ = dlq_topic("feature")
TRAINING_DLQ = dlq_topic("training")
INFERENCE_DLQ = dlq_topic("inference")
MONITOR_DLQ = dlq_topic("monitor")
DLQ_TOPICS = tuple(dlq_topic(service) for service in SERVICES)
"""Every service's dead-letter topic; monitor indexes them all."""
