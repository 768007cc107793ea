"""Publishes retail events to Kafka as the retailer would: JSON values, no CloudEvents headers.

Kafka key = ``user_id`` for interactions (a user's events stay in order on one partition), ``item_id``
for catalogue records.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aimesh.core.bus import EventProducer
from aimesh.examples.banking.publisher import MalformedRecord
from aimesh.examples.mesh import send_pipelined, upstream_producer
from aimesh.examples.retail.model import GeneratedEvent, Stream

DEFAULT_TOPICS: Mapping[Stream, str] = {
    Stream.INTERACTIONS: "retail.interactions",
    Stream.ITEMS: "retail.items",
}
PRODUCER_SOURCE = "retail-simulator"

__all__ = ["DEFAULT_TOPICS", "MalformedRecord", "PublishSummary", "publish_events", "retail_producer"]


@dataclass
class PublishSummary:
    """What was published (every count covers acknowledged records only)."""

    per_topic: Counter[str] = field(default_factory=Counter)
    malformed: list[MalformedRecord] = field(default_factory=list)
    event_types: Counter[str] = field(default_factory=Counter)
    """Well-formed interactions by event type."""
    users: set[str] = field(default_factory=set)
    """Users of the well-formed interactions."""
    items: set[str] = field(default_factory=set)
    """Items of the well-formed interactions."""
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
    """Send every event (pipelined) and wait for all acknowledgements; see ``mesh.send_pipelined``.

    ``on_acked(n)`` reports progress.
    """
    summary = PublishSummary()
    started = time.perf_counter()

    def settled(event: GeneratedEvent, meta: Any) -> None:
        topic = topics[event.stream]
        summary.per_topic[topic] += 1
        if event.malformed is not None:
            summary.malformed.append(
                MalformedRecord(event.event_id, event.malformed, topic, meta.partition, meta.offset)
            )
        elif event.event_type is not None:
            summary.event_types[event.event_type.value] += 1
            summary.users.add(event.user_id)
            summary.items.add(event.item_id)
        if on_acked is not None:
            on_acked(1)

    await send_pipelined(producer, events, lambda e: topics[e.stream], settled, max_in_flight=max_in_flight)
    summary.seconds = time.perf_counter() - started
    return summary


def retail_producer(bootstrap: str) -> EventProducer:
    """A producer tuned for bulk upstream traffic (bigger batches); use it as an async context manager."""
    return upstream_producer(bootstrap, PRODUCER_SOURCE)
