"""IngestPipeline.handle_batch with a RecordingSender: canonical records, DLQ entries, lake files, retries,
duplicates dropped across restarts through the seen-events store, and a slow lake holding back the next poll."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pyarrow as pa
import pytest
from aiokafka import TopicPartition

from aimesh.api.common.v1 import deadletter_pb2
from aimesh.api.ingest.v1 import events_pb2
from aimesh.core import lake
from aimesh.core.bus import EventConsumer
from aimesh.core.events import Event
from aimesh.core.testing import FakeKafkaConsumer, FakeRecord, RecordingSender, TransactionalRecordingSender
from aimesh.ingest.app import build_consumer
from aimesh.ingest.catalog import SourceCatalog
from aimesh.ingest.dedupe import Position
from aimesh.ingest.pii import Tokenizer
from aimesh.ingest.pipeline import IngestPipeline
from aimesh.ingest.registry import StoredSource
from aimesh.ingest.settings import IngestSettings
from aimesh.ingest.sources import FieldRule, FieldType, SourceDefinition, load_sources

SOURCES_FILE = Path(__file__).parent / "fixtures" / "sources.yaml"

PAN = "4000056655665556"
TX_TOPIC = "up.tx"


def tx(n: int, **changes: object) -> bytes:
    record = {
        "transaction_id": f"tx-{n:010d}",
        "card_id": f"card-{n % 3}",
        "card_number": PAN,
        "customer_id": "cust-1",
        "merchant_id": "merch-1",
        "merchant_category": "gaming",
        "amount": 10.0 + n,
        "currency": "EUR",
        "country": "DE",
        "device_id": "dev-1",
        "channel": "online",
        "timestamp": f"2024-05-0{1 + n % 2}T10:00:00Z",
    }
    return orjson.dumps(record | changes)


def event(offset: int, value: bytes, topic: str = TX_TOPIC) -> Event:
    return Event(topic=topic, partition=2, offset=offset, key=b"k", value=value, headers=(("h", b"v"),), timestamp_ms=0)


@pytest.fixture
def sender() -> RecordingSender:
    return RecordingSender()


class MemorySeenStore:
    """An in-memory ``SeenStore`` that outlives pipelines (a restart keeps it) and can be made to fail."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], Position] = {}
        self.claims = 0
        self.down = False

    async def claim(self, source: str, positions: Mapping[str, Position]) -> dict[str, Position]:
        if self.down:
            raise ConnectionError("database down")
        self.claims += 1
        return {i: self.rows.setdefault((source, i), p) for i, p in positions.items()}


class Versions:
    """An in-memory ``CurrentVersions``: the packaged sources as version 1, ``add`` stores a newer one."""

    def __init__(self) -> None:
        overrides = {"card_transactions": TX_TOPIC, "chargebacks": "up.cb"}
        self.latest = {s.name: s for s in load_sources(SOURCES_FILE, topic_overrides=overrides)}

    def add(self, definition: SourceDefinition) -> None:
        self.latest[definition.name] = definition.model_copy(
            update={"version": self.latest[definition.name].version + 1}
        )

    async def current(self) -> list[StoredSource]:
        return [StoredSource(d, datetime.now(UTC)) for d in self.latest.values()]


async def make_pipeline(
    sender: RecordingSender,
    root: Path,
    store: MemorySeenStore | None = None,
    capacity: int = 100,
    versions: Versions | None = None,
) -> IngestPipeline:
    catalog = SourceCatalog(versions or Versions(), Tokenizer("s"))
    await catalog.refresh()
    return IngestPipeline(
        catalog,
        sender,
        lake_root=root,
        records_topic="rec",
        dlq_topic="dlq",
        dedupe_capacity=capacity,
        seen_store=store,
    )


@pytest.fixture
async def pipeline(sender: RecordingSender, tmp_path: Path) -> IngestPipeline:
    return await make_pipeline(sender, tmp_path)


def lake_table(root: Path) -> pa.Table:
    return lake.dataset(root, "card_transactions").to_table()


