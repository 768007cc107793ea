"""SelfHealingProducer: replaced on sequence/fatal errors, unacknowledged records re-sent in order."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from typing import Any

import pytest
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    OutOfOrderSequenceNumber,
    ProducerClosed,
    TopicAuthorizationFailedError,
    UnknownProducerId,
)

from aimesh.core.producer import DeliveryTimeout, SelfHealingProducer


class FakeCluster:
    """The broker side: what was written (``log``), which producers were built, whether it answers."""

    def __init__(self) -> None:
        self.log: list[bytes] = []
        self.producers: list[FakeProducer] = []
        self.failed_starts = 0
        self.down = False

    def factory(self) -> FakeProducer:
        producer = FakeProducer(self)
        self.producers.append(producer)
        return producer

    @property
    def current(self) -> FakeProducer:
        return self.producers[-1]


class FakeProducer:
    """A fake aiokafka producer: acknowledges on ``ack_all``; after ``break_with`` every ack fails."""

    def __init__(self, cluster: FakeCluster) -> None:
        self.cluster = cluster
        self.pending: list[tuple[bytes, asyncio.Future[Any]]] = []
        self.broken: BaseException | None = None
        self.auto_ack = False
        self.started = self.stopped = False

    async def start(self) -> None:
        if self.cluster.down:
            self.cluster.failed_starts += 1
            raise KafkaConnectionError("no broker")
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def send(
        self, topic: str, value: bytes, *, key: bytes | None, headers: list[tuple[str, bytes]]
    ) -> asyncio.Future[Any]:
        await asyncio.sleep(0)
        if len(value) > 1000:
            raise MessageSizeTooLargeError()
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.broken is not None:
            fut.set_exception(self.broken)
        elif self.auto_ack:
            self.cluster.log.append(value)
            fut.set_result(len(self.cluster.log))
        else:
            self.pending.append((value, fut))
        return fut

    def ack(self, n: int | None = None) -> None:
        todo, self.pending = self.pending[:n], self.pending[len(self.pending) if n is None else n :]
        for value, fut in todo:
            self.cluster.log.append(value)
            fut.set_result(len(self.cluster.log))

    def break_with(self, exc: BaseException) -> None:
        self.broken = exc
        todo, self.pending = self.pending, []
        for _, fut in todo:
            fut.set_exception(exc)


async def until(condition: Any, timeout: float = 2.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


def healer(cluster: FakeCluster, **kwargs: Any) -> SelfHealingProducer:
    kwargs.setdefault("delivery_timeout_s", 5.0)
    return SelfHealingProducer(cluster.factory, name="test", restart_backoff_s=(0.01, 0.02), **kwargs)


async def test_out_of_order_sequence_replaces_the_producer_and_resends_in_order() -> None:
    cluster = FakeCluster()
    producer = healer(cluster)
    await producer.start()
    futures = [await producer.send("t", f"r{i}".encode(), key=b"k", headers=[]) for i in range(10)]
    cluster.current.ack(3)
    cluster.current.break_with(OutOfOrderSequenceNumber())
    await until(lambda: len(cluster.producers) == 2 and len(cluster.current.pending) == 7)
    assert cluster.producers[0].stopped, "the broken producer is closed"
    cluster.current.ack()
    await asyncio.gather(*futures)
    assert cluster.log == [f"r{i}".encode() for i in range(10)]
    assert (producer.replacements, producer.resends, producer.unacknowledged) == (1, 7, 0)
    cluster.current.auto_ack = True
    assert await (await producer.send("t", b"after", key=b"k", headers=[])) == 11


@pytest.mark.parametrize(
    "error", [UnknownProducerId(), KafkaTimeoutError(), ProducerClosed(), KafkaConnectionError("gone")]
)
async def test_every_fatal_or_timeout_error_heals(error: BaseException) -> None:
    cluster = FakeCluster()
    producer = healer(cluster)
    await producer.start()
    fut = await producer.send("t", b"x", key=None, headers=[])
    cluster.current.break_with(error)
    await until(lambda: len(cluster.producers) == 2 and len(cluster.current.pending) == 1)
    cluster.current.ack()
    assert await asyncio.wait_for(fut, 2.0) == 1 and producer.replacements == 1


async def test_sends_during_a_replacement_queue_behind_the_resends() -> None:
    cluster = FakeCluster()
    producer = healer(cluster)
    await producer.start()
    first = [await producer.send("t", f"a{i}".encode(), key=b"k", headers=[]) for i in range(5)]
    cluster.down = True
    cluster.current.break_with(OutOfOrderSequenceNumber())
    await until(lambda: cluster.failed_starts >= 2)
    assert producer.healing
    later = [await producer.send("t", f"b{i}".encode(), key=b"k", headers=[]) for i in range(5)]
    assert all(not f.done() for f in first + later)
    cluster.down = False
    await until(lambda: cluster.current.started and len(cluster.current.pending) == 10)
    cluster.current.ack()
    await asyncio.gather(*first, *later)
    assert cluster.log == [f"a{i}".encode() for i in range(5)] + [f"b{i}".encode() for i in range(5)]
    assert producer.resends == 5, "only the records the broken producer had are re-sends"


async def test_a_replacement_that_breaks_while_resending_is_replaced_too() -> None:
    cluster = FakeCluster()
    producer = healer(cluster)
    await producer.start()
    futures = [await producer.send("t", f"r{i}".encode(), key=b"k", headers=[]) for i in range(4)]
    cluster.current.break_with(OutOfOrderSequenceNumber())
    await until(lambda: len(cluster.producers) == 2 and len(cluster.current.pending) == 4)
    cluster.current.break_with(UnknownProducerId())
    await until(lambda: len(cluster.producers) == 3 and len(cluster.current.pending) == 4)
    cluster.current.ack()
    await asyncio.gather(*futures)
    assert cluster.log == [f"r{i}".encode() for i in range(4)] and producer.replacements == 2


async def test_concurrent_senders_keep_per_key_order_across_replacements() -> None:
    cluster = FakeCluster()
    producer = healer(cluster)
    await producer.start()
    rng = random.Random(7)

    async def sender(key: int) -> list[asyncio.Future[Any]]:
        futures = []
        for i in range(30):
            futures.append(await producer.send("t", f"{key}:{i}".encode(), key=str(key).encode(), headers=[]))
            await asyncio.sleep(rng.random() / 1000)
        return futures

    async def chaos() -> None:
        for n in range(1, 6):
            await asyncio.sleep(0.01)
            await until(lambda: bool(cluster.current.pending))
            cluster.current.ack(rng.randrange(0, len(cluster.current.pending)))  # at least one left to fail
            cluster.current.break_with(OutOfOrderSequenceNumber())
            # each break is one replacement: wait for it (however slow the machine) before the next break
            await until(lambda n=n: producer.replacements >= n and not producer.healing)  # type: ignore[misc]

    senders = [asyncio.create_task(sender(k)) for k in range(20)]
    await chaos()
    futures = [f for task in senders for f in await task]

    def acknowledge_everything() -> bool:
        cluster.current.auto_ack = True
        cluster.current.ack()
        return all(f.done() for f in futures)

    await until(acknowledge_everything)
    await asyncio.gather(*futures)
    first_seen: dict[str, list[int]] = defaultdict(list)
    for value in dict.fromkeys(cluster.log):
        key, i = value.decode().split(":")
        first_seen[key].append(int(i))
    assert all(seq == list(range(30)) for seq in first_seen.values()) and len(first_seen) == 20
    assert producer.replacements == 5 and producer.unacknowledged == 0


async def test_record_errors_reach_the_caller_and_are_never_resent() -> None:
    cluster = FakeCluster()
    producer = healer(cluster)
    await producer.start()
    with pytest.raises(MessageSizeTooLargeError):
        await producer.send("t", b"x" * 2000, key=None, headers=[])
    fut = await producer.send("t", b"y", key=None, headers=[])
    _, ack = cluster.current.pending.pop()
    ack.set_exception(TopicAuthorizationFailedError("t"))
    with pytest.raises(TopicAuthorizationFailedError):
        await fut
    assert producer.replacements == 0 and producer.unacknowledged == 0 and len(cluster.producers) == 1


async def test_delivery_timeout_while_the_broker_stays_away() -> None:
    cluster = FakeCluster()
    producer = healer(cluster, delivery_timeout_s=0.2)
    await producer.start()
    fut = await producer.send("t", b"x", key=None, headers=[])
    cluster.down = True
    cluster.current.break_with(KafkaTimeoutError())
    with pytest.raises(DeliveryTimeout):
        await asyncio.wait_for(fut, 2.0)
    assert producer.unacknowledged == 0
    await producer.stop()


async def test_a_cancelled_future_withdraws_its_record_from_resends() -> None:
    cluster = FakeCluster()
    producer = healer(cluster)
    await producer.start()
    keep = await producer.send("t", b"keep", key=None, headers=[])
    drop = await producer.send("t", b"drop", key=None, headers=[])
    drop.cancel()
    cluster.current.break_with(OutOfOrderSequenceNumber())
    await until(lambda: len(cluster.producers) == 2 and not producer.healing)
    cluster.current.ack()
    await keep
    assert cluster.log == [b"keep"]


async def test_stop_fails_what_is_still_unacknowledged() -> None:
    cluster = FakeCluster()
    producer = healer(cluster)
    await producer.start()
    fut = await producer.send("t", b"x", key=None, headers=[])
    await producer.stop()
    with pytest.raises(ProducerClosed):
        await fut
    with pytest.raises(ProducerClosed):
        await producer.send("t", b"y", key=None, headers=[])


async def test_without_healing_sends_pass_through_and_errors_reach_the_caller() -> None:
    cluster = FakeCluster()
    producer = healer(cluster, heal=False)
    await producer.start()
    fut = await producer.send("t", b"x", key=None, headers=[])
    cluster.current.break_with(OutOfOrderSequenceNumber())
    with pytest.raises(OutOfOrderSequenceNumber):
        await fut
    assert len(cluster.producers) == 1
    await producer.replace()
    assert len(cluster.producers) == 2 and cluster.current.started and producer.replacements == 1
