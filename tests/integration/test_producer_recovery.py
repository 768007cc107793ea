"""A broker outage longer than every producer timeout, on a PRIVATE Kafka broker (never the shared one).

A producer (``EventProducer`` under a ``SpoolingSender``, as inference and the log shipper use it) sends
steadily; the broker is stopped for longer than the producer's request and delivery timeouts, then
started again on the same data. Afterwards every event id that was sent is on the topic (0 lost;
duplicates, by event id, only), sends are acknowledged directly again within a bound after the broker
answers, and no process was restarted. Prints the counts and times.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from aimesh.api.inference.v1 import events_pb2
from aimesh.core.bus import EventProducer
from aimesh.core.spool import Delivery, Spool, SpoolingSender
from aimesh.devstack.kafka import Kafka
from aimesh.devstack.paths import Paths

pytestmark = pytest.mark.integration

TOPIC = "test.producer-recovery"
PARTITIONS = 3
OUTAGE_S = 25.0
"""Longer than the client timeouts below (request 5 s, delivery 10 s, spool after 3 s)."""
RECOVERY_BOUND_S = 30.0
"""After the broker answers again, a send must be acknowledged directly within this long."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class PrivatePaths(Paths):
    """A private home (data, logs, PID files) that reuses the shared Kafka jars."""

    shared_dist: Path = field(default_factory=lambda: Paths.default().dist)

    @property
    def dist(self) -> Path:
        return self.shared_dist


@pytest.fixture
def private_kafka(tmp_path: Path) -> Iterator[Kafka]:
    paths = PrivatePaths(home=tmp_path / "home", repo=Paths.default().repo)
    paths.ensure()
    kafka = Kafka(paths, port=free_port(), controller_port=free_port(), heap="384m")
    if kafka.installed_version() is None:
        pytest.fail(f"no Kafka jars in {kafka.libs}; run `aimesh up --infra-only` once (it installs them)")
    kafka.start()
    try:
        kafka.wait_ready(180)
        yield kafka
    finally:
        kafka.stop()


async def read_event_ids(bootstrap: str, topic: str) -> list[str]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        ids: list[str] = []
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                ids.extend(dict(r.headers)["ce_id"].decode() for r in records)
        return ids
    finally:
        await consumer.stop()


async def test_sends_recover_after_an_outage_longer_than_every_timeout_with_nothing_lost(
    private_kafka: Kafka, tmp_path: Path
) -> None:
    bootstrap = private_kafka.bootstrap
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(TOPIC, num_partitions=PARTITIONS, replication_factor=1)])
    await admin.close()

    producer = EventProducer(
        bootstrap, source="recovery-test", request_timeout_ms=5000, retry_backoff_ms=200, delivery_timeout_s=10.0
    )
    await producer.start()
    spool = await Spool.open(tmp_path / "spool" / "predictions.db", name="recovery-test")
    sender = SpoolingSender(producer, spool, source="recovery-test", spool_after_s=3.0, retry_interval_s=0.5)
    drainer = asyncio.create_task(sender.run())
    outcomes: dict[str, asyncio.Future[object]] = {}
    acknowledged_at: list[float] = []
    stop_sending = asyncio.Event()

    async def send_steadily() -> None:
        i = 0
        while not stop_sending.is_set():
            event_id = f"ev-{i}"
            fut = await sender.send_event(
                TOPIC, events_pb2.Prediction(event_id=event_id), key=f"k{i % 7}", event_id=event_id
            )
            outcomes[event_id] = fut
            fut.add_done_callback(
                lambda f: (
                    acknowledged_at.append(time.monotonic())
                    if not f.cancelled() and f.exception() is None and f.result() == Delivery.ACKNOWLEDGED
                    else None
                )
            )
            i += 1
            await asyncio.sleep(0.02)

    sending = asyncio.create_task(send_steadily())
    await asyncio.sleep(5)
    stopped_at = time.monotonic()
    await asyncio.to_thread(private_kafka.stop)
    await asyncio.sleep(OUTAGE_S)
    await asyncio.to_thread(private_kafka.start)
    await asyncio.to_thread(private_kafka.wait_ready, 180)
    back_at = time.monotonic()
    deadline = back_at + RECOVERY_BOUND_S
    while not [t for t in acknowledged_at if t > back_at] or not spool.empty:
        assert time.monotonic() < deadline + 60, (
            f"not recovered: spool depth {spool.depth}, replacements {producer.healer.replacements}"
        )
        await asyncio.sleep(0.2)
    first_direct_ack = min(t for t in acknowledged_at if t > back_at) - back_at
    await asyncio.sleep(3)
    stop_sending.set()
    await sending
    results = await asyncio.wait_for(asyncio.gather(*outcomes.values(), return_exceptions=True), 60)
    while not spool.empty:
        await asyncio.sleep(0.2)
    await sender.stop()
    await drainer
    await producer.stop()
    await spool.close()

    failures = [r for r in results if isinstance(r, BaseException)]
    on_topic = Counter(await read_event_ids(bootstrap, TOPIC))
    missing = set(outcomes) - set(on_topic)
    duplicates = sum(n - 1 for n in on_topic.values())
    print(
        f"\nproducer recovery: sent {len(outcomes)} events, broker down {back_at - stopped_at:.1f}s "
        f"(stopped {OUTAGE_S:.0f}s + restart); acknowledged directly {sender.acknowledged}, spooled {sender.spooled}, "
        f"failed {len(failures)}; on the topic {len(on_topic)} distinct ids, {duplicates} duplicates, "
        f"{len(missing)} missing; producer replacements {producer.healer.replacements}, "
        f"re-sends {producer.healer.resends}; first direct acknowledgement {first_direct_ack:.1f}s after the "
        f"broker answered; spool drained to {spool.depth}"
    )
    assert failures == []
    assert missing == set(), f"lost: {sorted(missing)[:10]}"
    assert sender.spooled > 0, "the outage did make records wait in the spool"
    assert first_direct_ack < RECOVERY_BOUND_S


