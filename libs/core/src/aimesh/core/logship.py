"""Ships a service's log records to Kafka (``aimesh.monitor.logs.v1``) for monitor to index.

``LogShipper`` is a ``logging.Handler``: ``emit`` turns a record into a ``LogRecord`` protobuf and puts
it on a bounded, thread-safe queue without ever blocking; when the queue is full the record is dropped
and counted (``aimesh_logs_dropped_total``). ``run(producer)`` is the background part that drains the
queue and publishes each record keyed by the service name, waiting for the acknowledgements of a batch
before taking the next one. Services publish through a ``aimesh.core.spool.SpoolingSender`` (see
``aimesh.core.app.serve``): while Kafka is away the records wait in the local spool, up to
``ship_logs_spool_max_bytes``, and drain when it is back; a record the full spool rejects is counted
(reason ``spool_full``) and dropped, as is one whose send fails otherwise (``send_failed``; the stderr
copy of the log line remains). Records produced while shipping (the shipper's own task, the
Kafka client's loggers, this module) are never shipped, so shipping cannot feed on itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import queue
import socket
from typing import Any

from opentelemetry import trace
from prometheus_client import Counter

from aimesh.api.monitor.v1 import events_pb2
from aimesh.core.auth import current_tenant
from aimesh.core.bus import EventSender
from aimesh.core.spool import SpoolFull
from aimesh.core.topics import SERVICE_LOGS

LOGS_DROPPED = Counter(
    "aimesh_logs_dropped_total", "Log records not shipped (queue full or send failed)", ["service", "reason"]
)

_IGNORED_LOGGERS = ("aiokafka", "kafka", __name__)
_SHIPPING: contextvars.ContextVar[bool] = contextvars.ContextVar("aimesh_log_shipping", default=False)
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
    "service.name",
    "trace.id",
    "span.id",
}
_FORMATTER = logging.Formatter()


def log_level(levelno: int) -> events_pb2.LogLevel:
    """The ``LogLevel`` of a stdlib level number (levels between two names round down)."""
    if levelno >= logging.CRITICAL:
        return events_pb2.LOG_LEVEL_CRITICAL
    if levelno >= logging.ERROR:
        return events_pb2.LOG_LEVEL_ERROR
    if levelno >= logging.WARNING:
        return events_pb2.LOG_LEVEL_WARNING
    if levelno >= logging.INFO:
        return events_pb2.LOG_LEVEL_INFO
    return events_pb2.LOG_LEVEL_DEBUG


def to_log_record(record: logging.LogRecord, service: str, host: str) -> events_pb2.LogRecord:
    """The ECS-shaped ``LogRecord`` of a stdlib record; the trace ids come from the current span.

    Non-standard attributes (``extra=``) become ``extra`` entries, stringified; ``tenant`` is the tenant of
    the gRPC call being handled, if any. Raises what ``record.getMessage()`` raises for a bad format string
    (``Handler.handleError`` deals with it).
    """
    out = events_pb2.LogRecord(
        level=log_level(record.levelno),
        service=service,
        message=record.getMessage(),
        logger=record.name,
        host=host,
        tenant=current_tenant(),
    )
    out.timestamp.FromNanoseconds(int(record.created * 1e9))
    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid:
        out.trace_id = format(ctx.trace_id, "032x")
        out.span_id = format(ctx.span_id, "016x")
    for key, value in vars(record).items():
        if key not in _STANDARD_ATTRS and not key.startswith("_"):
            out.extra[key] = str(value)
    if record.exc_info and record.exc_info[0] is not None:
        exc_type, exc, _ = record.exc_info
        out.error_type = exc_type.__name__
        out.error_message = str(exc)
        out.error_stack_trace = _FORMATTER.formatException(record.exc_info)
    return out


class LogShipper(logging.Handler):
    """Queues records at or above ``level`` and publishes them from ``run`` (see the module doc)."""

    def __init__(
        self,
        service: str,
        *,
        level: int | str = logging.INFO,
        capacity: int = 10_000,
        topic: str = SERVICE_LOGS,
        batch_size: int = 500,
        flush_interval_s: float = 0.2,
    ) -> None:
        super().__init__(level)
        self.service = service
        self.topic = topic
        self.host = socket.gethostname()
        self._queue: queue.Queue[events_pb2.LogRecord] = queue.Queue(maxsize=capacity)
        self._batch_size = batch_size
        self._flush_interval_s = flush_interval_s
        self._stopping = asyncio.Event()
        self.dropped = 0
        """Records dropped so far (queue full or send failed)."""

    def emit(self, record: logging.LogRecord) -> None:
        """Queue the record; never blocks, drops (and counts) it when the queue is full."""
        if _SHIPPING.get() or record.name.startswith(_IGNORED_LOGGERS):
            return
        try:
            self._queue.put_nowait(to_log_record(record, self.service, self.host))
        except queue.Full:
            self._drop("queue_full")

    def _drop(self, reason: str, n: int = 1) -> None:
        self.dropped += n
        LOGS_DROPPED.labels(self.service, reason).inc(n)

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    async def run(self, producer: EventSender) -> None:
        """Publish queued records until ``stop()``, then publish what is left and return."""
        _SHIPPING.set(True)
        while not self._stopping.is_set():
            await self.ship_pending(producer)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=self._flush_interval_s)
        await self.ship_pending(producer)

    async def stop(self) -> None:
        """Ask ``run`` to publish what is queued and return."""
        self._stopping.set()

    async def ship_pending(self, producer: EventSender) -> int:
        """Publish everything queued now, in batches; returns how many records Kafka acknowledged."""
        token = _SHIPPING.set(True)
        shipped = 0
        try:
            while batch := self._take(self._batch_size):
                shipped += await self._publish(producer, batch)
        finally:
            _SHIPPING.reset(token)
        return shipped

    def _take(self, n: int) -> list[events_pb2.LogRecord]:
        batch: list[events_pb2.LogRecord] = []
        with contextlib.suppress(queue.Empty):
            while len(batch) < n:
                batch.append(self._queue.get_nowait())
        return batch

    async def _publish(self, producer: EventSender, batch: list[events_pb2.LogRecord]) -> int:
        acks: list[asyncio.Future[Any]] = []
        for record in batch:
            try:
                acks.append(await producer.send_event(self.topic, record, key=self.service))
            except Exception:
                self._drop("send_failed")
        results = await asyncio.gather(*acks, return_exceptions=True)
        full = sum(isinstance(r, SpoolFull) for r in results)
        failed = sum(isinstance(r, BaseException) for r in results) - full
        if full:
            self._drop("spool_full", full)
        if failed:
            self._drop("send_failed", failed)
        return len(results) - failed - full
