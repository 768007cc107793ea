"""aimesh monitor: indexes predictions, logs and alerts into Elasticsearch, computes drift, raises alerts."""