async def test_the_producer_alone_heals_and_resends_in_order_after_its_batches_expired(private_kafka: Kafka) -> None:
    """Without a spool: batches expire during the outage (request timeout 5 s), which left aiokafka's
    idempotent producer failing every later send with OutOfOrderSequenceNumber; the replacement delivers
    every record (in per-key order of first occurrence) once the broker is back."""
    bootstrap = private_kafka.bootstrap
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(TOPIC, num_partitions=PARTITIONS, replication_factor=1)])
    await admin.close()
    producer = EventProducer(  # aiokafka's default 16 KiB batches: many batches in flight per partition expire
        bootstrap,
        source="heal-test",
        request_timeout_ms=5000,
        retry_backoff_ms=200,
        delivery_timeout_s=180.0,
        max_batch_size=16_384,
    )
    await producer.start()
    futures: list[asyncio.Future[object]] = []

    async def send(i: int) -> None:
        futures.append(
            await producer.send_event(
                TOPIC, events_pb2.Prediction(event_id=f"h-{i}"), key=f"k{i % 5}", event_id=f"h-{i}"
            )
        )

    for i in range(100):
        await send(i)
    await asyncio.gather(*futures)
    await asyncio.to_thread(private_kafka.stop)
    for i in range(100, 400):
        await send(i)
        await asyncio.sleep(0.05)
    await asyncio.sleep(5)
    await asyncio.to_thread(private_kafka.start)
    await asyncio.to_thread(private_kafka.wait_ready, 180)
    back_at = time.monotonic()
    results = await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), 120)
    recovered_s = time.monotonic() - back_at
    for i in range(400, 450):
        await send(i)
    await asyncio.gather(*futures[400:])
    await producer.stop()
    failures = [r for r in results if isinstance(r, BaseException)]
    ids = await read_event_ids(bootstrap, TOPIC)
    on_topic = Counter(ids)
    first = list(dict.fromkeys(ids))
    per_key: dict[int, list[int]] = {}
    for event_id in first:
        n = int(event_id.removeprefix("h-"))
        per_key.setdefault(n % 5, []).append(n)
    print(
        f"\nproducer healing: 450 events, {len(failures)} failed, {len(on_topic)} distinct on the topic, "
        f"{sum(c - 1 for c in on_topic.values())} duplicates; replacements {producer.healer.replacements}, "
        f"re-sends {producer.healer.resends}; every pending record acknowledged {recovered_s:.1f}s after the broker "
        "answered"
    )
    assert failures == []
    assert set(on_topic) == {f"h-{i}" for i in range(450)}
    assert all(seq == sorted(seq) for seq in per_key.values()), "per-key order of first occurrence"
    assert producer.healer.replacements >= 1
    assert recovered_s < RECOVERY_BOUND_S
