"""EventConsumer with ``topics_provider``: the subscription follows the provider between polls.

In-memory fakes only. ``GroupFake`` stands in for aiokafka's consumer the way a consumer group behaves:
``subscribe`` replaces the subscription and drops the assignment; the rebalance runs during the next
poll (the listener's revocation first, then the new assignment, each partition starting at its committed
offset, or at 0 when the group never committed it); ``commit`` refuses partitions that are not assigned.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import pytest
from aiokafka import TopicPartition

from aimesh.api.ingest.v1 import events_pb2
from aimesh.core.bus import EventConsumer
from aimesh.core.events import Event
from aimesh.core.testing import FakeRecord, TransactionalRecordingSender


class GroupFake:
    """aiokafka's consumer in a group of one, over partition 0 of every topic in ``records``."""

    def __init__(self, records: dict[str, int], *, batch: int = 3) -> None:
        self.records = {
            t: [FakeRecord(t, 0, i, b"k", f"{t}-{i}".encode()) for i in range(n)] for t, n in records.items()
        }
        self.batch = batch
        self.subscriptions: list[list[str]] = []
        self.unsubscribes = 0
        self.committed: dict[TopicPartition, int] = {}
        self.commits: list[dict[TopicPartition, int]] = []
        self.revoked: list[set[TopicPartition]] = []
        self.listener: Any = None
        self._assigned: set[TopicPartition] = set()
        self._previous: set[TopicPartition] = set()
        self._position: dict[TopicPartition, int] = {}
        self._rebalance_pending = False
        self.polls = 0

    def publish(self, topic: str, count: int) -> None:
        start = len(self.records.setdefault(topic, []))
        self.records[topic] += [
            FakeRecord(topic, 0, start + i, b"k", f"{topic}-{start + i}".encode()) for i in range(count)
        ]

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def subscribe(self, topics: Sequence[str], listener: Any) -> None:
        self.subscriptions.append(list(topics))
        self.listener = listener
        self._previous, self._assigned = self._previous | self._assigned, set()
        self._wanted = list(topics)
        self._rebalance_pending = True

    def unsubscribe(self) -> None:
        self.unsubscribes += 1
        self._assigned = set()
        self._rebalance_pending = False

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[FakeRecord]]:
        await asyncio.sleep(0)
        self.polls += 1
        if self._rebalance_pending:
            self._rebalance_pending = False
            revoked, self._previous = self._previous, set()
            self.revoked.append(revoked)
            await self.listener.on_partitions_revoked(revoked)
            self._assigned = {TopicPartition(t, 0) for t in self._wanted if t in self.records}
            self._position = {tp: self.committed.get(tp, 0) for tp in self._assigned}
            await self.listener.on_partitions_assigned(sorted(self._assigned))
            return {}
        out: dict[TopicPartition, list[FakeRecord]] = {}
        for tp in sorted(self._assigned):
            chunk = self.records[tp.topic][self._position[tp] : self._position[tp] + min(self.batch, max_records)]
            if chunk:
                out[tp] = chunk
                self._position[tp] += len(chunk)
        return out

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self._position[tp] = offset

    async def position(self, tp: TopicPartition) -> int:
        return self._position[tp]

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        if not self._assigned:
            raise AssertionError("commit without an assignment (aiokafka: IllegalStateError)")
        if unassigned := set(offsets) - self._assigned:
            raise AssertionError(f"commit of unassigned partitions {unassigned}")
        self.commits.append(dict(offsets))
        self.committed.update(offsets)

    def assignment(self) -> set[TopicPartition]:
        return set(self._assigned)

    def highwater(self, tp: TopicPartition) -> int:
        return len(self.records[tp.topic])

    def last_stable_offset(self, tp: TopicPartition) -> int | None:
        return None


def consumer_of(fake: GroupFake, provider: Callable[[], Iterable[str]], **options: Any) -> EventConsumer:
    consumer = EventConsumer(
        "127.0.0.1:1", group_id="g", topics_provider=provider, service="t", poll_timeout_ms=10, **options
    )
    consumer._consumer = fake
    return consumer


async def run_until(consumer: EventConsumer, done: Callable[[], bool]) -> None:
    task = asyncio.create_task(consumer.run())
    async with asyncio.timeout(5):
        while not done():
            assert not task.done(), task.result()
            await asyncio.sleep(0.005)
    consumer.stop()
    await task


