"""Publishes generated banking events to Kafka as the bank would: JSON values, key = card_id, no CE headers."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aimesh.core.bus import EventProducer
from aimesh.examples.banking.model import EXPECTED_REASON, GeneratedEvent, MalformedKind, Stream
from aimesh.examples.mesh import send_pipelined, upstream_producer

DEFAULT_TOPICS: Mapping[Stream, str] = {
    Stream.TRANSACTIONS: "bank.card-transactions",
    Stream.CHARGEBACKS: "bank.chargebacks",
}
PRODUCER_SOURCE = "bank-simulator"


@dataclass(frozen=True, slots=True)
class MalformedRecord:
    """Where a deliberately malformed record landed, and the reason a validating ingest must give."""

    event_id: str
    kind: MalformedKind
    topic: str
    partition: int
    offset: int

    @property
    def expected_reason(self) -> str:
        return EXPECTED_REASON[self.kind]


@dataclass
class PublishSummary:
    """What was published (every count covers acknowledged records only)."""

    per_topic: Counter[str] = field(default_factory=Counter)
    malformed: list[MalformedRecord] = field(default_factory=list)
    fraud_transactions: int = 0
    """Well-formed transactions the generator made fraudulent."""
    card_numbers: set[str] = field(default_factory=set)
    """Every raw card number (PAN) that was published: what must never leave ingest."""
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.per_topic.values())

    @property
    def malformed_by_kind(self) -> Counter[str]:
        return Counter(m.kind.value for m in self.malformed)


async def publish_events(
    producer: EventProducer,
    events: Iterable[GeneratedEvent],
    *,
    topics: Mapping[Stream, str] = DEFAULT_TOPICS,
    max_in_flight: int = 10_000,
    on_acked: Callable[[int], None] | None = None,
) -> PublishSummary:
    """Send every event (pipelined: at most ``max_in_flight`` unacknowledged) and wait for all acknowledgements.

    Returns once Kafka acknowledged every record; raises aiokafka's error if one is refused (records
    queued before it may or may not have been written). ``on_acked(n)`` reports progress.
    """
    summary = PublishSummary()
    started = time.perf_counter()

    def settled(event: GeneratedEvent, meta: Any) -> None:
        topic = topics[event.stream]
        summary.per_topic[topic] += 1
        if event.malformed is not None:
            record = MalformedRecord(event.event_id, event.malformed, topic, meta.partition, meta.offset)
            summary.malformed.append(record)
        elif event.is_fraud:
            summary.fraud_transactions += 1
        if event.card_number:
            summary.card_numbers.add(event.card_number)
        if on_acked is not None:
            on_acked(1)

    await send_pipelined(producer, events, lambda e: topics[e.stream], settled, max_in_flight=max_in_flight)
    summary.seconds = time.perf_counter() - started
    return summary


def bank_producer(bootstrap: str) -> EventProducer:
    """A producer tuned for bulk upstream traffic (bigger batches); use it as an async context manager."""
    return upstream_producer(bootstrap, PRODUCER_SOURCE)
