"""EventConsumer's error classes: transient errors retried forever, permanent ones dead-lettered at once,
unclassified ones dead-lettered after ``max_attempts``; batches bisected down to the failing record; live
lag/stall metrics; and the liveness signal (``wedged``).

In-memory fakes only: ``FakeKafkaConsumer`` for aiokafka's consumer, a recording ``DeadLetterSink`` and
``TransactionalRecordingSender`` for the transactional producer.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from aiokafka import TopicPartition
from prometheus_client import REGISTRY

from aimesh.api.ingest.v1 import events_pb2
from aimesh.core.bus import EventConsumer
from aimesh.core.events import Event, PoisonEvent
from aimesh.core.testing import FakeKafkaConsumer, TransactionalRecordingSender

TP = TopicPartition("up", 0)


class RecordingSink:
    """A ``DeadLetterSink`` that records each dead letter; ``fail_times`` sends raise ``ConnectionError`` first."""

    def __init__(self, fail_times: int = 0) -> None:
        self.letters: list[tuple[int, str, str]] = []
        self.fail_times = fail_times

    async def send(self, event: Event, reason_code: str, message: str) -> None:
        if self.fail_times > 0:
            self.fail_times -= 1
            raise ConnectionError("dlq broker down")
        self.letters.append((event.offset, reason_code, message))


def consumer_of(
    fake: FakeKafkaConsumer,
    *,
    handler: Any = None,
    batch_handler: Any = None,
    sink: Any = None,
    service: str = "t",
    **options: Any,
) -> EventConsumer:
    consumer = EventConsumer(
        "127.0.0.1:1",
        group_id="g",
        topics=[TP.topic],
        service=service,
        handler=handler,
        batch_handler=batch_handler,
        dead_letters=sink,
        retry_backoff_s=0.001,
        max_retry_backoff_s=0.005,
        **options,
    )
    consumer._consumer = fake
    return consumer


async def run_until(consumer: EventConsumer, done: Callable[[], bool], within_s: float = 5.0) -> None:
    task = asyncio.create_task(consumer.run())
    try:
        async with asyncio.timeout(within_s):
            while not done():
                assert not task.done(), task.result()
                await asyncio.sleep(0.005)
    finally:
        consumer.stop()
        await task


def committed(fake: FakeKafkaConsumer) -> list[int]:
    return [c[TP] for c in fake.commits]


def sample(name: str, service: str) -> float | None:
    return REGISTRY.get_sample_value(name, {"service": service, "topic": "up", "partition": "0"})


async def test_a_record_failing_forever_is_dead_lettered_once_with_its_last_error_and_the_partition_moves_on() -> None:
    fake = FakeKafkaConsumer([b"v"] * 6, batch=6, tp=TP)
    sink = RecordingSink()
    handled: list[int] = []
    attempts = Counter[int]()

    async def handle(event: Event) -> None:
        if event.offset == 2:
            attempts[2] += 1
            raise RuntimeError(f"bug number {attempts[2]}")
        handled.append(event.offset)

    await run_until(consumer_of(fake, handler=handle, sink=sink, max_attempts=3), lambda: handled[-1:] == [5])

    assert handled == [0, 1, 3, 4, 5], "records before are handled once, records after are not blocked"
    assert attempts[2] == 3
    ((offset, reason, message),) = sink.letters
    assert (offset, reason) == (2, "RETRIES_EXHAUSTED")
    assert "3 attempts" in message and "RuntimeError: bug number 3" in message, "the last error is kept"
    assert all(a <= b for a, b in zip(committed(fake), committed(fake)[1:], strict=False))
    assert committed(fake)[-1] == 6


async def test_a_transient_error_is_retried_past_max_attempts_and_never_skipped() -> None:
    fake = FakeKafkaConsumer([b"v"] * 4, batch=4, tp=TP)
    sink = RecordingSink()
    handled: list[int] = []
    calls = Counter[int]()
    broker = {"up": False}

    async def handle(event: Event) -> None:
        calls[event.offset] += 1
        if event.offset == 1 and not broker["up"]:
            raise ConnectionError("database at 127.0.0.1:5433 refused the connection")
        handled.append(event.offset)

    consumer = consumer_of(fake, handler=handle, sink=sink, max_attempts=2)
    task = asyncio.create_task(run_until(consumer, lambda: handled[-1:] == [3]))
    async with asyncio.timeout(5):
        while calls[1] < 20:
            await asyncio.sleep(0.005)
    assert handled == [0] and sink.letters == [], "nothing after the record runs, nothing is dead-lettered"
    assert all(c <= 1 for c in committed(fake)), "nothing past the failing record is committed"
    assert consumer.retries[TP].kind.value == "transient" and consumer.retries[TP].offset == 1
    broker["up"] = True
    await task
    assert handled == [0, 1, 2, 3] and sink.letters == []


async def test_a_permanent_error_is_dead_lettered_at_once_with_its_reason() -> None:
    fake = FakeKafkaConsumer([b"v"] * 3, batch=3, tp=TP)
    sink = RecordingSink()
    calls = Counter[int]()

    async def handle(event: Event) -> None:
        calls[event.offset] += 1
        if event.offset == 1:
            raise PoisonEvent("MISSING_FIELD", "no entity id")

    await run_until(consumer_of(fake, handler=handle, sink=sink), lambda: calls[2] == 1)
    assert sink.letters == [(1, "MISSING_FIELD", "no entity id")] and calls[1] == 1


async def test_a_failing_batch_is_bisected_so_only_the_bad_record_is_dead_lettered() -> None:
    fake = FakeKafkaConsumer([b"v"] * 12, batch=12, tp=TP)
    sink = RecordingSink()
    succeeded = Counter[int]()
    sizes: list[int] = []

    async def handle(events: Sequence[Event]) -> None:
        sizes.append(len(events))
        if any(e.offset == 5 for e in events):
            raise ValueError("cannot map record 5")
        succeeded.update(e.offset for e in events)

    await run_until(consumer_of(fake, batch_handler=handle, sink=sink, max_attempts=3), lambda: succeeded[11] == 1)

    assert set(succeeded) == set(range(12)) - {5}
    assert set(succeeded.values()) == {1}, "each good record's batch succeeded exactly once"
    assert [(o, r) for o, r, _ in sink.letters] == [(5, "RETRIES_EXHAUSTED")]
    assert "ValueError: cannot map record 5" in sink.letters[0][2]
    assert sizes.count(1) >= 3, "the failing record is retried alone"
    assert committed(fake)[-1] == 12


async def test_a_poison_event_raised_by_a_batch_handler_costs_one_isolation_not_retries() -> None:
    fake = FakeKafkaConsumer([b"v"] * 8, batch=8, tp=TP)
    sink = RecordingSink()
    succeeded: set[int] = set()
    alone = Counter[int]()

    async def handle(events: Sequence[Event]) -> None:
        if len(events) == 1:
            alone[events[0].offset] += 1
        if any(e.offset == 3 for e in events):
            raise PoisonEvent("DECODE_ERROR", "record 3 does not decode")
        succeeded.update(e.offset for e in events)

    await run_until(consumer_of(fake, batch_handler=handle, sink=sink), lambda: 7 in succeeded)
    assert sink.letters == [(3, "DECODE_ERROR", "record 3 does not decode")] and alone[3] == 1
    assert succeeded == set(range(8)) - {3}


async def test_transactions_the_dead_letter_is_sent_inside_the_transaction_that_commits_its_offset() -> None:
    fake = FakeKafkaConsumer([b"v"] * 6, batch=6, tp=TP)
    tx = TransactionalRecordingSender()

    class TransactionalSink:
        async def send(self, event: Event, reason_code: str, message: str) -> None:
            assert tx.staged is not None, "a dead letter is sent inside a transaction"
            letter = events_pb2.CanonicalRecord(event_id=f"{reason_code}:{event.offset}")
            await (await tx.send_event("dlq", letter, key=None))

    async def handle(events: Sequence[Event]) -> None:
        if any(e.offset == 2 for e in events):
            raise RuntimeError("handler bug")
        for e in events:
            await (await tx.send_event("out", events_pb2.CanonicalRecord(event_id=str(e.offset)), key=None))

    consumer = consumer_of(fake, batch_handler=handle, sink=TransactionalSink(), transactions=tx, max_attempts=2)
    await run_until(consumer, lambda: bool(tx.commits) and tx.commits[-1][TP] == 6)

    out = [s.message.event_id for s in tx.sent if s.topic == "out"]  # type: ignore[attr-defined]
    dlq = [s.message.event_id for s in tx.sent if s.topic == "dlq"]  # type: ignore[attr-defined]
    assert out == ["0", "1", "3", "4", "5"], "aborted attempts' sends never became visible"
    assert dlq == ["RETRIES_EXHAUSTED:2"]
    assert {TP: 3} in tx.commits, "the dead letter committed with the offset past its record"
    assert fake.commits == []


async def test_a_dead_letter_that_cannot_be_sent_keeps_the_record_in_place() -> None:
    fake = FakeKafkaConsumer([b"v"] * 3, batch=3, tp=TP)
    sink = RecordingSink(fail_times=3)
    handled: list[int] = []

    async def handle(event: Event) -> None:
        if event.offset == 0:
            raise PoisonEvent("MALFORMED_PAYLOAD", "not JSON")
        handled.append(event.offset)

    await run_until(consumer_of(fake, handler=handle, sink=sink), lambda: handled[-1:] == [2])
    assert sink.letters == [(0, "MALFORMED_PAYLOAD", "not JSON")] and handled == [1, 2]
    assert sink.fail_times == 0


async def test_lag_and_stall_are_live_while_a_partition_is_stuck() -> None:
    fake = FakeKafkaConsumer([b"v"] * 3, batch=3, tp=TP)
    service = "stuck-t"

    async def handle(event: Event) -> None:
        if event.offset == 1:
            raise ConnectionError("Elasticsearch unavailable")

    consumer = consumer_of(fake, handler=handle, service=service)
    task = asyncio.create_task(consumer.run())
    async with asyncio.timeout(5):
        while sample("aimesh_consumer_lag", service) != 2.0:
            await asyncio.sleep(0.005)
        fake.records += [type(fake.records[0])(TP.topic, 0, i, b"k", b"v") for i in range(3, 10)]
        while sample("aimesh_consumer_lag", service) != 9.0:
            await asyncio.sleep(0.005)  # updated on every poll although nothing is handled
        await asyncio.sleep(0.2)
    stalled = sample("aimesh_consumer_partition_stalled_seconds", service)
    assert stalled is not None and stalled >= 0.2
    assert sample("aimesh_consumer_waiting_on_dependency", service) == 1.0
    assert consumer.wedged(0.1) is None, "backing off on a dependency is alive"
    consumer.stop()
    await task


async def test_wedged_when_a_handler_call_does_not_return() -> None:
    fake = FakeKafkaConsumer([b"v"] * 2, batch=2, tp=TP)
    entered = asyncio.Event()

    async def handle(event: Event) -> None:
        entered.set()
        await asyncio.Event().wait()

    consumer = consumer_of(fake, handler=handle)
    task = asyncio.create_task(consumer.run())
    await asyncio.wait_for(entered.wait(), 5)
    assert consumer.wedged(0.2) is None
    await asyncio.sleep(0.3)
    reason = consumer.wedged(0.2)
    assert reason is not None and "handler on up/0 at offset 0" in reason
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_wedged_when_a_poll_does_not_return() -> None:
    fake = FakeKafkaConsumer([], batch=1, tp=TP)

    async def never(timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Any]]:
        await asyncio.Event().wait()
        return {}

    fake.getmany = never  # type: ignore[method-assign]

    async def handle(event: Event) -> None:
        return None

    consumer = consumer_of(fake, handler=handle)
    task = asyncio.create_task(consumer.run())
    await asyncio.sleep(0.3)
    reason = consumer.wedged(0.2)
    assert reason is not None and reason.startswith("poll has not returned")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_wedged_when_records_wait_and_nothing_moves_but_not_when_idle_or_retrying() -> None:
    fake = FakeKafkaConsumer([b"v"] * 5, batch=1, tp=TP)
    frozen = {"on": False}
    real_getmany = fake.getmany

    async def getmany(timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Any]]:
        if frozen["on"]:
            await asyncio.sleep(0.01)
            return {}  # the fetch returns nothing although the partition has records
        return await real_getmany(timeout_ms, max_records)

    fake.getmany = getmany  # type: ignore[method-assign]
    handled: list[int] = []
    failures = Counter[int]()

    async def handle(event: Event) -> None:
        if event.offset == 1 and failures[1] < 3:
            failures[1] += 1
            await asyncio.sleep(0.05)
            raise RuntimeError("flaky")
        handled.append(event.offset)
        if event.offset == 2:
            frozen["on"] = True

    consumer = consumer_of(fake, handler=handle, max_attempts=5)
    task = asyncio.create_task(consumer.run())
    async with asyncio.timeout(5):
        while failures[1] < 2:
            await asyncio.sleep(0.005)
        assert consumer.wedged(0.2) is None, "a partition whose attempts keep finishing is moving"
        while not frozen["on"]:
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.3)
    reason = consumer.wedged(0.2)
    assert reason is not None and "up/0 has 2 records to process" in reason
    assert handled == [0, 1, 2]
    consumer.stop()
    await task

    idle = FakeKafkaConsumer([b"v"] * 2, batch=2, tp=TP)
    seen: list[int] = []

    async def record(event: Event) -> None:
        seen.append(event.offset)

    caught_up = consumer_of(idle, handler=record)
    task = asyncio.create_task(caught_up.run())
    await asyncio.sleep(0.3)
    assert seen == [0, 1] and caught_up.wedged(0.1) is None, "a caught-up consumer is alive however long"
    caught_up.stop()
    await task


class TransactionalLog(FakeKafkaConsumer):
    """A partition written by a transactional producer, read ``read_committed`` as aiokafka does.

    Each offset in ``markers`` is a transaction's commit or abort marker and each in ``aborted`` a record
    of an aborted transaction: neither is ever returned, but the fetch position moves past them and the
    end offset (the high watermark and, with no transaction open, the last stable offset) counts them.
    """

    def __init__(self, size: int, *, markers: set[int], aborted: frozenset[int] = frozenset()) -> None:
        super().__init__([b"v"] * size, batch=10, tp=TP)
        self.hidden = markers | aborted

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Any]]:
        await asyncio.sleep(0)
        self.polls += 1
        chunk = []
        while self.fetch_position < len(self.records) and len(chunk) < min(self.batch, max_records):
            if self.fetch_position not in self.hidden:
                chunk.append(self.records[self.fetch_position])
            self.fetch_position += 1
        return {self.tp: chunk} if chunk else {}

    def last_stable_offset(self, tp: TopicPartition) -> int | None:
        return len(self.records)


async def test_transaction_markers_and_aborted_records_are_not_records_to_process() -> None:
    """An idle partition whose last offsets are a commit marker (or an aborted transaction and its marker)
    is caught up: lag 0, never stalled, never wedged. (monitor's consumer of aimesh.ingest.dlq.v1 was
    reported wedged with "1 records to process" at the offset of ingest's last commit marker.)"""
    for service, log in (
        ("tx-markers", TransactionalLog(4, markers={1, 3})),
        ("tx-aborted", TransactionalLog(9, markers={1, 3, 8}, aborted=frozenset({4, 5, 6, 7}))),
    ):
        handled: list[int] = []

        async def handle(event: Event, handled: list[int] = handled) -> None:
            handled.append(event.offset)

        consumer = consumer_of(log, handler=handle, service=service)
        task = asyncio.create_task(consumer.run())
        async with asyncio.timeout(5):
            while len(handled) < 2:
                await asyncio.sleep(0.005)
        await asyncio.sleep(0.3)
        assert handled == [0, 2]
        assert consumer.wedged(0.1) is None, "a partition whose only unread offsets are markers is caught up"
        assert sample("aimesh_consumer_lag", service) == 0.0
        assert sample("aimesh_consumer_partition_stalled_seconds", service) == 0.0
        consumer.stop()
        await task
