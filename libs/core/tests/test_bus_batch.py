"""EventConsumer's batch hook: one call per partition batch, commit after it returns, rewind when it raises.

The aiokafka consumer is replaced by ``aimesh.core.testing.FakeKafkaConsumer`` (no network): it serves
the records from a partition's position, remembers seeks and records commits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from aiokafka import TopicPartition

from aimesh.core.bus import EventConsumer
from aimesh.core.events import Event
from aimesh.core.testing import FakeKafkaConsumer

TP = TopicPartition("up", 0)


def fake_kafka(n: int, batch: int) -> FakeKafkaConsumer:
    return FakeKafkaConsumer([f"v{i}".encode() for i in range(n)], batch=batch, tp=TP)


def consumer_with(fake: FakeKafkaConsumer, batch_handler: Any) -> EventConsumer:
    consumer = EventConsumer(
        "127.0.0.1:1", group_id="g", topics=["up"], service="t", batch_handler=batch_handler, retry_backoff_s=0.01
    )
    consumer._consumer = fake
    return consumer


async def run_until(consumer: EventConsumer, done: Any) -> None:
    task = asyncio.create_task(consumer.run())
    async with asyncio.timeout(5):
        while not done():
            await asyncio.sleep(0.01)
    consumer.stop()
    await task


async def test_batch_handler_gets_each_partition_batch_and_offsets_are_committed_after_it() -> None:
    fake = fake_kafka(10, batch=4)
    batches: list[list[int]] = []

    async def handle(events: Sequence[Event]) -> None:
        assert not fake.commits or fake.commits[-1][TP] == batches[-1][-1] + 1
        batches.append([e.offset for e in events])

    consumer = consumer_with(fake, handle)
    await run_until(consumer, lambda: sum(map(len, batches)) == 10)

    assert batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert [c[TP] for c in fake.commits] == [4, 8, 10]


async def test_a_batch_failing_on_a_dependency_is_rewound_and_retried_whole_without_committing_it() -> None:
    fake = fake_kafka(6, batch=3)
    calls: list[list[int]] = []

    async def handle(events: Sequence[Event]) -> None:
        calls.append([e.offset for e in events])
        if len(calls) == 2:
            raise ConnectionError("lake down")

    consumer = consumer_with(fake, handle)
    await run_until(consumer, lambda: len(calls) >= 3)

    assert calls == [[0, 1, 2], [3, 4, 5], [3, 4, 5]]
    assert [c[TP] for c in fake.commits] == [3, 6]


def test_exactly_one_of_handler_and_batch_handler() -> None:
    async def one(event: Event) -> None:
        return None

    async def many(events: Sequence[Event]) -> None:
        return None

    with pytest.raises(ValueError, match="exactly one"):
        EventConsumer("127.0.0.1:1", group_id="g", topics=["up"], service="t")
    with pytest.raises(ValueError, match="exactly one"):
        EventConsumer("127.0.0.1:1", group_id="g", topics=["up"], service="t", handler=one, batch_handler=many)
