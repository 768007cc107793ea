"""ingest against real Kafka: generated bank traffic (with malformed records) -> canonical topic, DLQ and lake.

Publishes ~3000 generated events to unique upstream topics, runs the ingest consumer in-process until
every record is handled, then checks: each valid event id exactly once on the canonical topic and in
the lake, each malformed record on the DLQ with the reason the generator intended, and no raw card
number in the canonical bytes, the lake (file bytes and decoded values) or the log output.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import logging
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import ecs_logging
import pytest
from prometheus_client import REGISTRY

from aimesh.api.common.v1 import deadletter_pb2
from aimesh.api.ingest.v1 import events_pb2
from aimesh.core import lake
from aimesh.core.bus import EventConsumer, EventProducer
from aimesh.core.events import Event
from aimesh.core.testing import run_until
from aimesh.examples.banking import GeneratorConfig, Stream, generate_events
from aimesh.examples.banking.publisher import bank_producer, publish_events
from aimesh.ingest.app import build_consumer, build_pipeline
from aimesh.ingest.settings import IngestSettings
from tests.integration.ingest_sources import BANKING_SOURCES, ingest_catalog

pytestmark = pytest.mark.integration

EVENTS = 3000
SECRET = "integration-secret"


def consumed(topic: str) -> float:
    return REGISTRY.get_sample_value("aimesh_events_consumed_total", {"service": "ingest", "topic": topic}) or 0.0


async def read_topic(bootstrap: str, topic: str, group: str, expected: int, settle_s: float = 2.0) -> list[Event]:
    """Every record of ``topic`` (at least ``expected``, then ``settle_s`` more to catch extras)."""
    seen: list[Event] = []

    async def keep(event: Event) -> None:
        seen.append(event)

    reader = EventConsumer(bootstrap, group_id=group, topics=[topic], handler=keep, service="it-reader")
    settled_at: list[float] = []

    def done() -> bool:
        if len(seen) >= expected and not settled_at:
            settled_at.append(time.monotonic())
        return bool(settled_at) and time.monotonic() - settled_at[0] > settle_s

    await run_until(reader, done, within_s=90.0)
    return seen


@pytest.fixture
def captured_logs() -> io.StringIO:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(ecs_logging.StdlibFormatter())
    root, ours = logging.getLogger(), logging.getLogger("aimesh")
    old_level = ours.level
    root.addHandler(handler)
    ours.setLevel(logging.DEBUG)
    yield out
    root.removeHandler(handler)
    ours.setLevel(old_level)


async def test_generated_bank_traffic_is_validated_published_dead_lettered_and_lakes(  # type: ignore[no-untyped-def]
    endpoints, make_topic, unique, tmp_path: Path, captured_logs: io.StringIO
) -> None:
    bootstrap = endpoints.kafka_bootstrap
    tx_topic, cb_topic = await make_topic("bank-tx"), await make_topic("bank-cb")
    records_topic, dlq_topic = await make_topic("records"), await make_topic("dlq", partitions=1)
    config = GeneratorConfig(
        events=EVENTS,
        seed=20240501,
        end=datetime(2025, 2, 1, tzinfo=UTC),
        span=timedelta(days=20),
        malformed_fraction=0.02,
    )
    generated = list(generate_events(config))
    async with bank_producer(bootstrap) as bank:
        summary = await publish_events(
            bank, generated, topics={Stream.TRANSACTIONS: tx_topic, Stream.CHARGEBACKS: cb_topic}
        )
    assert summary.total == EVENTS and len(summary.malformed) >= 30
    valid = {e.event_id: e for e in generated if e.malformed is None}

    settings = IngestSettings(
        kafka_bootstrap=bootstrap,
        consumer_group=f"ingest-it-{unique}",
        sources_file=BANKING_SOURCES,
        source_topics={"card_transactions": tx_topic, "chargebacks": cb_topic},
        records_topic=records_topic,
        dlq_topic=dlq_topic,
        data_dir=tmp_path,
        lake_dir=tmp_path / "lake",
        pii_secret=SECRET,
    )
    async with EventProducer(bootstrap, source="ingest") as producer, ingest_catalog(settings) as catalog:
        consumer = build_consumer(settings, build_pipeline(settings, producer, None, catalog))
        before = consumed(tx_topic) + consumed(cb_topic)
        started = time.perf_counter()
        first_batch: list[float] = []

        def all_handled() -> bool:
            handled = consumed(tx_topic) + consumed(cb_topic) - before
            if handled and not first_batch:
                first_batch.append(time.perf_counter())
            return handled >= EVENTS

        await run_until(consumer, all_handled, within_s=90.0)
        finished = time.perf_counter()
    wall, busy = finished - started, finished - first_batch[0]
    print(  # the measured number the issue asks for, shown with -s
        f"\ningest throughput: {EVENTS} records in {wall:.2f}s wall incl. group join ({EVENTS / wall:,.0f}/s); "
        f"{busy:.2f}s from first batch ({EVENTS / busy:,.0f}/s)"
    )

    canonical = await read_topic(bootstrap, records_topic, f"it-rec-{unique}", len(valid))
    ids = Counter(e.id for e in canonical)
    assert set(ids) == set(valid) and set(ids.values()) == {1}, "each valid event exactly once"
    token_of = {n: hmac.new(SECRET.encode(), n.encode(), hashlib.sha256).hexdigest() for n in summary.card_numbers}
    for event in canonical[:200]:
        record = event.parse(events_pb2.CanonicalRecord)
        origin = valid[record.event_id]
        assert event.key == origin.key.encode() and record.entity_key == origin.key
        if origin.stream is Stream.TRANSACTIONS:
            assert record.source == "card_transactions"
            assert record.attributes["card_token"].string_value == token_of[origin.card_number]

    dead = await read_topic(bootstrap, dlq_topic, f"it-dlq-{unique}", len(summary.malformed))
    letters = [e.parse(deadletter_pb2.DeadLetter) for e in dead]
    got = {(d.upstream.topic, d.upstream.partition, d.upstream.offset): d for d in letters}
    assert len(got) == len(letters) == len(summary.malformed)
    for m in summary.malformed:
        letter = got[(m.topic, m.partition, m.offset)]
        assert deadletter_pb2.ReasonCode.Name(letter.reason_code) == f"REASON_CODE_{m.expected_reason}", (m, letter)
        assert letter.source in {"card_transactions", "chargebacks"} and letter.message
        if m.expected_reason != "MALFORMED_PAYLOAD":
            assert letter.field and letter.event_id == m.event_id

    root = tmp_path / "lake"
    lake_ids: Counter[str] = Counter()
    decoded_values: list[str] = []
    for source in ("card_transactions", "chargebacks"):
        table = lake.dataset(root, source).to_table()
        lake_ids.update(table.column("event_id").to_pylist())
        decoded_values.extend(str(v) for column in table.columns for v in column.to_pylist())
    assert set(lake_ids) == set(valid) and set(lake_ids.values()) == {1}, "each valid event exactly once in the lake"

    canonical_bytes = b"".join(e.value + (e.key or b"") + b"".join(v for _, v in e.headers) for e in canonical)
    lake_bytes = b"".join(p.read_bytes() for p in root.rglob("*.parquet"))
    decoded = "\n".join(decoded_values)
    logs = captured_logs.getvalue()
    assert "record rejected" in logs, "the log capture must see ingest's own records"
    for number in summary.card_numbers:
        assert number.encode() not in canonical_bytes
        assert number.encode() not in lake_bytes and number not in decoded
        assert number not in logs
