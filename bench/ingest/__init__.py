"""Ingest benchmark: the ingest service against a plain aiokafka passthrough, same broker, same data.

Run ``python -m bench.ingest`` from the repository root (``make bench``); see bench/README.md.
"""