async def test_batch_publishes_canonical_records_dead_letters_rejects_and_writes_the_lake(
    pipeline: IngestPipeline, sender: RecordingSender, tmp_path: Path
) -> None:
    events = [event(10, tx(0)), event(11, tx(1, currency="XBT")), event(12, b"{oops"), event(13, tx(3))]

    result = await pipeline.handle_batch(events)

    assert (result.accepted, result.rejected, result.duplicates) == (2, 2, 0)
    records = sender.on("rec")
    assert [(key, ce_id) for _, _, key, ce_id in records] == [("card-0", "tx-0000000000"), ("card-0", "tx-0000000003")]
    canonical = records[0][1]
    assert isinstance(canonical, events_pb2.CanonicalRecord)
    assert canonical.source == "card_transactions" and canonical.entity_type == "card"
    assert canonical.upstream.offset == 10 and canonical.upstream.partition == 2
    assert canonical.attributes["amount"].double_value == 10.0
    assert canonical.attributes["card_token"].string_value == Tokenizer("s").token(PAN)
    assert PAN.encode() not in b"".join(m.SerializeToString() for _, m, _, _ in records)

    dead = sender.on("dlq")
    assert [ce_id for *_, ce_id in dead] == [f"dlq:{TX_TOPIC}/2/11", f"dlq:{TX_TOPIC}/2/12"]
    masked, raw = (d[1] for d in dead)
    assert isinstance(masked, deadletter_pb2.DeadLetter) and isinstance(raw, deadletter_pb2.DeadLetter)
    assert masked.reason_code == deadletter_pb2.REASON_CODE_NOT_ALLOWED_VALUE and masked.field == "currency"
    assert masked.event_id == "tx-0000000001" and masked.source == "card_transactions"
    assert (masked.upstream.topic, masked.upstream.partition, masked.upstream.offset) == (TX_TOPIC, 2, 11)
    assert PAN.encode() not in masked.original_payload and "replaced by their tokens" in masked.message
    assert raw.reason_code == deadletter_pb2.REASON_CODE_MALFORMED_PAYLOAD and raw.original_payload == b"{oops"
    assert [(h.key, h.value) for h in raw.original_headers] == [("h", b"v")]

    files = lake.part_files(tmp_path, "card_transactions")
    assert [(p, first, last) for _, p, first, last in files] == [(2, 10, 13), (2, 10, 13)]
    table = lake_table(tmp_path)
    assert sorted(table.column("event_id").to_pylist()) == ["tx-0000000000", "tx-0000000003"]
    assert table.schema.field("event_time").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("amount").type == pa.float64()
    assert "card_number" not in table.schema.names and "card_token" in table.schema.names
    assert all(PAN.encode() not in path.read_bytes() for path, *_ in files)


async def test_a_redelivered_batch_rewrites_its_lake_files_instead_of_duplicating(
    pipeline: IngestPipeline, sender: RecordingSender, tmp_path: Path
) -> None:
    await pipeline.handle_batch([event(0, tx(0)), event(1, tx(1))])
    await pipeline.handle_batch([event(0, tx(0)), event(1, tx(1)), event(2, tx(2))])

    assert sorted(lake_table(tmp_path).column("event_id").to_pylist()) == [f"tx-{n:010d}" for n in range(3)]
    assert len(sender.on("rec")) == 5, "the same positions are published again (at-least-once, same ce_id)"


async def test_upstream_duplicates_at_other_offsets_are_dropped(
    pipeline: IngestPipeline, sender: RecordingSender, tmp_path: Path
) -> None:
    await pipeline.handle_batch([event(0, tx(0)), event(1, tx(0))])
    result = await pipeline.handle_batch([event(2, tx(0)), event(3, tx(1))])

    assert result.duplicates == 1
    assert [ce_id for *_, ce_id in sender.on("rec")] == ["tx-0000000000", "tx-0000000001"]
    assert sorted(lake_table(tmp_path).column("event_id").to_pylist()) == ["tx-0000000000", "tx-0000000001"]


