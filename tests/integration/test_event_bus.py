"""The Kafka event bus against a real Apache Kafka broker: publish, consume, commit, redelivery, DLQ."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

import pytest

from aimesh.api.common.v1 import deadletter_pb2
from aimesh.api.inference.v1 import events_pb2 as inference_events
from aimesh.core.bus import EventConsumer, EventProducer
from aimesh.core.deadletter import DeadLetterBounds, DeadLetterPublisher, PayloadStore
from aimesh.core.events import Event
from aimesh.core.testing import run_until

pytestmark = pytest.mark.integration


def prediction(i: int) -> inference_events.Prediction:
    return inference_events.Prediction(request_id=f"req-{i}", score=i / 1000)


async def publish_predictions(bootstrap: str, topic: str, n: int, keys: int = 7) -> list[str]:
    async with EventProducer(bootstrap, source="bus-test") as producer:
        futures = [
            await producer.send_event(topic, prediction(i), key=f"k{i % keys}", event_id=f"ev-{i}") for i in range(n)
        ]
        await asyncio.gather(*futures)
    return [f"ev-{i}" for i in range(n)]


async def test_publish_consume_commit_in_key_order(endpoints, make_topic, unique) -> None:  # type: ignore[no-untyped-def]
    topic = await make_topic("bus")
    ids = await publish_predictions(endpoints.kafka_bootstrap, topic, 300)
    seen: list[Event] = []

    async def handle(event: Event) -> None:
        seen.append(event)

    group = f"g-{unique}"
    consumer = EventConsumer(endpoints.kafka_bootstrap, group_id=group, topics=[topic], handler=handle, service="t")
    await run_until(consumer, lambda: len(seen) >= 300)

    assert sorted(e.id for e in seen) == sorted(ids)
    first = seen[0]
    assert first.ce_type == "aimesh.api.inference.v1.Prediction"
    assert first.header("ce_source") == "bus-test" and first.header("ce_specversion") == "1.0"
    assert first.header("content-type") == "application/protobuf"
    assert first.parse(inference_events.Prediction).request_id.startswith("req-")
    by_key: dict[bytes | None, list[int]] = defaultdict(list)
    for e in seen:
        by_key[e.key].append(int(e.id.split("-")[1]))
    assert all(v == sorted(v) for v in by_key.values()), "one key's events must arrive in order"

    again: list[Event] = []

    async def handle_again(event: Event) -> None:
        again.append(event)

    rerun = EventConsumer(endpoints.kafka_bootstrap, group_id=group, topics=[topic], handler=handle_again, service="t")
    task = asyncio.create_task(rerun.run())
    await asyncio.sleep(6)
    rerun.stop()
    await task
    assert again == [], "offsets were committed, so the same group must not see the events again"


async def test_kill_9_mid_stream_loses_nothing(endpoints, make_topic, unique, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    topic = await make_topic("crash")
    ids = await publish_predictions(endpoints.kafka_bootstrap, topic, 500)
    effects = tmp_path / "effects.txt"
    group = f"g-{unique}"
    script = Path(__file__).with_name("crash_consumer.py")
    proc = subprocess.run(
        [sys.executable, str(script), endpoints.kafka_bootstrap, topic, group, str(effects), "230"],
        timeout=120,
        check=False,
    )
    assert proc.returncode == -9, "the consumer process must have been SIGKILLed mid-stream"
    before_crash = effects.read_text().split()
    assert len(before_crash) == 230

    after: list[str] = []

    async def handle(event: Event) -> None:
        after.append(event.id)

    consumer = EventConsumer(endpoints.kafka_bootstrap, group_id=group, topics=[topic], handler=handle, service="t")
    await run_until(consumer, lambda: set(before_crash) | set(after) >= set(ids))

    assert set(before_crash) | set(after) == set(ids), "no event may be lost across the crash"
    redelivered = Counter(before_crash + after)
    duplicates = sum(c - 1 for c in redelivered.values())
    assert duplicates <= 230, "only effects after the last commit may be redelivered"


async def test_poison_event_is_dead_lettered_with_original_bytes(endpoints, make_topic, unique, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    topic = await make_topic("poison")
    dlq_topic = await make_topic("dlq", partitions=1)
    garbage = b"\xff\x00 this is not a protobuf \x12\xff"
    async with EventProducer(endpoints.kafka_bootstrap, source="bus-test") as producer:
        await producer.publish(topic, prediction(1), key="a", event_id="good-1")
        await producer.send_raw(
            topic,
            garbage,
            key="a",
            headers=[("ce_id", b"bad-1"), ("ce_type", b"aimesh.api.inference.v1.Prediction")],
        )
        await producer.publish(topic, prediction(2), key="a", event_id="good-2")

        handled: list[str] = []

        async def handle(event: Event) -> None:
            event.parse(inference_events.Prediction)
            handled.append(event.id)

        consumer = EventConsumer(
            endpoints.kafka_bootstrap,
            group_id=f"g-{unique}",
            topics=[topic],
            handler=handle,
            service="t",
            dead_letters=DeadLetterPublisher(
                producer, "bus-test", DeadLetterBounds(PayloadStore(tmp_path)), topic=dlq_topic
            ),
        )
        await run_until(consumer, lambda: len(handled) >= 2)
    assert handled == ["good-1", "good-2"], "the poison event must not block the ones after it"

    letters: list[deadletter_pb2.DeadLetter] = []

    async def collect(event: Event) -> None:
        letters.append(event.parse(deadletter_pb2.DeadLetter))

    reader = EventConsumer(
        endpoints.kafka_bootstrap, group_id=f"r-{unique}", topics=[dlq_topic], handler=collect, service="t"
    )
    await run_until(reader, lambda: len(letters) >= 1)
    (letter,) = letters
    assert letter.original_payload == garbage
    assert letter.reason_code == deadletter_pb2.REASON_CODE_DECODE_ERROR and letter.service == "bus-test"
    assert "Prediction" in letter.message
    assert letter.event_id == "bad-1"
    assert letter.upstream.topic == topic and letter.upstream.offset == 1
    assert ("ce_id", b"bad-1") in [(h.key, h.value) for h in letter.original_headers]


async def test_failing_handler_is_retried_not_skipped(endpoints, make_topic, unique) -> None:  # type: ignore[no-untyped-def]
    topic = await make_topic("retry", partitions=1)
    ids = await publish_predictions(endpoints.kafka_bootstrap, topic, 20, keys=1)
    attempts: Counter[str] = Counter()
    done: list[str] = []

    async def flaky(event: Event) -> None:
        attempts[event.id] += 1
        if event.id == "ev-7" and attempts[event.id] <= 2:
            raise ConnectionError("downstream hiccup")
        done.append(event.id)

    consumer = EventConsumer(
        endpoints.kafka_bootstrap,
        group_id=f"g-{unique}",
        topics=[topic],
        handler=flaky,
        service="t",
        retry_backoff_s=0.05,
    )
    await run_until(consumer, lambda: len(done) >= 20)
    assert done == ids, "a failed event is retried in place; nothing after it is handled first"
    assert attempts["ev-7"] == 3


async def test_topic_created_after_the_consumer_started_is_consumed(endpoints, kafka_admin, unique) -> None:  # type: ignore[no-untyped-def]
    topic = f"test.late.{unique}"
    seen: list[str] = []

    async def handle(event: Event) -> None:
        seen.append(event.id)

    consumer = EventConsumer(
        endpoints.kafka_bootstrap, group_id=f"g-{unique}", topics=[topic], handler=handle, service="t"
    )
    task = asyncio.create_task(run_until(consumer, lambda: len(seen) >= 5, within_s=45))
    await asyncio.sleep(3)
    try:
        await publish_predictions(endpoints.kafka_bootstrap, topic, 5)
        await task
    finally:
        await kafka_admin.delete_topics([topic])
    assert sorted(seen) == [f"ev-{i}" for i in range(5)], "events published before discovery are read from the start"


async def test_a_record_failing_forever_is_dead_lettered_once_and_the_partition_moves_on(  # type: ignore[no-untyped-def]
    endpoints, make_topic, unique, tmp_path: Path
) -> None:
    topic = await make_topic("stuck", partitions=1)
    dlq_topic = await make_topic("stuck-dlq", partitions=1)
    ids = await publish_predictions(endpoints.kafka_bootstrap, topic, 30, keys=1)
    attempts: Counter[str] = Counter()
    handled: list[str] = []

    async def handle_batch(events: Sequence[Event]) -> None:
        bad = [e for e in events if e.id == "ev-11"]
        if bad:
            attempts["ev-11"] += 1
            raise RuntimeError(f"cannot handle ev-11 (attempt {attempts['ev-11']})")
        handled.extend(e.id for e in events)

    group = f"g-{unique}"
    async with EventProducer(endpoints.kafka_bootstrap, source="bus-test") as producer:
        consumer = EventConsumer(
            endpoints.kafka_bootstrap,
            group_id=group,
            topics=[topic],
            batch_handler=handle_batch,
            service="t",
            dead_letters=DeadLetterPublisher(
                producer, "bus-test", DeadLetterBounds(PayloadStore(tmp_path)), topic=dlq_topic
            ),
            max_attempts=3,
            retry_backoff_s=0.05,
        )
        await run_until(consumer, lambda: "ev-29" in handled)
    assert handled == [i for i in ids if i != "ev-11"], "every other record is handled once, in order"

    letters: list[deadletter_pb2.DeadLetter] = []

    async def collect(event: Event) -> None:
        letters.append(event.parse(deadletter_pb2.DeadLetter))

    reader = EventConsumer(
        endpoints.kafka_bootstrap, group_id=f"r-{unique}", topics=[dlq_topic], handler=collect, service="t"
    )
    await run_until(reader, lambda: len(letters) >= 1)
    await asyncio.sleep(2)  # a second dead letter for the same record would arrive meanwhile
    (letter,) = letters
    assert letter.reason_code == deadletter_pb2.REASON_CODE_RETRIES_EXHAUSTED
    assert letter.upstream.topic == topic and letter.upstream.offset == 11 and letter.event_id == "ev-11"
    assert "RuntimeError: cannot handle ev-11" in letter.message and "3 attempts" in letter.message

    again: list[str] = []

    async def handle_again(events: Sequence[Event]) -> None:
        again.extend(e.id for e in events)

    rerun = EventConsumer(
        endpoints.kafka_bootstrap, group_id=group, topics=[topic], batch_handler=handle_again, service="t"
    )
    task = asyncio.create_task(rerun.run())
    await asyncio.sleep(6)
    rerun.stop()
    await task
    assert again == [], "the offsets were committed past the dead-lettered record"


async def test_transaction_markers_at_the_end_of_a_partition_are_not_records_to_process(  # type: ignore[no-untyped-def]
    endpoints, make_topic, unique
) -> None:
    """Records written in transactions, the last transaction aborted: the read_committed consumer handles the
    committed ones and is caught up (lag 0, not wedged) although the end offset is past their commit markers
    and the aborted records (monitor's consumer of ingest's transactional DLQ was reported wedged there)."""
    from aiokafka import AIOKafkaProducer, TopicPartition

    topic = await make_topic("txmarkers", partitions=1)
    producer = AIOKafkaProducer(bootstrap_servers=endpoints.kafka_bootstrap, transactional_id=f"tx-{unique}")
    await producer.start()
    try:
        for i in range(3):
            async with producer.transaction():
                await producer.send_and_wait(topic, f"committed-{i}".encode(), key=b"k")
        await producer.begin_transaction()
        await producer.send_and_wait(topic, b"aborted", key=b"k")
        await producer.abort_transaction()
    finally:
        await producer.stop()
    seen: list[bytes] = []

    async def handle(event: Event) -> None:
        seen.append(event.value)

    consumer = EventConsumer(
        endpoints.kafka_bootstrap, group_id=f"g-{unique}", topics=[topic], handler=handle, service="tx-markers"
    )
    tp = TopicPartition(topic, 0)
    task = asyncio.create_task(consumer.run())
    try:
        async with asyncio.timeout(30):
            while len(seen) < 3 or consumer.partitions.get(tp) is None or consumer.partitions[tp].lag != 0:
                assert not task.done(), task.result()
                await asyncio.sleep(0.1)
        state = consumer.partitions[tp]
        assert state.end_offset == 8, "3 records, 3 commit markers, an aborted record and its abort marker"
        await asyncio.sleep(1.5)
        assert consumer.wedged(1.0) is None, "caught up: only markers and an aborted record are past it"
    finally:
        consumer.stop()
        await task
    assert seen == [b"committed-0", b"committed-1", b"committed-2"]


async def test_consumer_recovers_when_aiokafkas_fetch_task_ends(endpoints, make_topic, unique) -> None:  # type: ignore[no-untyped-def]
    """aiokafka's fetch task can end silently (it swallows a CancelledError, aio-libs/aiokafka#983); the
    consumer then fetches nothing again. ``EventConsumer`` replaces its aiokafka consumer and goes on."""
    topic = await make_topic("fetchend")
    await publish_predictions(endpoints.kafka_bootstrap, topic, 50)
    seen: list[Event] = []

    async def handle(event: Event) -> None:
        seen.append(event)

    consumer = EventConsumer(
        endpoints.kafka_bootstrap, group_id=f"g-{unique}", topics=[topic], handler=handle, service="t"
    )
    task = asyncio.create_task(consumer.run())
    try:
        async with asyncio.timeout(60):
            while len(seen) < 50:
                await asyncio.sleep(0.1)
        consumer._consumer._fetcher._fetch_task.cancel()  # what aiokafka#983 saw: the task ends, no error
        await asyncio.sleep(1.0)
        async with EventProducer(endpoints.kafka_bootstrap, source="bus-test") as producer:
            futures = [
                await producer.send_event(topic, prediction(i), key=f"k{i}", event_id=f"late-{i}") for i in range(20)
            ]
            await asyncio.gather(*futures)
        async with asyncio.timeout(60):
            while sum(e.id.startswith("late-") for e in seen) < 20:
                await asyncio.sleep(0.1)
    finally:
        consumer.stop()
        await task
    assert Counter(e.id for e in seen if e.id.startswith("late-")) == {f"late-{i}": 1 for i in range(20)}
    assert consumer.replacements == 1
