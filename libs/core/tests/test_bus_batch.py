"""EventConsumer's batch hook: one call per partition batch, commit after it returns, rewind when it raises.

The aiokafka consumer is replaced by an in-memory fake (no network): it serves the records from a
partition's position, remembers seeks and records commits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from aiokafka import TopicPartition

from aimesh.core.bus import EventConsumer
from aimesh.core.events import Event

TP = TopicPartition("up", 0)


@dataclass
class FakeRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    timestamp: int


class FakeKafkaConsumer:
    def __init__(self, n: int, batch: int) -> None:
        self.records = [FakeRecord(TP.topic, TP.partition, i, b"k", f"v{i}".encode(), [], 0) for i in range(n)]
        self.position = 0
        self.batch = batch
        self.commits: list[dict[TopicPartition, int]] = []

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def subscribe(self, topics: Sequence[str], listener: Any) -> None:
        return None

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[FakeRecord]]:
        await asyncio.sleep(0)
        chunk = self.records[self.position : self.position + min(self.batch, max_records)]
        self.position += len(chunk)
        return {TP: chunk} if chunk else {}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.position = offset

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(dict(offsets))


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
    fake = FakeKafkaConsumer(10, batch=4)
    batches: list[list[int]] = []

    async def handle(events: Sequence[Event]) -> None:
        assert not fake.commits or fake.commits[-1][TP] == batches[-1][-1] + 1
        batches.append([e.offset for e in events])

    consumer = consumer_with(fake, handle)
    await run_until(consumer, lambda: sum(map(len, batches)) == 10)

    assert batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert [c[TP] for c in fake.commits] == [4, 8, 10]


async def test_a_failing_batch_is_rewound_and_retried_whole_without_committing_it() -> None:
    fake = FakeKafkaConsumer(6, batch=3)
    calls: list[list[int]] = []

    async def handle(events: Sequence[Event]) -> None:
        calls.append([e.offset for e in events])
        if len(calls) == 2:
            raise RuntimeError("lake down")

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
