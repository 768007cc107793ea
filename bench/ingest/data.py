"""The benchmark's input: the banking generator's records, published once before any contender runs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from aimesh.examples.banking.generator import GeneratorConfig, generate_events
from aimesh.examples.banking.model import Stream
from aimesh.examples.banking.publisher import bank_producer, publish_events
from bench.ingest.topics import BenchTopics


@dataclass(frozen=True, slots=True)
class PublishedInput:
    """What the contenders will read: ``records`` in total (per stream), how many malformed, the publish time."""

    records: int
    malformed: int
    per_stream: dict[str, int]
    seconds: float
    end: datetime


def start_of_today() -> datetime:
    """Midnight UTC of today: the generator's ``end``, so a given seed yields the same bytes all day."""
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


async def publish_input(
    bootstrap: str, topics: BenchTopics, *, records: int, seed: int, malformed_fraction: float
) -> PublishedInput:
    """Generate ``records`` banking events (transactions and chargebacks) and publish them, JSON, key = card.

    Blocks until Kafka acknowledged every record; raises aiokafka's error when one is refused.
    """
    end = start_of_today()
    config = GeneratorConfig(events=records, seed=seed, end=end, malformed_fraction=malformed_fraction)
    by_stream = {Stream.TRANSACTIONS: topics.transactions, Stream.CHARGEBACKS: topics.chargebacks}
    async with bank_producer(bootstrap) as producer:
        summary = await publish_events(producer, generate_events(config), topics=by_stream)
    per_stream = {stream.value: summary.per_topic[topic] for stream, topic in by_stream.items()}
    return PublishedInput(summary.total, len(summary.malformed), per_stream, summary.seconds, end)