async def test_a_consumer_without_topics_idles_then_follows_the_provider_without_redelivering() -> None:
    fake = GroupFake({"a": 7, "b": 5})
    topics: list[str] = []
    seen: list[str] = []

    async def handle(event: Event) -> None:
        seen.append(event.value.decode())

    consumer = consumer_of(fake, lambda: topics, handler=handle)
    task = asyncio.create_task(consumer.run())
    try:
        idle_since = consumer.last_poll
        await asyncio.sleep(0.05)
        assert fake.subscriptions == [] and fake.polls == 0, "no topic: no subscription, no poll"
        assert consumer.last_poll > idle_since, "the liveness signal moves while idle"

        topics.append("a")
        async with asyncio.timeout(5):
            while len(seen) < 7:
                await asyncio.sleep(0.005)
        topics.append("b")
        fake.publish("a", 2)
        async with asyncio.timeout(5):
            while len(seen) < 14 or fake.committed.get(TopicPartition("b", 0)) != 5:
                await asyncio.sleep(0.005)
    finally:
        consumer.stop()
        await task

    assert fake.subscriptions == [["a"], ["a", "b"]]
    assert sorted(seen) == sorted([f"a-{i}" for i in range(9)] + [f"b-{i}" for i in range(5)]), "each record once"
    assert [s for s in seen if s.startswith("b")] == [f"b-{i}" for i in range(5)], "a new topic from its start"
    assert fake.revoked[1] == {TopicPartition("a", 0)}, "the re-subscription revoked the old assignment"
    assert fake.committed == {TopicPartition("a", 0): 9, TopicPartition("b", 0): 5}
    assert consumer.topics == ["a", "b"]


async def test_transactional_batches_survive_a_re_subscription_with_nothing_aborted() -> None:
    fake = GroupFake({"a": 6, "b": 4}, batch=4)
    tx = TransactionalRecordingSender()
    real_commit = tx.commit

    async def commit(offsets: Any, group_id: str) -> None:
        await real_commit(offsets, group_id)
        fake.committed.update(offsets)  # the group's offsets, committed through the transaction

    tx.commit = commit  # type: ignore[method-assign]
    topics = ["a"]

    async def forward(events: Sequence[Event]) -> None:
        futures = [
            await tx.send_event("out", events_pb2.CanonicalRecord(event_id=e.value.decode()), key=None) for e in events
        ]
        await asyncio.gather(*futures)
        if any(e.topic == "a" and e.offset == 5 for e in events):
            topics.append("b")  # registered while a batch is in hand: picked up before the next poll

    consumer = consumer_of(fake, lambda: topics, batch_handler=forward, transactions=tx)
    await run_until(consumer, lambda: len(tx.sent) == 10)

    assert fake.subscriptions == [["a"], ["a", "b"]]
    sent = sorted(s.message.event_id for s in tx.sent)  # type: ignore[attr-defined]
    assert sent == sorted([f"a-{i}" for i in range(6)] + [f"b-{i}" for i in range(4)]), "each record once"
    assert tx.aborts == 0 and fake.commits == [], "offsets only through the transactions"
    assert fake.committed == {TopicPartition("a", 0): 6, TopicPartition("b", 0): 4}


async def test_a_failing_provider_keeps_the_subscription_and_an_empty_set_unsubscribes() -> None:
    fake = GroupFake({"a": 3})
    calls = {"n": 0}
    wanted: list[str] = ["a"]
    seen: list[int] = []

    def provider() -> list[str]:
        calls["n"] += 1
        if calls["n"] == 5:
            raise RuntimeError("registry down")
        return wanted

    async def handle(event: Event) -> None:
        seen.append(event.offset)

    consumer = consumer_of(fake, provider, handler=handle)
    task = asyncio.create_task(consumer.run())
    try:
        async with asyncio.timeout(5):
            while calls["n"] < 8 or len(seen) < 3:
                await asyncio.sleep(0.005)
        assert fake.subscriptions == [["a"]], "a provider failure is no change"
        wanted.clear()
        async with asyncio.timeout(5):
            while not fake.unsubscribes:
                await asyncio.sleep(0.005)
    finally:
        consumer.stop()
        await task
    assert seen == [0, 1, 2] and fake.committed == {TopicPartition("a", 0): 3}


def test_topics_and_a_provider_are_exclusive() -> None:
    async def handle(event: Event) -> None:
        return None

    with pytest.raises(ValueError, match="not both"):
        EventConsumer(
            "127.0.0.1:1", group_id="g", topics=["a"], topics_provider=lambda: ["b"], service="t", handler=handle
        )
