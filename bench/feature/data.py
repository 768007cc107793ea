"""The benchmark's input: the banking generator's card transactions as canonical records on a run-unique topic.

The records are what ingest would publish for them (``aimesh.ingest.records.v1`` payloads): source
``card_transactions``, entity ``card`` keyed by the card id, the payload's other fields as typed
attributes, the card number (PII) left out. They are published once, before the feature service starts,
so its consumption rate is its own.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import orjson
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from aimesh.api.common.v1 import common_pb2
from aimesh.api.ingest.v1 import events_pb2
from aimesh.core.bus import EventProducer
from aimesh.examples.banking.generator import GeneratorConfig, generate_events
from aimesh.examples.banking.model import Stream

SOURCE = "card_transactions"
ENTITY_TYPE = "card"
LEFT_OUT = frozenset({"transaction_id", "card_id", "card_number", "timestamp"})
CARDS_PER_CUSTOMER = 1.5
"""The population draws one or two cards per customer."""


@dataclass(frozen=True, slots=True)
class PublishedRecords:
    """``records`` canonical records of ``cards`` distinct cards, published in ``seconds``."""

    topic: str
    records: int
    cards: list[str]
    seconds: float


def canonical_transactions(
    *, transactions: int, cards: int, seed: int, end: datetime
) -> Iterator[events_pb2.CanonicalRecord]:
    """About ``transactions`` card transactions of about ``cards`` cards, ending at ``end``, as canonical records.

    Chargebacks are dropped (they feed no feature here), so slightly fewer records than ``transactions``
    come out; no record is malformed.
    """
    config = GeneratorConfig(
        events=transactions, seed=seed, end=end, malformed_fraction=0.0, customers=round(cards / CARDS_PER_CUSTOMER)
    )
    for event in generate_events(config):
        if event.stream is Stream.TRANSACTIONS:
            yield to_canonical(event.value, event_time_us=event.time_us)


def to_canonical(payload: bytes, *, event_time_us: int) -> events_pb2.CanonicalRecord:
    """The canonical record of one generated transaction's JSON payload."""
    fields = orjson.loads(payload)
    record = events_pb2.CanonicalRecord(
        event_id=fields["transaction_id"],
        source=SOURCE,
        entity_key=fields["card_id"],
        entity_type=ENTITY_TYPE,
        schema_version=1,
    )
    record.event_time.FromMicroseconds(event_time_us)
    record.ingest_time.FromMicroseconds(event_time_us)
    for name, value in fields.items():
        if name in LEFT_OUT:
            continue
        if isinstance(value, float | int) and not isinstance(value, bool):
            record.attributes[name].CopyFrom(common_pb2.Value(double_value=float(value)))
        else:
            record.attributes[name].CopyFrom(common_pb2.Value(string_value=str(value)))
    return record


async def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    """Create ``topic`` (replication 1); raises aiokafka's error when the broker refuses."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    finally:
        await admin.close()


async def publish(bootstrap: str, topic: str, records: Iterator[events_pb2.CanonicalRecord]) -> PublishedRecords:
    """Publish every record (key = card id) and wait for all acknowledgements; raises on a refused send."""
    started = time.monotonic()
    cards: set[str] = set()
    count = 0
    async with EventProducer(bootstrap, source="bench.feature", linger_ms=20) as producer:
        pending = []
        for record in records:
            pending.append(await producer.send_event(topic, record, key=record.entity_key, event_id=record.event_id))
            cards.add(record.entity_key)
            count += 1
        for future in pending:
            await future
    return PublishedRecords(topic, count, sorted(cards), time.monotonic() - started)
