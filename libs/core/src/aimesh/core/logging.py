"""ECS-shaped JSON logging (Elastic's ``ecs-logging``) with the current trace and span ids.

Every record carries ``service.name``, ``trace.id`` and ``span.id`` (when a span is active), so the
monitor service can index logs and Kibana can jump from a log line to its trace.
"""

from __future__ import annotations

import logging
import sys

import ecs_logging
from opentelemetry import trace


class _TraceContextFilter(logging.Filter):
    """Adds ``service.name``, ``trace.id`` and ``span.id`` to each record (ECS field names)."""

    def __init__(self, service_name: str) -> None:
        super().__init__()
        self.service_name = service_name

    def filter(self, record: logging.LogRecord) -> bool:
        setattr(record, "service.name", self.service_name)
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            setattr(record, "trace.id", format(ctx.trace_id, "032x"))
            setattr(record, "span.id", format(ctx.span_id, "016x"))
        return True


def configure_logging(service_name: str, level: str = "INFO", *, json: bool = True) -> None:
    """Route the root logger to stderr, as ECS JSON (``json=True``) or plain text.

    Idempotent: replaces the handlers a previous call installed.
    """
    handler = logging.StreamHandler(sys.stderr)
    if json:
        handler.setFormatter(ecs_logging.StdlibFormatter(exclude_fields=["log.original"]))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_TraceContextFilter(service_name))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(root.level, logging.WARNING))