async def test_a_failed_acknowledgement_fails_the_batch_and_the_retry_redoes_it(
    pipeline: IngestPipeline, sender: RecordingSender, tmp_path: Path
) -> None:
    sender.fail = True
    with pytest.raises(ConnectionError):
        await pipeline.handle_batch([event(0, tx(0))])
    sender.fail = False

    result = await pipeline.handle_batch([event(0, tx(0))])

    assert result.accepted == 1 and [ce_id for *_, ce_id in sender.on("rec")] == ["tx-0000000000"]
    assert lake_table(tmp_path).column("event_id").to_pylist() == ["tx-0000000000"]


async def test_records_of_a_topic_without_source_are_dead_lettered(
    pipeline: IngestPipeline, sender: RecordingSender
) -> None:
    result = await pipeline.handle_batch([event(0, tx(0), topic="elsewhere")])

    assert result.rejected == 1
    (dead,) = sender.on("dlq")
    assert isinstance(dead[1], deadletter_pb2.DeadLetter)
    assert dead[1].reason_code == deadletter_pb2.REASON_CODE_UNKNOWN_SOURCE


async def test_duplicates_are_dropped_after_a_restart_and_redeliveries_are_not(tmp_path: Path) -> None:
    store, sender = MemorySeenStore(), RecordingSender()
    await (await make_pipeline(sender, tmp_path, store)).handle_batch([event(0, tx(0)), event(1, tx(1))])

    restarted = await make_pipeline(sender, tmp_path, store)
    redelivered = await restarted.handle_batch([event(0, tx(0)), event(1, tx(1)), event(2, tx(0)), event(3, tx(2))])

    assert (redelivered.accepted, redelivered.duplicates) == (3, 1), "offsets 0 and 1 are the same records again"
    assert sorted(lake_table(tmp_path).column("event_id").to_pylist()) == [f"tx-{n:010d}" for n in range(3)]


async def test_the_cache_answers_known_ids_without_the_store(tmp_path: Path) -> None:
    store, sender = MemorySeenStore(), RecordingSender()
    pipeline = await make_pipeline(sender, tmp_path, store)
    await pipeline.handle_batch([event(0, tx(0))])

    result = await pipeline.handle_batch([event(1, tx(0))])

    assert result.duplicates == 1 and store.claims == 1


async def test_claims_of_a_failed_batch_let_its_redelivery_through_and_drop_later_copies(tmp_path: Path) -> None:
    store, sender = MemorySeenStore(), RecordingSender(fail=True)
    with pytest.raises(ConnectionError):
        await (await make_pipeline(sender, tmp_path, store)).handle_batch([event(0, tx(0))])
    sender.fail = False

    restarted = await make_pipeline(sender, tmp_path, store, capacity=0)
    result = await restarted.handle_batch([event(0, tx(0)), event(1, tx(0))])

    assert (result.accepted, result.duplicates) == (1, 1)
    assert [ce_id for *_, ce_id in sender.on("rec")] == ["tx-0000000000"]


async def test_a_store_failure_fails_the_batch_before_anything_is_sent_or_written(tmp_path: Path) -> None:
    store, sender = MemorySeenStore(), RecordingSender()
    store.down = True

    with pytest.raises(ConnectionError, match="database down"):
        await (await make_pipeline(sender, tmp_path, store)).handle_batch([event(0, tx(0)), event(1, b"{oops")])

    assert sender.sent == [] and lake.part_files(tmp_path, "card_transactions") == []


