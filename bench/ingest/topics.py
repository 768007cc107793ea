"""The benchmark's Kafka topics: created unique per run, measured from outside, deleted afterwards.

Output topics use ``message.timestamp.type=LogAppendTime``: the broker stamps every record when it
appends it, so the first and last timestamps of an output topic time a contender exactly, whatever
timestamps its producer sets (event time, send time) and whether it writes transactionally.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

LOG_APPEND_TIME = {"message.timestamp.type": "LogAppendTime"}


@dataclass(frozen=True, slots=True)
class BenchTopics:
    """Every topic of one run, named ``bench.ingest.<run_id>.*``."""

    transactions: str
    chargebacks: str
    passthrough_out: str
    records: str
    dlq: str
    logs: str

    @classmethod
    def for_run(cls, run_id: str) -> BenchTopics:
        prefix = f"bench.ingest.{run_id}"
        return cls(
            transactions=f"{prefix}.bank.tx",
            chargebacks=f"{prefix}.bank.cb",
            passthrough_out=f"{prefix}.passthrough",
            records=f"{prefix}.records",
            dlq=f"{prefix}.dlq",
            logs=f"{prefix}.logs",
        )

    @property
    def inputs(self) -> list[str]:
        return [self.transactions, self.chargebacks]

    @property
    def outputs(self) -> list[str]:
        return [self.passthrough_out, self.records, self.dlq]

    @property
    def all(self) -> list[str]:
        return [*self.inputs, *self.outputs, self.logs]


@dataclass(frozen=True, slots=True)
class OutputStats:
    """What a contender wrote: record count and the broker's append time of the first and last record."""

    records: int
    first_ms: int
    last_ms: int

    @property
    def span_s(self) -> float:
        return (self.last_ms - self.first_ms) / 1000


async def create_topics(bootstrap: str, topics: BenchTopics, partitions: int) -> None:
    """Create every topic (inputs and outputs with ``partitions`` partitions); raises if one exists."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    await admin.start()
    try:
        new = [NewTopic(t, num_partitions=partitions, replication_factor=1) for t in topics.inputs]
        new += [
            NewTopic(t, num_partitions=partitions, replication_factor=1, topic_configs=LOG_APPEND_TIME)
            for t in topics.outputs
        ]
        new.append(NewTopic(topics.logs, num_partitions=1, replication_factor=1))
        await admin.create_topics(new)
    finally:
        await admin.close()


async def delete_topics(bootstrap: str, topics: Iterable[str]) -> None:
    """Delete ``topics`` (those that exist)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        doomed = [t for t in topics if t in existing]
        if doomed:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()


async def read_output(bootstrap: str, topics: Sequence[str]) -> OutputStats:
    """Read ``topics`` from the beginning to their (committed) end; count records and their append-time span.

    Blocks until every partition is read to the end offset it had when the call began. Raises
    ``ValueError`` when the topics hold no record.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, isolation_level="read_committed", group_id=None
    )
    await consumer.start()
    try:
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(consumer.partitions_for_topic(topic) or await _partitions(consumer, topic))
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        remaining = {tp for tp in partitions if ends[tp] > 0}
        count, first, last = 0, None, None
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000, max_records=10_000)
            for records in batch.values():
                count += len(records)
                lo, hi = min(r.timestamp for r in records), max(r.timestamp for r in records)
                first = lo if first is None else min(first, lo)
                last = hi if last is None else max(last, hi)
            remaining = {tp for tp in remaining if await consumer.position(tp) < ends[tp]}
        if first is None or last is None:
            raise ValueError(f"no record in {', '.join(topics)}")
        return OutputStats(count, first, last)
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    await consumer._client.force_metadata_update()
    return set(consumer.partitions_for_topic(topic) or ())
