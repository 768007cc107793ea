"""LogShipper: never blocks the logging call, drops and counts when full, ships through the producer."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from pathlib import Path
from typing import Any

from google.protobuf.message import Message

from aimesh.api.monitor.v1 import events_pb2
from aimesh.core.auth import Principal, bind_principal, reset_principal
from aimesh.core.logship import LogShipper, to_log_record
from aimesh.core.spool import Spool, SpoolingSender
from aimesh.core.testing import RecordingSender


class LoggingSender(RecordingSender):
    """Logs a warning on every send, as the Kafka client may while the shipper publishes."""

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__()
        self._log = logger

    async def send_event(
        self, topic: str, message: Message, *, key: Any, event_id: Any = None, extra_headers: Any = ()
    ) -> asyncio.Future[Any]:
        self._log.warning("sending a record")
        return await super().send_event(topic, message, key=key, event_id=event_id, extra_headers=extra_headers)


def make_logger(shipper: LogShipper, name: str) -> logging.Logger:
    logger = logging.getLogger(name)
    logger.handlers = [shipper]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger


def test_emit_never_blocks_and_drops_when_full() -> None:
    shipper = LogShipper("svc", capacity=10)
    logger = make_logger(shipper, "test.logship.full")
    started = time.perf_counter()
    for i in range(1000):
        logger.info("record %d", i)
    assert time.perf_counter() - started < 1.0
    assert shipper.queued == 10
    assert shipper.dropped == 990


def test_records_below_the_level_are_ignored() -> None:
    shipper = LogShipper("svc", level=logging.WARNING)
    logger = make_logger(shipper, "test.logship.level")
    logger.info("quiet")
    logger.warning("loud")
    assert shipper.queued == 1


def test_log_record_fields() -> None:
    logger = logging.getLogger("test.logship.fields")
    try:
        raise ValueError("bad value")
    except ValueError:
        record = logger.makeRecord(
            logger.name,
            logging.ERROR,
            __file__,
            1,
            "failed %s",
            ("x",),
            exc_info=sys.exc_info(),
            extra={"event.id": "e-1"},
        )
    out = to_log_record(record, "svc", "host-1")
    assert out.level == events_pb2.LOG_LEVEL_ERROR
    assert (out.service, out.message, out.logger, out.host) == ("svc", "failed x", logger.name, "host-1")
    assert out.extra["event.id"] == "e-1"
    assert out.error_type == "ValueError" and out.error_message == "bad value"
    assert "Traceback" in out.error_stack_trace
    assert abs(out.timestamp.ToNanoseconds() / 1e9 - record.created) < 1e-3
    assert out.tenant == ""


def test_a_record_logged_during_a_call_carries_the_callers_tenant() -> None:
    logger = logging.getLogger("test.logship.tenant")
    token = bind_principal(Principal(subject="svc-a", tenant="acme", via="jwt"))
    try:
        record = logger.makeRecord(logger.name, logging.INFO, __file__, 1, "in a call", (), None)
        assert to_log_record(record, "svc", "host-1").tenant == "acme"
    finally:
        reset_principal(token)
    assert to_log_record(record, "svc", "host-1").tenant == ""


async def test_run_ships_queued_records_and_never_ships_its_own_logs() -> None:
    shipper = LogShipper("svc", topic="logs", flush_interval_s=0.01)
    logger = make_logger(shipper, "test.logship.run")
    producer = LoggingSender(logger)
    task = asyncio.create_task(shipper.run(producer))
    logger.warning("one")
    logger.error("two")
    for _ in range(100):
        if len(producer.sent) >= 2:
            break
        await asyncio.sleep(0.01)
    await shipper.stop()
    await asyncio.wait_for(task, 2.0)
    assert [s.message.message for s in producer.sent] == ["one", "two"]  # type: ignore[attr-defined]
    assert all(s.topic == "logs" and s.key == "svc" for s in producer.sent)
    assert shipper.queued == 0


async def test_failed_sends_are_counted_as_dropped() -> None:
    shipper = LogShipper("svc")
    make_logger(shipper, "test.logship.fail").error("x")
    assert await shipper.ship_pending(RecordingSender(fail=True)) == 0
    assert shipper.dropped == 1


async def test_records_wait_in_the_spool_while_kafka_fails_up_to_its_bound(tmp_path: Path) -> None:
    shipper = LogShipper("svc")
    logger = make_logger(shipper, "test.logship.spool")
    logger.error("kept")
    logger.error("over the bound")
    spool = await Spool.open(tmp_path / "logs.db", name="logs", max_records=1)
    assert await shipper.ship_pending(SpoolingSender(RecordingSender(fail=True), spool, source="svc")) == 1
    assert shipper.dropped == 1 and spool.depth == 1
    await spool.close()