async def test_a_slow_lake_holds_back_the_next_poll(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tx_sender = TransactionalRecordingSender()
    pipeline = await make_pipeline(tx_sender, tmp_path)
    fake = FakeKafkaConsumer([tx(n) for n in range(6)], batch=2, tp=TopicPartition(TX_TOPIC, 0))
    consumer = EventConsumer(
        "127.0.0.1:1",
        group_id="g",
        topics=pipeline.topics,
        service="ingest-slow-lake",
        batch_handler=pipeline.handle_batch,
        transactions=tx_sender,
    )
    consumer._consumer = fake
    polls_during_writes: list[int] = []
    write = lake.replace_partition_range

    def slow_write(*args: object, **kwargs: object) -> list[Path]:
        before = fake.polls
        time.sleep(0.2)
        polls_during_writes.append(fake.polls - before)
        return write(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(lake, "replace_partition_range", slow_write)
    task = asyncio.create_task(consumer.run())
    async with asyncio.timeout(5):
        while len(tx_sender.commits) < 3:
            await asyncio.sleep(0.01)
    consumer.stop()
    await task

    assert polls_during_writes == [0, 0, 0], "no poll while a batch's lake write is in progress"
    assert len(tx_sender.sent) == 6


async def test_a_new_source_version_applies_to_the_next_batch_and_the_lake_reads_both_versions(
    sender: RecordingSender, tmp_path: Path
) -> None:
    versions = Versions()
    pipeline = await make_pipeline(sender, tmp_path, versions=versions)
    await pipeline.handle_batch([event(0, tx(0))])
    v1 = versions.latest["card_transactions"]
    versions.add(v1.model_copy(update={"fields": (*v1.fields, FieldRule(name="terminal", type=FieldType.STRING))}))
    await pipeline._catalog.refresh()

    await pipeline.handle_batch([event(1, tx(1, terminal="pos-9"))])

    assert [m.schema_version for _, m, _, _ in sender.on("rec")] == [1, 2]  # type: ignore[attr-defined]
    rows = lake_table(tmp_path).sort_by("event_id").select(["event_id", "terminal"]).to_pylist()
    assert rows == [
        {"event_id": "tx-0000000000", "terminal": None},
        {"event_id": "tx-0000000001", "terminal": "pos-9"},
    ]


class SubscribingFake(FakeKafkaConsumer):
    """``FakeKafkaConsumer`` that records each subscription and serves its partition only while subscribed."""

    def __init__(self, values: list[bytes], tp: TopicPartition) -> None:
        super().__init__(values, batch=2, tp=tp)
        self.subscriptions: list[list[str]] = []

    def subscribe(self, topics: Sequence[str], listener: object) -> None:
        super().subscribe(topics, listener)
        self.subscriptions.append(list(topics))

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[FakeRecord]]:
        if not self.subscriptions or self.tp.topic not in self.subscriptions[-1]:
            await asyncio.sleep(0)
            return {}
        return await super().getmany(timeout_ms, max_records)


async def test_the_ingest_consumer_subscribes_to_a_source_registered_while_it_runs(tmp_path: Path) -> None:
    versions = Versions()
    registered, versions.latest = versions.latest, {}
    tx_sender = TransactionalRecordingSender()
    pipeline = await make_pipeline(tx_sender, tmp_path, versions=versions)
    settings = IngestSettings(data_dir=tmp_path, consumer_group="g")
    consumer = build_consumer(settings, pipeline, tx_sender)
    fake = SubscribingFake([tx(n) for n in range(5)], TopicPartition(TX_TOPIC, 0))
    consumer._consumer = fake
    consumer._poll_timeout_ms = 10
    task = asyncio.create_task(consumer.run())
    try:
        await asyncio.sleep(0.05)
        assert fake.subscriptions == [] and fake.polls == 0, "no source: nothing to subscribe to"
        versions.latest = {"card_transactions": registered["card_transactions"]}
        await pipeline._catalog.refresh()  # what RegisterSource (or the periodic refresh) does
        async with asyncio.timeout(5):
            while len(tx_sender.sent) < 5:
                await asyncio.sleep(0.01)
        versions.latest = dict(registered)
        await pipeline._catalog.refresh()
        async with asyncio.timeout(5):
            while len(fake.subscriptions) < 2:
                await asyncio.sleep(0.01)
    finally:
        consumer.stop()
        await task

    assert fake.subscriptions == [[TX_TOPIC], ["up.cb", TX_TOPIC]]
    assert [s.event_id for s in tx_sender.on("rec")] == [f"tx-{n:010d}" for n in range(5)]
    assert [c[TopicPartition(TX_TOPIC, 0)] for c in tx_sender.commits] == [2, 4, 5]
