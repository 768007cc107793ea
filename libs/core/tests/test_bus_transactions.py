"""EventConsumer with ``transactions``: each partition batch's sends and offsets go through one transaction.

In-memory fakes only: ``FakeKafkaConsumer`` for aiokafka's consumer and ``TransactionalRecordingSender``
for the transactional producer (sends become visible only when the transaction commits).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaTimeoutError
from prometheus_client import REGISTRY

from aimesh.api.ingest.v1 import events_pb2
from aimesh.core.bus import EventConsumer, TransactionalProducer
from aimesh.core.events import Event
from aimesh.core.testing import FakeKafkaConsumer, FakeRecord, TransactionalRecordingSender

TP = TopicPartition("up", 0)


def transactional_consumer(
    fake: FakeKafkaConsumer, tx: TransactionalRecordingSender, batch_handler: object, service: str = "t"
) -> EventConsumer:
    consumer = EventConsumer(
        "127.0.0.1:1",
        group_id="g",
        topics=[TP.topic],
        service=service,
        batch_handler=batch_handler,  # type: ignore[arg-type]
        transactions=tx,
        retry_backoff_s=0.01,
    )
    consumer._consumer = fake
    return consumer


async def run_until(consumer: EventConsumer, done: object) -> None:
    task = asyncio.create_task(consumer.run())
    async with asyncio.timeout(5):
        while not done():  # type: ignore[operator]
            await asyncio.sleep(0.01)
    consumer.stop()
    await task


def forward(tx: TransactionalRecordingSender, fail_on_call: int | None = None) -> tuple[list[list[int]], object]:
    """A batch handler that sends one record per event through ``tx`` and may raise on one call."""
    calls: list[list[int]] = []

    async def handle(events: Sequence[Event]) -> None:
        calls.append([e.offset for e in events])
        futures = [
            await tx.send_event("out", events_pb2.CanonicalRecord(event_id=str(e.offset)), key=None) for e in events
        ]
        await asyncio.gather(*futures)
        if len(calls) == fail_on_call:
            raise ConnectionError("lake down")

    return calls, handle


def sent_ids(tx: TransactionalRecordingSender) -> list[str]:
    return [s.message.event_id for s in tx.sent]  # type: ignore[attr-defined]


async def test_each_batch_commits_its_sends_and_offsets_in_one_transaction_and_never_commits_itself() -> None:
    fake = FakeKafkaConsumer([b"v"] * 10, batch=4, tp=TP)
    tx = TransactionalRecordingSender()
    calls, handle = forward(tx)

    await run_until(transactional_consumer(fake, tx, handle), lambda: len(tx.commits) == 3)

    assert calls == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert [c[TP] for c in tx.commits] == [4, 8, 10]
    assert sent_ids(tx) == [str(i) for i in range(10)]
    assert fake.commits == [], "offsets go through the transaction only"


async def test_a_failing_handler_aborts_the_transaction_and_the_batch_is_redone_once_visible() -> None:
    fake = FakeKafkaConsumer([b"v"] * 6, batch=3, tp=TP)
    tx = TransactionalRecordingSender()
    calls, handle = forward(tx, fail_on_call=2)

    await run_until(transactional_consumer(fake, tx, handle), lambda: len(tx.commits) == 2)

    assert calls == [[0, 1, 2], [3, 4, 5], [3, 4, 5]]
    assert tx.aborts == 1 and [c[TP] for c in tx.commits] == [3, 6]
    assert sent_ids(tx) == [str(i) for i in range(6)], "the aborted attempt's sends never became visible"


async def test_a_failing_commit_aborts_and_rewinds() -> None:
    fake = FakeKafkaConsumer([b"v"] * 3, batch=3, tp=TP)
    tx = TransactionalRecordingSender(fail_commits=1)
    calls, handle = forward(tx)

    await run_until(transactional_consumer(fake, tx, handle), lambda: len(tx.commits) == 1)

    assert calls == [[0, 1, 2], [0, 1, 2]]
    assert tx.aborts == 1 and sent_ids(tx) == ["0", "1", "2"]


async def test_a_rebalance_waits_for_the_open_transaction_and_drops_the_rest_of_the_poll() -> None:
    fake = FakeKafkaConsumer([b"v"] * 4, batch=4, tp=TP)
    other = TopicPartition("up", 1)
    tx = TransactionalRecordingSender()
    release = asyncio.Event()
    calls: list[tuple[int, list[int]]] = []

    async def handle(events: Sequence[Event]) -> None:
        calls.append((events[0].partition, [e.offset for e in events]))
        await release.wait()

    async def two_partitions(timeout_ms: int, max_records: int) -> dict[TopicPartition, list[FakeRecord]]:
        await asyncio.sleep(0)
        fake.polls += 1
        if fake.polls == 1:
            moved = [FakeRecord(other.topic, other.partition, r.offset, r.key, r.value) for r in fake.records]
            return {TP: fake.records[:2], other: moved[:2]}
        return {}

    fake.getmany = two_partitions  # type: ignore[method-assign]
    consumer = transactional_consumer(fake, tx, handle)
    task = asyncio.create_task(consumer.run())
    async with asyncio.timeout(5):
        while not calls:
            await asyncio.sleep(0.01)
        revoke = asyncio.create_task(fake.listener.on_partitions_revoked([TP, other]))
        await asyncio.sleep(0.05)
        assert not revoke.done(), "the revocation waits for the batch in hand"
        release.set()
        await revoke
        assert tx.commits == [{TP: 2}], "the batch in hand committed before the revocation finished"
        while fake.polls < 2:
            await asyncio.sleep(0.01)
    consumer.stop()
    await task

    assert calls == [(0, [0, 1])], "partition 1's records polled before the rebalance were not handled"


async def test_consumer_lag_is_the_distance_to_the_partition_end_after_each_poll_and_batch() -> None:
    fake = FakeKafkaConsumer([b"v"] * 10, batch=4, tp=TP)
    tx = TransactionalRecordingSender()
    lags: list[float | None] = []
    _, forward_handle = forward(tx)

    async def handle(events: Sequence[Event]) -> None:
        lags.append(
            REGISTRY.get_sample_value("aimesh_consumer_lag", {"service": "lag-t", "topic": "up", "partition": "0"})
        )
        await forward_handle(events)  # type: ignore[operator]

    await run_until(transactional_consumer(fake, tx, handle, service="lag-t"), lambda: len(tx.commits) == 3)

    final = REGISTRY.get_sample_value("aimesh_consumer_lag", {"service": "lag-t", "topic": "up", "partition": "0"})
    assert lags == [10.0, 6.0, 2.0] and final == 0.0


def test_transactions_need_a_batch_handler() -> None:
    async def one(event: Event) -> None:
        return None

    with pytest.raises(ValueError, match="batch_handler"):
        EventConsumer(
            "127.0.0.1:1",
            group_id="g",
            topics=["up"],
            service="t",
            handler=one,
            transactions=TransactionalRecordingSender(),
        )


class _FakeAioProducer:
    def __init__(self) -> None:
        self.aborted = 0

    async def begin_transaction(self) -> None:
        return None

    async def abort_transaction(self) -> None:
        self.aborted += 1


@pytest.mark.parametrize(
    ("cause", "replaced"),
    [(KafkaTimeoutError(), True), (TimeoutError(), True), (ValueError("bad record"), False), (None, False)],
)
def test_transaction_ended_by_a_kafka_error_replaces_the_producer(cause: BaseException | None, replaced: bool) -> None:
    """After a Kafka error or a timeout inside a transaction the next begin() starts on a new producer
    (aiokafka's transaction state may no longer match the coordinator's); an application error does not."""
    fake = _FakeAioProducer()
    replacements: list[int] = []

    async def replace() -> None:
        replacements.append(1)

    async def scenario() -> None:
        producer = TransactionalProducer("127.0.0.1:1", source="t", transactional_id="t-0")
        producer._kafka.replace = replace  # type: ignore[method-assign]
        producer._kafka._client = fake  # type: ignore[assignment]
        await producer.begin()
        await producer.abort(cause)
        await producer.begin()

    asyncio.run(scenario())
    assert fake.aborted == 1
    assert replacements == ([1] if replaced else [])
