"""Logs are ECS JSON with the service name and the active trace ids."""

from __future__ import annotations

import json
import logging

import pytest
from opentelemetry.sdk.trace import TracerProvider

from aimesh.core.logging import configure_logging


def test_log_lines_are_ecs_json_with_trace_ids(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("ingest", "INFO")
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("work") as span:
        logging.getLogger("aimesh.test").info("hello %s", "world", extra={"event.id": "e1"})
        ctx = span.get_span_context()
    line = capsys.readouterr().err.strip().splitlines()[-1]
    doc = json.loads(line)
    assert doc["message"] == "hello world"
    assert doc["log.level"] == "info"
    assert doc["service"]["name"] == "ingest"
    assert doc["trace"]["id"] == format(ctx.trace_id, "032x")
    assert doc["span"]["id"] == format(ctx.span_id, "016x")
    assert doc["event"]["id"] == "e1"
    assert "@timestamp" in doc
